"""Does the Selfmem generator read its memory, and does it beat what a translation-memory user
already has? Two subcommands:

``memory-use``: decode a split with the EMPTY memory and with the REFERENCE as memory (the
latter labelled ORACLE: a diagnostic, never a result). A generator that reads its memory scores
far higher with the reference than with its BM25 memory, and lower with an empty one.

``table``: one comparison table per task, dev and test, with for every row corpus BLEU (and
chrF++), the share of distinct outputs and the collapse flag (distinct < 90%), and the paired
bootstrap against the reference row (the generator with BM25 memory): ΔBLEU, one-sided p-value
("row is better") and the 95% interval. Rows:

* baselines: copying the BM25 memory; the fuzzy-match switch (the memory's target when the
  source's fuzzy match with the memory's source is at least a threshold chosen on DEV, else the
  vanilla output);
* generators with BM25 memory (``--row``), diagnostics (empty / reference memory);
* loop variants (``--loop``): the iteration chosen on DEV by BLEU among 1..K.

Outputs: ``--output-json`` (everything), ``--output-csv`` (one line per row and split) and
``--output-html`` (the table, with a collapse warning at the top when any row collapsed).
Every generator and loop row also carries ``tests``: its paired bootstrap against copying the
memory, the switch, the vanilla row, the reference row and each ``--against`` row, overall and
per fuzzy-match band.

The table's settings (:class:`relift.selfmem.evaluation.settings.CompareSettings`: config.yaml's
``selfmem.compare``) come as ``--settings JSON`` and/or one flag each.
"""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

from relift.io import LOG, InputError, atomic_path, run_cli, write_json_atomic, write_text_atomic
from relift.score import bootstrap_interval, paired_bootstrap, read_lines, score
from relift.selfmem.data import load_split, one_line, read_hit_ids
from relift.selfmem.evaluation.html import comparison_page
from relift.selfmem.evaluation.settings import CompareSettings
from relift.selfmem.match import BANDS, band_label, band_of, memory_match_scores, read_scores
from relift.settings import add_settings, settings_from_args

SPLITS = ("dev", "test")


# --------------------------------------------------------------------------- fuzzy match
def match_scores(args: argparse.Namespace, data: dict) -> dict | None:
    """Each dev/test example's fuzzy match with its memory: from ``--match-*`` files, or
    computed from ``--hits-*`` and ``--train``; None when neither is given."""
    if args.match_dev and args.match_test:
        return {s: read_scores(getattr(args, f"match_{s}"), len(data[s].targets)) for s in SPLITS}
    if args.train and args.hits_dev and args.hits_test:
        train = load_split(args.train, args.src_field, args.trg_field)
        return {
            s: memory_match_scores(
                data[s].sources,
                read_hit_ids(getattr(args, f"hits_{s}"), len(data[s].targets)),
                train.sources,
            )
            for s in SPLITS
        }
    return None


def training_compute(paths: list[str]) -> dict:
    """Updates and training seconds behind a generator row (mean over its seeds), counted from
    scratch: a warm start's continuation adds the compute of the generator it started from."""
    import json

    ups, secs = [], []
    for p in paths:
        r = json.loads(Path(p).read_text())
        ups.append(r.get("total_steps", r["steps"]))
        secs.append(r.get("total_train_seconds", r["train_seconds"]))
    return {"updates": round(sum(ups) / len(ups)), "train_seconds": round(sum(secs) / len(secs))}


def band_scores(runs: list[list[str]], refs: list[str], match: list[float]) -> list[dict]:
    """BLEU per fuzzy-match band (mean over seeds) and the band's item count."""
    out = []
    for (lo, hi), idx in zip(BANDS, band_items(match), strict=True):
        rec = {"band": band_label(lo, hi), "lo": lo, "hi": hi, "n": len(idx), "bleu": None}
        if idx:
            vals = [
                score([run[i] for i in idx], [refs[i] for i in idx], ["bleu"])["bleu"]["score"]
                for run in runs
            ]
            rec["bleu"] = round(sum(vals) / len(vals), 2)
        out.append(rec)
    return out


