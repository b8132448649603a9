"""The demo's Selfmem generator chain: vanilla then joint continuing from it (the embedded
default), against the earlier design, vanilla and joint from scratch side by side.

    python bench/bench_demo_chain.py [--steps 100]

Reads the results of ``make demo`` (the translation memory, its BM25 memory and match scores,
the tokenizer and the trained vanilla generator). Four short trainings through the project's
trainer, no dev evaluation, measure seconds per update:

- side by side (the baseline design): vanilla and joint from scratch at the same time, one
  thread each;
- one after the other (the embedded default): vanilla alone, then joint warm-started from the
  demo's vanilla generator alone, each with config.yaml's ``threads`` (a plain ``snakemake``
  gives each job that many).

It prints the seconds per update of each, and the chain's projected training time at the
embedded default's budgets (config.yaml: ``generator.max_steps`` for vanilla, and for joint
``max_steps`` from scratch or ``warm_start_train.max_steps`` from vanilla), with the ratio of
the embedded default's chain to the baseline's. Take it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TM, MEM = Path("results/data/tm"), Path("results/selfmem/tm_ende/memory")


def command(arch: str, steps: int, out: Path, init: Path | None, threads: int = 1) -> list[str]:
    cmd = [sys.executable, "-m", "relift.selfmem.generator.train", "--arch", arch]
    cmd += ["--train", str(TM / "train.jsonl"), "--dev", str(TM / "dev.jsonl")]
    cmd += ["--tokenizer", "results/selfmem/tm_ende/tokenizer"]
    cmd += ["--train-memory", str(MEM / "train.txt"), "--dev-memory", str(MEM / "dev.txt")]
    cmd += [
        "--train-match",
        str(MEM / "train.match.txt"),
        "--dev-match",
        str(MEM / "dev.match.txt"),
    ]
    cmd += ["--train-hits", str(MEM / "train.hits.jsonl")]
    cmd += ["--max-steps", str(steps), "--eval-every", str(10 * steps), "--threads", str(threads)]
    cmd += ["--no-progress", "--no-keep-checkpoints", "--work-dir", str(out / "work")]
    cmd += ["--output", str(out / "gen")]
    if init is not None:
        cmd += ["--init-generator", str(init)]
    return cmd


def seconds_per_update(out: Path) -> float:
    res = json.loads((out / "gen" / "train_result.json").read_text())
    return res["train_seconds"] / res["steps"]


def run(jobs: dict[str, list[str]], tmp: Path) -> dict[str, float]:
    """Start the jobs together; their seconds per update."""
    procs = {}
    for name, cmd in jobs.items():
        log = open(tmp / f"{name}.log", "w")
        procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    for name, p in procs.items():
        if p.wait() != 0:
            raise SystemExit(f"{name} failed: see {tmp / (name + '.log')}")
    return {name: seconds_per_update(tmp / name) for name in jobs}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--steps", type=int, default=100, help="updates of each measuring run")
    ap.add_argument(
        "--vanilla", type=Path, default=Path("results/selfmem/tm_ende/generator/vanilla")
    )
    args = ap.parse_args()
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    gen, threads = cfg["selfmem"]["generator"], cfg["threads"]
    n_v, n_j, n_cont = gen["max_steps"], gen["max_steps"], gen["warm_start_train"]["max_steps"]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        t0 = time.time()
        side = run(
            {
                "vanilla_side": command("vanilla", args.steps, tmp / "vanilla_side", None),
                "joint_side": command("joint", args.steps, tmp / "joint_side", None),
            },
            tmp,
        )
        alone = run(
            {"vanilla_alone": command("vanilla", args.steps, tmp / "vanilla_alone", None, threads)},
            tmp,
        )
        alone |= run(
            {"joint_warm": command("joint", args.steps, tmp / "joint_warm", args.vanilla, threads)},
            tmp,
        )
        wall = time.time() - t0
    for name, s in {**side, **alone}.items():
        print(f"{name:14s} {s:.3f} s/update")
    base = max(n_v * side["vanilla_side"], n_j * side["joint_side"])
    mine = n_v * alone["vanilla_alone"] + n_cont * alone["joint_warm"]
    print(f"baseline, side by side: vanilla {n_v} | joint {n_j} from scratch: {base / 60:.1f} min")
    print(
        f"embedded default, chained ({threads} threads): vanilla {n_v} then joint +{n_cont}: "
        f"{mine / 60:.1f} min"
    )
    print(f"ratio chained / side by side: {mine / base:.2f}  (measuring runs: {wall:.0f} s)")


if __name__ == "__main__":
    main()
