"""How long Snakemake takes to plan the full default DAG with 10 Selfmem iterations.

    python bench/bench_dag.py [--iterations 10] [--repeat 3]

Runs `snakemake -n` (dry run, from scratch, in an empty folder) on the embedded default with
`selfmem.loop.iterations` raised, and the same with the default iteration count as the baseline
measured in the same run. Target: <= 5 s for 10 iterations.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def plan(workdir: Path, overlay: Path | None) -> tuple[float, int]:
    cmd = [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "-n", "--quiet", "rules", "--cores", "2"]
    if overlay:
        cmd += ["--configfile", str(overlay)]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, check=True)
    dt = time.perf_counter() - t0
    jobs = re.search(r"^total\s+(\d+)", r.stdout + r.stderr, re.M)
    return dt, int(jobs.group(1)) if jobs else -1


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wd = Path(tmp)
        ov = wd / "iters.yaml"
        ov.write_text(f"selfmem:\n  loop:\n    iterations: {args.iterations}\n")
        base = min(plan(wd, None) for _ in range(args.repeat))
        many = min(plan(wd, ov) for _ in range(args.repeat))
    print(f"default iterations: {base[1]} jobs planned in {base[0]:.2f} s")
    print(
        f"{args.iterations} iterations: {many[1]} jobs planned in {many[0]:.2f} s ({many[0] / base[0]:.2f}x)"
    )
    print(f"target <= 5 s: {'met' if many[0] <= 5 else 'NOT met'}")


if __name__ == "__main__":
    main()