def band_items(match: list[float]) -> list[list[int]]:
    """The item indices of each fuzzy-match band (BANDS order)."""
    return [[i for i, m in enumerate(match) if band_of(m) == b] for b in range(len(BANDS))]


def paired_tests(
    runs: list[list[str]],
    against: dict[str, list[list[str]]],
    refs: list[str],
    match: list[float] | None,
    resamples: int,
    seed: int,
) -> list[dict]:
    """The paired bootstrap of ``runs`` against each row of ``against`` (label -> its seeds'
    outputs), overall and, with ``match``, within every fuzzy-match band: ΔBLEU, one-sided p
    ("runs are better") and the 95% interval of the difference."""
    groups = band_items(match) if match is not None else []
    out = []
    for label, base in against.items():
        bs = paired_bootstrap(runs, base, refs, resamples, seed)
        rec = {"against": label, "delta": bs["delta"], "p": bs["p_value"], "ci95": bs["ci95"]}
        bands = []
        for (lo, hi), idx in zip(BANDS, groups, strict=False):  # (no groups: no bands)
            b = {"band": band_label(lo, hi), "n": len(idx), "delta": None, "p": None}
            if idx:
                sub = [[run[i] for i in idx] for run in runs]
                sub_base = [[run[i] for i in idx] for run in base]
                bb = paired_bootstrap(sub, sub_base, [refs[i] for i in idx], resamples, seed)
                b |= {"delta": bb["delta"], "p": bb["p_value"]}
            bands.append(b)
        if groups:
            rec["bands"] = bands
        out.append(rec)
    return out


def switch(memories: list[str], fallback: list[str], match: list[float], threshold: float):
    return [m if s >= threshold else f for m, f, s in zip(memories, fallback, match, strict=True)]


def choose_threshold(memories, fallback, match, refs) -> tuple[float, float]:
    """The threshold (over a 0.05 grid, 1.05 = never switch) with the best BLEU; (t, BLEU)."""
    best = (1.05, -1.0)
    for t in [round(0.05 * i, 2) for i in range(22)]:
        b = score(switch(memories, fallback, match, t), refs, ["bleu"])["bleu"]["score"]
        if b > best[1]:
            best = (t, b)
    return best


# --------------------------------------------------------------------------- memory use
def memory_use(args: argparse.Namespace) -> None:
    import torch

    from relift.selfmem.generator.candidates import generate_candidates
    from relift.selfmem.generator.model import Generator

    if args.threads:
        torch.set_num_threads(args.threads)
    split = load_split(args.data, args.src_field, args.trg_field)
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    gen = Generator.load(args.generator, device)
    if gen.spec.arch == "vanilla":
        raise InputError("the vanilla generator reads no memory", path=args.generator)
    for name, memories, out in (
        ("empty", [""] * len(split), args.out_empty),
        ("reference", list(split.targets), args.out_reference),
    ):
        LOG.info("decoding %d inputs with %s memory", len(split), name)
        # the recipe's view: the reference is a perfect match (score 1) whose source is the
        # input's own; the empty memory stays empty
        memories = gen.memory_view(memories, [1.0] * len(memories), list(split.sources))
        res = generate_candidates(gen, split.sources, memories, args.num_beams, 1, args.batch_size)
        with atomic_path(out) as tmp:
            tmp.write_text("".join(one_line(texts[0]) + "\n" for texts, _ in res))


# --------------------------------------------------------------------------- table
def _parse(spec: str, n: int, what: str) -> list[str]:
    parts = spec.split("|")
    if len(parts) != n:
        raise InputError(f"bad {what} {spec!r}: expected {n} '|'-separated fields")
    return parts


