"""Dev study of the Selfmem memory recipe: warm-started joint generators, each with a vanilla
control trained for the same total updates, read overall and per fuzzy-match band.

    python tools/recipe_study.py --base results/science/gen/vanilla --out results/science/study

Every run continues from ``--base`` (a trained vanilla generator) for ``--steps`` updates with
``--lr``/``--warmup`` through the project's trainer (``relift.selfmem.generator.train``), on the
embedded default's task (results/data/tm, results/selfmem/tm_ende/memory). Dev BLEU is the
trainer's greedy dev evaluation (the first 200 dev examples), overall and per band
(``dev_curve.csv``). The floors, copying the memory and the fuzzy-match switch over the control's
dev outputs, are computed on the same examples. Dev only: nothing here reads the test split.
The ``source`` rows read ``memory/{train,dev}.source.txt`` (``python -m relift.selfmem.match
--sources``, or a run with ``memory_source: true``).
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

TM, MEM = Path("results/data/tm"), Path("results/selfmem/tm_ende/memory")
# every recipe starts from the plain joint generator (each recipe key off), whatever the
# trainer's defaults (config.yaml's recipe) are; argparse keeps the last value of a flag
PLAIN = ["--no-memory-marker", "--no-memory-segments", "--no-memory-source"]
PLAIN += ["--memory-min-match", "0"]
for _share in ("noise", "withheld", "random", "closest"):
    PLAIN += [f"--memory-{_share}-share", "0"]
CHOSEN = ["--memory-marker", "--memory-min-match", "0.5", "--memory-noise-share", "0.3"]
RECIPES = {
    "control: vanilla": ("vanilla", []),
    "joint": ("joint", PLAIN),
    "joint, threshold 0.5": ("joint", PLAIN + ["--memory-min-match", "0.5"]),
    "joint, marker": ("joint", PLAIN + ["--memory-marker"]),
    "joint, noise 0.3": ("joint", PLAIN + ["--memory-noise-share", "0.3"]),
    "joint, marker, noise 0.3, random 0.1": (
        "joint",
        PLAIN + ["--memory-marker", "--memory-noise-share", "0.3", "--memory-random-share", "0.1"],
    ),
    "joint, marker, threshold 0.5, noise 0.3": ("joint", PLAIN + CHOSEN),
    "joint, marker, threshold 0.5, noise 0.3, segments": (
        "joint",
        PLAIN + CHOSEN + ["--memory-segments"],
    ),
    "joint, source": ("joint", PLAIN + ["--memory-source"]),
    "joint, marker, threshold 0.5, noise 0.3, source": (
        "joint",
        PLAIN + CHOSEN + ["--memory-source"],
    ),
}


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


def run(name, args, out: Path, threads: int) -> dict:
    arch, extra = RECIPES[name]
    gen, work, log = out / "gen" / slug(name), out / "work" / slug(name), out / f"{slug(name)}.log"
    if not (gen / "train_result.json").exists():
        cmd = [sys.executable, "-m", "relift.selfmem.generator.train"]
        cmd += ["--train", str(TM / "train.jsonl"), "--dev", str(TM / "dev.jsonl")]
        cmd += ["--tokenizer", "results/selfmem/tm_ende/tokenizer", "--arch", arch]
        cmd += ["--train-memory", str(MEM / "train.txt"), "--dev-memory", str(MEM / "dev.txt")]
        cmd += ["--train-match", str(MEM / "train.match.txt")]
        cmd += [
            "--dev-match",
            str(MEM / "dev.match.txt"),
            "--train-hits",
            str(MEM / "train.hits.jsonl"),
        ]
        if "--memory-source" in extra:  # memory/<split>.source.txt (selfmem_memory_source)
            cmd += ["--train-memory-sources", str(MEM / "train.source.txt")]
            cmd += ["--dev-memory-sources", str(MEM / "dev.source.txt")]
        cmd += ["--init-generator", str(args.base), "--max-steps", str(args.steps)]
        cmd += ["--lr", str(args.lr), "--warmup-steps", str(args.warmup)]
        cmd += ["--eval-every", str(args.eval_every), "--seed", str(args.seed)]
        cmd += ["--threads", str(threads), "--no-progress", "--no-keep-checkpoints"]
        cmd += ["--work-dir", str(work), "--output", str(gen), *extra]
        t0 = time.time()
        with open(log, "w") as fh:
            subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, check=True)
        print(f"{name}: {time.time() - t0:.0f} s", flush=True)
    res = json.loads((gen / "train_result.json").read_text())
    curve = list(csv.DictReader(open(gen / "dev_curve.csv")))
    return {"name": name, "arch": arch, "flags": extra, "result": res, "curve": curve}


def floors(out: Path, control: Path) -> dict:
    """Dev BLEU, overall and per band, of copying the memory and of the fuzzy-match switch over
    the control's greedy dev outputs (threshold chosen on dev)."""
    from relift.score import score
    from relift.selfmem.data import load_split
    from relift.selfmem.evaluation.compare import band_scores, choose_threshold, switch
    from relift.selfmem.match import read_scores

    dev = load_split(TM / "dev.jsonl")
    mem = (MEM / "dev.txt").read_text().splitlines()
    match = read_scores(MEM / "dev.match.txt", len(dev))
    hyp_txt = out / "control_dev.txt"
    if not hyp_txt.exists():
        cmd = [sys.executable, "-m", "relift.selfmem.generator.candidates"]
        cmd += ["--generator", str(control), "--data", str(TM / "dev.jsonl")]
        cmd += ["--num-beams", "1", "--num-return-sequences", "1", "--batch-size", "64"]
        cmd += ["--threads", "2", "--output-jsonl", str(out / "control_dev.jsonl")]
        cmd += ["--output-txt", str(hyp_txt)]
        subprocess.run(cmd, check=True, capture_output=True)
    van = hyp_txt.read_text().splitlines()
    t, _ = choose_threshold(mem, van, match, dev.targets)
    rows = {}
    for name, hyps in (
        ("copy the memory", mem),
        (f"switch (t = {t:.2f})", switch(mem, van, match, t)),
    ):
        rows[name] = {
            "all": score(hyps, dev.targets, ["bleu"])["bleu"]["score"],
            "bands": [b["bleu"] for b in band_scores([hyps], dev.targets, match)],
            "n": [b["n"] for b in band_scores([hyps], dev.targets, match)],
        }
    return rows


