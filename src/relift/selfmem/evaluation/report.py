"""Report of the Selfmem loop for one task: scores per iteration, variant and architecture.

Reads ``<root>/<arch>/<variant>/iter<k>/{scores,memory_scores}.<split>.json`` (dev and test, k =
0..iterations) and writes

* ``--output-csv``: one row per (arch, variant, iteration, split) with the hypothesis scores
  (BLEU, chrF++, TER; ROUGE-1/2/Lsum for summarisation), the scores of the memory itself (the
  paper's Table 3: memory quality vs hypothesis quality) and whether the iteration is the one
  chosen on DEV for that variant;
* ``--output-html``: the summary (BM25 memory = iteration 0, then every variant at the iteration
  chosen on dev among 1..iterations, with its dev score and its test scores), the per-iteration
  table, the memory-vs-hypothesis table and the selector's training summary;
* ``--output-png``: the primary score (BLEU, or the mean ROUGE) against the iteration, for the
  hypotheses and for the memory, dev and test.

The oracle variants select with the REFERENCE: they are labelled as an upper bound everywhere and
never count as a result.
"""

from __future__ import annotations

import argparse
import csv
import html
import json
from dataclasses import dataclass
from pathlib import Path

from relift.io import InputError, atomic_path, run_cli, write_text_atomic

SPLITS = ("dev", "test")


@dataclass
class Variant:
    name: str
    select: str
    beam_b: int
    memory_mode: str

    @property
    def label(self) -> str:
        if self.select == "oracle":
            what = "ORACLE selection (reference; upper bound)"
        else:
            what = "self memory (selector)"
        extra = []
        if self.beam_b > 1:
            extra.append(f"Top-B, B={self.beam_b}")
        if self.memory_mode == "augment":
            extra.append("augmented memory")
        return f"{self.name}: {what}" + (f", {', '.join(extra)}" if extra else "")


def parse_variant(spec: str) -> Variant:
    try:
        name, rest = spec.split("=", 1)
        select, b, mode = rest.split(":")
        return Variant(name, select, int(b), mode)
    except ValueError:
        raise InputError(f"--variants expects NAME=SELECT:B:MODE, got {spec!r}") from None


def metric_columns(metric: str) -> list[tuple[str, str]]:
    """(column, label) of the scores of a metric family."""
    if metric == "bleu":
        return [("bleu", "BLEU"), ("chrf", "chrF++"), ("ter", "TER")]
    return [("rouge1", "R-1"), ("rouge2", "R-2"), ("rougeLsum", "R-Lsum")]


def flat_scores(res: dict, metric: str) -> dict[str, float]:
    if metric == "bleu":
        return {k: float(res[k]["score"]) for k in ("bleu", "chrf", "ter")}
    r = res["rouge"]
    return {k: float(r[k]["score"]) for k in ("rouge1", "rouge2", "rougeLsum")}


def primary(scores: dict[str, float], metric: str) -> float:
    if metric == "bleu":
        return scores["bleu"]
    return (scores["rouge1"] + scores["rouge2"] + scores["rougeLsum"]) / 3


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError("scores missing", path=path) from None
    except json.JSONDecodeError as err:
        raise InputError(f"not valid JSON ({err.msg})", path=path) from None


def collect(root: Path, archs, variants, iterations: int, metric: str) -> list[dict]:
    rows = []
    for arch in archs:
        for v in variants:
            for k in range(iterations + 1):
                d = root / arch / v.name / f"iter{k}"
                for split in SPLITS:
                    hyp = flat_scores(_read(d / f"scores.{split}.json"), metric)
                    mem = flat_scores(_read(d / f"memory_scores.{split}.json"), metric)
                    row = {
                        "arch": arch,
                        "variant": v.name,
                        "system": "BM25 memory" if k == 0 else v.label,
                        "select": v.select,
                        "beam_b": v.beam_b,
                        "memory_mode": v.memory_mode,
                        "iteration": k,
                        "split": split,
                    }
                    row.update({f"hyp_{c}": s for c, s in hyp.items()})
                    row.update({f"mem_{c}": s for c, s in mem.items()})
                    row["hyp_primary"] = primary(hyp, metric)
                    row["mem_primary"] = primary(mem, metric)
                    rows.append(row)
    # the iteration chosen on DEV (among 1..iterations; 0 is the BM25 baseline)
    for arch in archs:
        for v in variants:
            dev = {
                r["iteration"]: r["hyp_primary"]
                for r in rows
                if r["arch"] == arch and r["variant"] == v.name and r["split"] == "dev"
            }
            ks = [k for k in dev if k >= 1] or [0]
            best = max(ks, key=lambda k: (dev[k], -k))
            for r in rows:
                if r["arch"] == arch and r["variant"] == v.name:
                    r["chosen_on_dev"] = r["iteration"] == best
    return rows