def _mean_sd(xs: list[float]) -> tuple[float, float]:
    import statistics

    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def _seeds_of(field: str) -> list[str]:
    return [p for p in field.split(";") if p]


def _seed_notes(notes: list[str]) -> str:
    """One note per seed, numbered when there are several."""
    return "; ".join(
        notes if len(notes) == 1 else [f"seed {i + 1}: {n}" for i, n in enumerate(notes)]
    )


def _add_row(rows: list[dict], refs: dict, label, kind, hyps: dict, note="") -> dict:
    """Append a row; hyps: split -> one output list per seed, each as long as the split."""
    for s in SPLITS:
        for run in hyps[s]:
            if len(run) != len(refs[s]):
                raise InputError(
                    f"row {label!r}: {len(run)} {s} outputs for {len(refs[s])} examples"
                )
    rows.append({"label": label, "kind": kind, "note": note, "hyps": hyps})
    return rows[-1]


def _add_generator_rows(rows: list[dict], refs: dict, specs: list[str]) -> None:
    """``--row LABEL|KIND|DEV|TEST[|TRAIN_RESULTS]``: outputs read as they are."""
    for spec in specs:
        parts = spec.split("|")
        label, kind, dev, test = _parse("|".join(parts[:4]), 4, "--row")
        devs, tests = _seeds_of(dev), _seeds_of(test)
        if len(devs) != len(tests) or not devs:
            raise InputError(f"--row {label!r}: dev and test seed lists differ")
        row = _add_row(
            rows,
            refs,
            label,
            kind,
            {
                "dev": [read_lines(p, label) for p in devs],
                "test": [read_lines(p, label) for p in tests],
            },
        )
        if len(parts) > 4:  # the generators' train_result.json: the compute behind the row
            row["compute"] = training_compute(_seeds_of(parts[4]))


def _add_switch_row(
    rows: list[dict], refs: dict, vanilla: str, memory: dict, match: dict | None
) -> dict:
    """The fuzzy-match switch over the ``vanilla`` row, its threshold chosen on dev per seed."""
    van = next((r for r in rows if r["label"] == vanilla), None)
    if van is None:
        raise InputError(f"--vanilla names no row: {vanilla!r}")
    if match is None:
        raise InputError("--vanilla (the fuzzy-match switch) needs --match-* or --hits-*")
    hyps, notes = {s: [] for s in SPLITS}, []
    for dev_run, test_run in zip(van["hyps"]["dev"], van["hyps"]["test"], strict=True):
        t, dev_bleu = choose_threshold(memory["dev"], dev_run, match["dev"], refs["dev"])
        for s, run in (("dev", dev_run), ("test", test_run)):
            hyps[s].append(switch(memory[s], run, match[s], t))
        used = {s: sum(m >= t for m in match[s]) for s in SPLITS}
        notes.append(
            f"t = {t:.2f} chosen on dev (dev BLEU {dev_bleu:.2f}); memory used for "
            f"{used['dev']}/{len(refs['dev'])} dev, {used['test']}/{len(refs['test'])} test"
        )
    return _add_row(
        rows,
        refs,
        "fuzzy-match switch (BM25 memory if match ≥ t, else vanilla)",
        "baseline",
        hyps,
        note=_seed_notes(notes),
    )


def _best_iteration(label: str, dev_its: str, test_its: str, dev_refs: list[str]):
    """One seed of a loop row: (dev outputs, test outputs, iteration k, note) of the iteration
    with the best dev BLEU."""
    devs, tests = dev_its.split(","), test_its.split(",")
    if len(devs) != len(tests) or not devs:
        raise InputError(f"--loop {label!r}: dev and test iteration lists differ")
    dev_scores = [score(read_lines(p, label), dev_refs, ["bleu"])["bleu"]["score"] for p in devs]
    k = max(range(len(devs)), key=lambda i: dev_scores[i])
    note = (
        f"iteration {k + 1} of {len(devs)} chosen on dev (dev BLEU "
        + ", ".join(f"{x:.2f}" for x in dev_scores)
        + ")"
    )
    return read_lines(devs[k], label), read_lines(tests[k], label), k + 1, note