def table(rows: list[dict], base: dict, fl: dict) -> str:
    """The study as a Markdown table: dev BLEU (greedy) at the best evaluation, per band."""
    n = next(iter(fl.values()))["n"]
    head = (
        "| recipe | updates | train s | dev BLEU | "
        + " | ".join(f"{b} ({k})" for b, k in zip(("< 0.5", "0.5-0.7", "0.7-0.9", ">= 0.9"), n))
        + " |"
    )
    lines = [head, "|" + "---|" * (4 + len(n))]
    for r in rows:
        best = max(r["curve"], key=lambda c: float(c["bleu"]))
        bands = [
            f"{float(best[f'bleu_band{i}']):.2f}" if best.get(f"bleu_band{i}") else ""
            for i in range(len(n))
        ]
        lines.append(
            f"| {r['name']} | {best['total_steps']} | {float(best['total_train_seconds']):.0f} | "
            f"{float(best['bleu']):.2f} | " + " | ".join(bands) + " |"
        )
    for name, f in fl.items():
        lines.append(
            f"| {name} | - | - | {f['all']:.2f} | "
            + " | ".join(f"{x:.2f}" if x is not None else "" for x in f["bands"])
            + " |"
        )
    lines.append(
        f"| base: vanilla (its best dev) | {base['steps']} | {base['train_seconds']:.0f} | {base['best_dev']:.2f} | | | | |"
    )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--base", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    names = args.only or list(RECIPES)
    with ThreadPoolExecutor(args.parallel) as ex:
        rows = list(ex.map(lambda n: run(n, args, args.out, 1), names))
    (args.out / "study.json").write_text(json.dumps(rows, indent=1) + "\n")
    control = args.out / "gen" / slug("control: vanilla")
    if control.exists():
        fl = floors(args.out, control)
        base = json.loads((args.base / "train_result.json").read_text())
        md = table(rows, base, fl)
        (args.out / "study.md").write_text(md)
        print(md)


if __name__ == "__main__":
    main()