def write_csv(path: Path, rows: list[dict]) -> None:
    cols = list(rows[0])
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.2f}" if isinstance(v, float) else v) for k, v in r.items()})


def _table(head: list[str], body: list[list]) -> str:
    def cell(x):
        return f"{x:.2f}" if isinstance(x, float) else html.escape(str(x))

    out = ["<table>", "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for row in body:
        out.append("<tr>" + "".join(f"<td>{cell(x)}</td>" for x in row) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _get(rows, **kw) -> dict:
    for r in rows:
        if all(r[k] == v for k, v in kw.items()):
            return r
    raise KeyError(kw)


def _page_head(task: str, pname: str) -> list[str]:
    return [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>Selfmem loop: {html.escape(task)}</title>",
        "<style>body{font-family:sans-serif}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #999;padding:2px 8px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}</style></head><body>",
        f"<h1>Selfmem loop: {html.escape(task)}</h1>",
        "<p>Iteration 0 is the BM25 memory. Each variant is reported at the iteration chosen on "
        f"DEV {pname} (among 1..N); the test scores are only reported. Rows marked ORACLE select "
        "the memory with the reference: an upper bound for the selector, not a result.</p>",
    ]


def _summary_table(rows: list[dict], arch: str, variants, cols, pname: str) -> str:
    """BM25 memory, then every variant at its iteration chosen on dev: dev primary, test scores."""
    head = ["system", "iteration (dev)", f"dev {pname}"] + [f"test {lab}" for _, lab in cols]
    base_dev = _get(rows, arch=arch, variant=variants[0].name, iteration=0, split="dev")
    base_test = _get(rows, arch=arch, variant=variants[0].name, iteration=0, split="test")
    body = [["BM25 memory", 0, base_dev["hyp_primary"]] + [base_test[f"hyp_{c}"] for c, _ in cols]]
    for v in variants:
        dev = next(
            r
            for r in rows
            if r["arch"] == arch
            and r["variant"] == v.name
            and r["split"] == "dev"
            and r["chosen_on_dev"]
        )
        test = _get(rows, arch=arch, variant=v.name, iteration=dev["iteration"], split="test")
        body.append(
            [v.label, dev["iteration"], dev["hyp_primary"]] + [test[f"hyp_{c}"] for c, _ in cols]
        )
    return _table(head, body)


def _iteration_rows(rows: list[dict], arch: str, variants):
    """(variant, k, [dev row, test row]) for every variant and iteration, in order."""
    for v in variants:
        for k in sorted({r["iteration"] for r in rows if r["variant"] == v.name}):
            yield (
                v,
                k,
                [_get(rows, arch=arch, variant=v.name, iteration=k, split=s) for s in SPLITS],
            )


def _hypothesis_table(rows: list[dict], arch: str, variants, cols) -> str:
    """The hypothesis scores of every iteration, dev and test."""
    head = ["system", "iteration"] + [f"{s} {lab}" for s in SPLITS for _, lab in cols]
    body = []
    for v, k, rs in _iteration_rows(rows, arch, variants):
        mark = " (chosen on dev)" if rs[0]["chosen_on_dev"] else ""
        body.append(
            [("BM25 memory" if k == 0 else v.label) + mark, k]
            + [r[f"hyp_{c}"] for r in rs for c, _ in cols]
        )
    return _table(head, body)


def _memory_table(rows: list[dict], arch: str, variants, pname: str) -> str:
    """The primary score of the memory and of the hypothesis at every iteration (Table 3)."""
    head = ["system", "iteration"] + [
        f"{s} {pname} of {w}" for s in SPLITS for w in ("memory", "hypothesis")
    ]
    body = [
        ["BM25 memory" if k == 0 else v.label, k]
        + [x for r in rs for x in (r["mem_primary"], r["hyp_primary"])]
        for v, k, rs in _iteration_rows(rows, arch, variants)
    ]
    return _table(head, body)


def _selector_section(sel: dict, pname: str) -> list[str]:
    """The selector's training summary (its train_result.json)."""
    return [
        "<h3>Selector (dev selection quality)</h3>",
        _table(
            ["train pools", "steps (best)", "selector pick", "beam top-1", "ORACLE pick"],
            [
                [
                    sel.get("train_pools"),
                    f"{sel.get('steps')} ({sel.get('best_step')})",
                    float(sel.get("best_dev_selection") or 0.0),
                    float(sel.get("dev_beam_top1") or 0.0),
                    float(sel.get("dev_oracle") or 0.0),
                ]
            ],
        ),
        "<p>Corpus score of one candidate per dev input of iteration 0's pools (BM25 "
        f"memory), on the dev inputs the selector was tuned on ({pname}).</p>",
    ]


def write_html(
    path: Path, task: str, rows: list[dict], archs, variants, metric: str, selectors: dict
) -> None:
    cols = metric_columns(metric)
    pname = "BLEU" if metric == "bleu" else "mean ROUGE"
    parts = _page_head(task, pname)
    for arch in archs:
        parts.append(f"<h2>{html.escape(arch)} generator</h2>")
        parts += ["<h3>Summary</h3>", _summary_table(rows, arch, variants, cols, pname)]
        parts += [
            "<h3>Hypothesis scores per iteration</h3>",
            _hypothesis_table(rows, arch, variants, cols),
        ]
        parts += [
            "<h3>Memory quality vs hypothesis quality (the paper's Table 3)</h3>",
            "<p>The memory scored as if it were the output (augmented memories are the whole "
            "concatenation).</p>",
            _memory_table(rows, arch, variants, pname),
        ]
        sel = selectors.get(arch)
        if sel:
            parts += _selector_section(sel, pname)
    parts.append("</body></html>")
    write_text_atomic(path, "\n".join(parts) + "\n")


def write_png(path: Path, task: str, rows: list[dict], archs, variants, metric: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pname = "BLEU" if metric == "bleu" else "mean ROUGE"
    fig, axes = plt.subplots(
        2 * len(archs), 2, figsize=(10, 6.5 * len(archs)), squeeze=False, sharex=True
    )
    for a, arch in enumerate(archs):
        for row, (what, key) in enumerate(
            (("hypothesis", "hyp_primary"), ("memory", "mem_primary"))
        ):
            for c, split in enumerate(SPLITS):
                ax = axes[2 * a + row][c]
                for v in variants:
                    pts = sorted(
                        (r["iteration"], r[key])
                        for r in rows
                        if r["arch"] == arch and r["variant"] == v.name and r["split"] == split
                    )
                    style = "--" if v.select == "oracle" else "-"
                    label = f"{v.name} (ORACLE, upper bound)" if v.select == "oracle" else v.name
                    ax.plot(
                        [p[0] for p in pts], [p[1] for p in pts], style, marker="o", label=label
                    )
                    chosen = [
                        r["iteration"]
                        for r in rows
                        if r["arch"] == arch
                        and r["variant"] == v.name
                        and r["split"] == split
                        and r["chosen_on_dev"]
                    ]
                    if chosen and what == "hypothesis":
                        y = dict(pts)[chosen[0]]
                        ax.plot([chosen[0]], [y], marker="*", markersize=14, color="k", zorder=5)
                ax.set_title(f"{arch}: {what} {pname}, {split}")
                ax.set_xlabel("iteration (0 = BM25 memory)")
                ax.set_ylabel(pname)
                ax.grid(alpha=0.3)
                ax.xaxis.get_major_locator().set_params(integer=True)
        axes[2 * a][0].legend(fontsize=8)
    fig.suptitle(f"Selfmem loop, {task} (star: iteration chosen on dev)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def _read_selectors(root: Path, archs) -> dict:
    """Each architecture's selector training summary, where it exists."""
    selectors = {}
    for arch in archs:
        p = root / arch / "selector" / "model" / "train_result.json"
        if p.exists():
            selectors[arch] = json.loads(p.read_text())
    return selectors


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m relift.selfmem.evaluation.report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--root", required=True, type=Path, help="results/selfmem/<task>")
    ap.add_argument("--task", required=True)
    ap.add_argument("--archs", required=True, nargs="+")
    ap.add_argument("--variants", required=True, nargs="+", metavar="NAME=SELECT:B:MODE")
    ap.add_argument("--iterations", required=True, type=int)
    ap.add_argument("--metric", choices=("bleu", "rouge"), default="bleu")
    ap.add_argument("--output-csv", required=True, type=Path)
    ap.add_argument("--output-html", required=True, type=Path)
    ap.add_argument("--output-png", required=True, type=Path)
    return ap


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    variants = [parse_variant(s) for s in args.variants]
    rows = collect(args.root, args.archs, variants, args.iterations, args.metric)
    selectors = _read_selectors(args.root, args.archs)
    write_csv(args.output_csv, rows)
    write_html(args.output_html, args.task, rows, args.archs, variants, args.metric, selectors)
    write_png(args.output_png, args.task, rows, args.archs, variants, args.metric)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