def _add_loop_rows(rows: list[dict], refs: dict, specs: list[str]) -> None:
    """``--loop LABEL|KIND|DEV_ITERS|TEST_ITERS``: each seed at its iteration chosen on dev."""
    for spec in specs:
        label, kind, devs_f, tests_f = _parse(spec, 4, "--loop")
        dev_seeds, test_seeds = _seeds_of(devs_f), _seeds_of(tests_f)
        if len(dev_seeds) != len(test_seeds) or not dev_seeds:
            raise InputError(f"--loop {label!r}: dev and test seed lists differ")
        hyps, chosen, notes = {s: [] for s in SPLITS}, [], []
        for dev_its, test_its in zip(dev_seeds, test_seeds):
            dev, test, k, note = _best_iteration(label, dev_its, test_its, refs["dev"])
            hyps["dev"].append(dev)
            hyps["test"].append(test)
            chosen.append(k)
            notes.append(note)
        its = ",".join(map(str, chosen))
        _add_row(rows, refs, f"{label} (iteration {its})", kind, hyps, note=_seed_notes(notes))


def _metric_fields(scores: list[dict]) -> dict:
    """Mean and sd over seeds of BLEU and chrF (None when not computed), and the seeds' values."""
    rec: dict = {}
    for metric in ("bleu", "chrf"):
        vals = [sc[metric]["score"] for sc in scores if metric in sc]
        if vals:
            mean, sd = _mean_sd(vals)
            rec |= {metric: round(mean, 2), f"{metric}_sd": round(sd, 2)}
            if len(vals) > 1:
                rec[f"{metric}_seeds"] = vals
        else:
            rec |= {metric: None, f"{metric}_sd": None}
    return rec


def _score_row(r: dict, s: str, ctx: dict, args: argparse.Namespace) -> dict:
    """The table line of row ``r`` on split ``s``: scores, collapse, copies of the memory,
    bands, compute, and the paired bootstraps against the reference row and the switch."""
    refs, memory, match = ctx["refs"][s], ctx["memory"][s], ctx["match"]
    st: CompareSettings = ctx["settings"]
    runs = r["hyps"][s]
    scores = [score(run, refs, args.metrics) for run in runs]
    copies = [sum(h == m for h, m in zip(run, memory, strict=True)) / len(refs) for run in runs]
    rec = {"split": s, "label": r["label"], "kind": r["kind"], "seeds": len(runs)}
    rec |= _metric_fields(scores)
    rec["bleu_ci95"] = bootstrap_interval(runs, refs, st.resamples, st.seed)
    rec |= {
        "distinct": min(sc["distinct"] for sc in scores),
        "collapsed": any(sc["collapsed"] for sc in scores),
        "equals_bm25_memory": round(sum(copies) / len(copies), 4),
        "note": r["note"],
    }
    if match is not None:
        rec["bands"] = band_scores(runs, refs, match[s])
    if "compute" in r:
        rec |= r["compute"]
    ref_row, switch_row = ctx["ref_row"], ctx["switch_row"]
    if r is not ref_row:
        bs = paired_bootstrap(runs, ref_row["hyps"][s], refs, st.resamples, st.seed)
        rec |= {"delta_vs_ref": bs["delta"], "p_value": bs["p_value"], "ci95": bs["ci95"]}
    if switch_row is not None and r["kind"] in ("generator", "loop"):
        # Selfmem is meaningful only where it also beats the classical baseline
        bs = paired_bootstrap(runs, switch_row["hyps"][s], refs, st.resamples, st.seed)
        rec |= {"delta_vs_switch": bs["delta"], "p_vs_switch": bs["p_value"]}
    if r["kind"] in ("generator", "loop"):
        # against every baseline and generator row it is compared with, overall and per band
        against = {a["label"]: a["hyps"][s] for a in ctx["against"] if a is not r}
        rec["tests"] = paired_tests(
            runs, against, refs, match[s] if match else None, st.resamples, st.seed
        )
    return rec


