"""Where the demo's time goes: per-rule wall and CPU time of a finished run, and the start-up cost
(interpreter + imports) of every job module.

    python bench/profile_demo.py [--log .snakemake/log/<run>.snakemake.log] [--no-imports]

Wall time per job comes from the Snakemake log of the run (the latest full log by default: the
timestamps of each job's start and of its "Finished" line, 1 s resolution); CPU time from the
job's ``benchmark:`` TSV where the rule declares one (``cpu_time``). Jobs are summed per rule and
sorted by wall time. The import table runs ``python -X importtime -c 'import MODULE'`` for each
``python -m relift...`` module the rules call and prints the interpreter's own start-up beside it,
so that a rule whose work is smaller than its start-up stands out.
"""

from __future__ import annotations

import argparse
import csv
import re
import subprocess
import sys
from collections import defaultdict
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
START = re.compile(r"^(?:local)?rule (\w+):$")
JOBID = re.compile(r"^\s+jobid: (\d+)$")
BENCH = re.compile(r"^\s+benchmark: (\S+)$")
DONE = re.compile(r"^Finished (?:jobid: |job )(\d+)")


def latest_log() -> Path:
    logs = sorted((ROOT / ".snakemake" / "log").glob("*.snakemake.log"))
    full = [p for p in logs if "Finished" in p.read_text(errors="replace")]
    if not full:
        raise SystemExit("no Snakemake log with finished jobs under .snakemake/log (run the demo)")
    return full[-1]


def parse_log(path: Path) -> list[dict]:
    """One record per finished job: rule, jobid, wall seconds, benchmark path (or None)."""
    jobs: dict[int, dict] = {}
    now, pending = None, None
    for line in path.read_text(errors="replace").splitlines():
        if m := STAMP.match(line):
            now = datetime.strptime(m.group(1).replace("  ", " "), "%a %b %d %H:%M:%S %Y")
        elif m := START.match(line):
            pending = {"rule": m.group(1), "start": now, "benchmark": None}
        elif (m := JOBID.match(line)) and pending is not None:
            jobs[int(m.group(1))] = pending
        elif (m := BENCH.match(line)) and pending is not None:
            pending["benchmark"] = m.group(1)
        elif (m := DONE.match(line)) and int(m.group(1)) in jobs:
            job = jobs[int(m.group(1))]
            job["wall"] = (now - job["start"]).total_seconds()
            pending = None
    return [dict(j, jobid=k) for k, j in jobs.items() if "wall" in j]


def cpu_seconds(bench: str | None) -> float | None:
    if not bench or not (ROOT / bench).exists():
        return None
    with open(ROOT / bench, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    try:
        return float(rows[-1]["cpu_time"])
    except (IndexError, KeyError, ValueError):
        return None


def rule_table(jobs: list[dict]) -> list[tuple]:
    per = defaultdict(lambda: [0, 0.0, 0.0, 0])
    for j in jobs:
        r = per[j["rule"]]
        r[0] += 1
        r[1] += j["wall"]
        cpu = cpu_seconds(j["benchmark"])
        if cpu is not None:
            r[2] += cpu
            r[3] += 1
    return sorted(
        ((rule, n, wall, cpu if nc else None) for rule, (n, wall, cpu, nc) in per.items()),
        key=lambda r: -r[2],
    )


def job_modules() -> list[str]:
    mods = set()
    for smk in (ROOT / "workflow" / "rules").glob("*.smk"):
        mods |= set(re.findall(r"python -m (relift(?:\.\w+)+)", smk.read_text()))
    return sorted(mods)


def import_seconds(module: str) -> float:
    """Cumulative import time of `module` (and what it imports), from -X importtime."""
    r = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    total = 0
    for line in r.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[2].strip() == module:
            total = int(parts[1])
    return total / 1e6


def startup_seconds() -> float:
    import time

    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--log", type=Path, help="Snakemake log (default: the latest full run)")
    ap.add_argument("--no-imports", action="store_true", help="skip the import-time table")
    args = ap.parse_args()
    log = args.log or latest_log()
    jobs = parse_log(log)
    print(f"# {log} : {len(jobs)} finished jobs")
    total = sum(j["wall"] for j in jobs)
    print(f"{'rule':<36} {'jobs':>4} {'wall s':>8} {'share':>6} {'cpu s':>8}")
    for rule, n, wall, cpu in rule_table(jobs):
        cpu_s = f"{cpu:8.1f}" if cpu is not None else f"{'-':>8}"
        print(f"{rule:<36} {n:>4} {wall:8.0f} {wall / max(total, 1):6.1%} {cpu_s}")
    print(f"{'(sum of job wall times)':<36} {len(jobs):>4} {total:8.0f}")
    if args.no_imports:
        return
    base = startup_seconds()
    print(f"\n# start-up: interpreter {base:.2f} s; import time per job module, sorted")
    rows = sorted(((import_seconds(m), m) for m in job_modules()), reverse=True)
    for sec, mod in rows:
        print(f"{mod:<44} {sec:6.2f} s")


if __name__ == "__main__":
    main()
