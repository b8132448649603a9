"""Dev study of the Selfmem memory recipe: warm-started joint generators, each with a vanilla
control trained for the same total updates, read overall and per fuzzy-match band.

    python tools/recipe_study.py --base results/science/gen/vanilla --out results/science/study

Every run continues from ``--base`` (a trained vanilla generator) for ``--steps`` updates with
``--lr``/``--warmup`` through the project's trainer (``relift.selfmem.generator.train``), on the
embedded default's task (results/data/tm, results/selfmem/tm_ende/memory). Dev BLEU is the
trainer's greedy dev evaluation (the first 200 dev examples), overall and per band
(``dev_curve.csv``). The floors, copying the memory and the fuzzy-match switch over the control's
dev outputs, are computed on the same examples. Dev only: nothing here reads the test split.
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
RECIPES = {
    "control: vanilla": ("vanilla", []),
    "joint": ("joint", []),
    "joint, threshold 0.5": ("joint", ["--memory-min-match", "0.5"]),
    "joint, marker": ("joint", ["--memory-marker"]),
    "joint, marker, noise 0.3, random 0.1": (
        "joint",
        ["--memory-marker", "--memory-noise-share", "0.3", "--memory-random-share", "0.1"],
    ),
    "joint, marker, threshold 0.5, noise 0.3": (
        "joint",
        ["--memory-marker", "--memory-min-match", "0.5", "--memory-noise-share", "0.3"],
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
        cmd += ["--dev-match", str(MEM / "dev.match.txt"), "--train-hits", str(MEM / "train.hits.jsonl")]
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


if __name__ == "__main__":
    main()