def build_table(args: argparse.Namespace, st: CompareSettings) -> dict:
    """Every row holds one output list per training seed (a ``--row``/``--loop`` file field
    lists the seeds' files separated by ';'). Scores are the mean (and sd) over seeds; the
    paired bootstrap pools the seeds (see relift.score.paired_bootstrap)."""
    data = {s: load_split(getattr(args, s), args.src_field, args.trg_field) for s in SPLITS}
    refs = {s: data[s].targets for s in SPLITS}
    memory = {s: read_lines(getattr(args, f"memory_{s}"), f"{s} memory") for s in SPLITS}
    match = match_scores(args, data)
    rows: list[dict] = []
    _add_row(rows, refs, "copy the BM25 memory", "baseline", {s: [memory[s]] for s in SPLITS})
    _add_generator_rows(rows, refs, args.row)
    switch_row = None  # the fuzzy-match switch, when --vanilla asks for it
    if args.vanilla:
        switch_row = _add_switch_row(rows, refs, args.vanilla, memory, match)
    _add_loop_rows(rows, refs, args.loop)
    ref_row = next((r for r in rows if r["label"] == args.reference), None)
    if ref_row is None:
        raise InputError(f"--reference names no row: {args.reference!r}")
    against = [rows[0]] + [r for r in (switch_row,) if r is not None]
    for label in [args.vanilla, *args.against, args.reference]:
        row = next((r for r in rows if r["label"] == label), None) if label else None
        if label and row is None:
            raise InputError(f"--against names no row: {label!r}")
        if row is not None and row not in against:
            against.append(row)
    ctx = {
        "against": against,
        "refs": refs,
        "memory": memory,
        "match": match,
        "ref_row": ref_row,
        "switch_row": switch_row,
        "settings": st,
    }
    out_rows = [_score_row(r, s, ctx, args) for r in rows for s in SPLITS]
    return {
        "task": args.task,
        "reference_row": args.reference,
        "resamples": st.resamples,
        "seeds": max(r["seeds"] for r in out_rows),
        "collapsed": sorted({r["label"] for r in out_rows if r["collapsed"]}),
        "bands": [band_label(lo, hi) for lo, hi in BANDS] if match is not None else [],
        "rows": out_rows,
    }


FIELDS = (
    "split",
    "label",
    "kind",
    "seeds",
    "bleu",
    "bleu_sd",
    "bleu_ci95",
    "chrf",
    "chrf_sd",
    "distinct",
    "collapsed",
    "equals_bm25_memory",
    "delta_vs_ref",
    "p_value",
    "ci95",
    "delta_vs_switch",
    "p_vs_switch",
    "updates",
    "train_seconds",
    "note",
)


def to_csv(table: dict) -> str:
    """One line per row and split; with bands, ``bleu <band>`` and ``n <band>`` columns."""
    bands = table.get("bands", [])
    fields = (*FIELDS, *(f"{k} {b}" for b in bands for k in ("bleu", "n")))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fields, lineterminator="\n")
    w.writeheader()
    for r in table["rows"]:
        line = {k: r.get(k, "") for k in FIELDS}
        for b in r.get("bands", []):
            line |= {f"bleu {b['band']}": b["bleu"], f"n {b['band']}": b["n"]}
        w.writerow(line)
    return buf.getvalue()


def to_html(table: dict) -> str:
    return comparison_page(table)


def table(args: argparse.Namespace) -> None:
    t = build_table(args, settings_from_args(args, CompareSettings))
    for r in t["rows"]:
        LOG.info(
            "%s %-60s BLEU %6.2f distinct %.2f%s",
            r["split"],
            r["label"][:60],
            r["bleu"] or 0.0,
            r["distinct"],
            f"  Δ {r['delta_vs_ref']:+.2f} p {r['p_value']:.3f}" if "p_value" in r else "",
        )
    write_json_atomic(args.output_json, t)
    write_text_atomic(args.output_csv, to_csv(t))
    write_text_atomic(args.output_html, to_html(t))


def _add_memory_use_args(sub) -> None:
    mu = sub.add_parser("memory-use", help="decode with empty and with reference memory")
    mu.add_argument("--generator", required=True, type=Path)
    mu.add_argument("--data", required=True, type=Path, help="split (JSONL)")
    mu.add_argument("--src-field", default="src")
    mu.add_argument("--trg-field", default="trg")
    mu.add_argument("--num-beams", type=int, default=5)
    mu.add_argument("--batch-size", type=int, default=32)
    mu.add_argument("--device", default="auto", help="auto, cpu or cuda")
    mu.add_argument("--threads", type=int, default=0)
    mu.add_argument("--out-empty", required=True, type=Path)
    mu.add_argument("--out-reference", required=True, type=Path)


def _add_table_args(sub) -> None:
    tb = sub.add_parser("table", help="the comparison table of one task")
    tb.add_argument("--task", required=True)
    tb.add_argument("--train", type=Path, help="training split (fuzzy-match switch)")
    tb.add_argument("--dev", required=True, type=Path)
    tb.add_argument("--test", required=True, type=Path)
    tb.add_argument("--src-field", default="src")
    tb.add_argument("--trg-field", default="trg")
    tb.add_argument("--memory-dev", required=True, type=Path)
    tb.add_argument("--memory-test", required=True, type=Path)
    tb.add_argument("--hits-dev", type=Path)
    tb.add_argument("--hits-test", type=Path)
    tb.add_argument("--match-dev", type=Path, help="fuzzy-match scores (memory/dev.match.txt)")
    tb.add_argument("--match-test", type=Path, help="fuzzy-match scores (memory/test.match.txt)")
    tb.add_argument(
        "--row",
        action="append",
        default=[],
        help="LABEL|KIND|DEV_HYPOTHESES|TEST_HYPOTHESES (several seeds: FILE;FILE;..)",
    )
    tb.add_argument(
        "--loop",
        action="append",
        default=[],
        help="LABEL|KIND|DEV_ITER1,DEV_ITER2,..|TEST_ITER1,TEST_ITER2,.. (best on dev; several "
        "seeds: ';'-separated iteration lists)",
    )
    tb.add_argument("--vanilla", default="", help="label of the vanilla row (fuzzy switch)")
    tb.add_argument("--reference", required=True, help="label of the row others are tested on")
    tb.add_argument(
        "--against",
        action="append",
        default=[],
        metavar="LABEL",
        help="a further row every generator and loop row is tested against, overall and per "
        "band (copying the memory, the switch, --vanilla and --reference always are)",
    )
    tb.add_argument("--metrics", default="bleu,chrf", type=lambda s: s.split(","))
    tb.add_argument("--output-json", required=True, type=Path)
    tb.add_argument("--output-csv", required=True, type=Path)
    tb.add_argument("--output-html", required=True, type=Path)
    add_settings(tb, CompareSettings)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m relift.selfmem.evaluation.compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    _add_memory_use_args(sub)
    _add_table_args(sub)
    return ap


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.cmd == "memory-use":
        memory_use(args)
    else:
        has_match = (args.match_dev and args.match_test) or (
            args.train and args.hits_dev and args.hits_test
        )
        if args.vanilla and not has_match:
            raise InputError(
                "--vanilla (the fuzzy-match switch) needs --match-dev/--match-test, or --train "
                "and --hits-*"
            )
        table(args)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
