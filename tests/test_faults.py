"""Kill anywhere, rerun, same result; and determinism.

The tiny DAG is run a second time, from scratch, in a fresh folder. A watcher kills (SIGKILL)
the Python process of one job of EVERY rule at a random moment of its run (seeded: the delay is
drawn from the rule's duration in the uninterrupted session run, so a failure reproduces with
the same RELIFT_KILL_SEED). Snakemake is rerun (``--keep-going --rerun-incomplete``, as the
profiles do) until the workflow completes. Then every artifact must equal the uninterrupted
run's byte for byte: outputs are written to temporaries and renamed, training resumes from its
last checkpoint (same RNG state, same data position) and Snakemake's incomplete-output marking
covers the rest. The uninterrupted run is an independent run with the same seed, so the same
comparison is the determinism check of two runs of the tiny DAG.

Files that legitimately differ between two runs are the ones that record wall-clock time; they
are compared with their time fields removed (see VOLATILE).
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import shlex
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from helpers import ROOT, SNAKEMAKE, TINY, fixture_tm_wheels

pytestmark = pytest.mark.slow
SEED = int(os.environ.get("RELIFT_KILL_SEED", "20261126"))

# keys holding wall-clock measurements (seconds, throughput, dates) or the run's history
# (`resumed_from`: the step a resumed training started from): they differ between any two runs;
# everything else in those files must be equal
TIME_KEYS = re.compile(
    r"(^|_)(seconds|secs|time|elapsed|wall|per_s|per_sec|per_second|throughput|date|timestamp"
    r"|started|finished|resumed_from)($|_)"
)


def metadata(run: Path) -> dict[str, dict]:
    """Snakemake's record of every output of a run: path -> {rule, starttime, endtime, ...}."""
    out = {}
    for f in (run / ".snakemake" / "metadata").iterdir():
        path = base64.b64decode(f.name.replace("@", "/")).decode()
        out[path] = json.loads(f.read_text())
    return out


def artifact_files(run: Path, outputs) -> dict[str, Path]:
    files = {}
    for rel in outputs:
        p = run / rel
        if p.is_dir():
            for q in sorted(p.rglob("*")):
                if q.is_file():
                    files[str(q.relative_to(run))] = q
        elif p.is_file():
            files[rel] = p
    return files


def strip_times(obj):
    if isinstance(obj, dict):
        return {k: strip_times(v) for k, v in obj.items() if not TIME_KEYS.search(k.lower())}
    if isinstance(obj, list):
        return [strip_times(v) for v in obj]
    return obj


def csv_without_times(text: str) -> list[list[str]]:
    """Rows without time columns (by header) and without long-format time rows (a cell naming a
    time key, e.g. ``step,split,tokens_per_s,value``)."""
    import csv
    import io

    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return rows
    keep = [i for i, h in enumerate(rows[0]) if not TIME_KEYS.search(h.lower())]
    out = []
    for row in rows:
        if any(TIME_KEYS.search(c.lower()) and not c.replace(".", "").isdigit() for c in row[1:]):
            if row is not rows[0]:
                continue
        out.append([row[i] for i in keep if i < len(row)])
    return out


def same_up_to_time(a: Path, b: Path) -> bool:
    """JSON / JSONL / CSV that differ only in wall-clock fields."""
    ta, tb = a.read_text(errors="replace"), b.read_text(errors="replace")
    if a.suffix == ".json":
        return strip_times(json.loads(ta)) == strip_times(json.loads(tb))
    if a.suffix == ".jsonl":
        la, lb = ta.splitlines(), tb.splitlines()
        return len(la) == len(lb) and all(
            strip_times(json.loads(x)) == strip_times(json.loads(y))
            for x, y in zip(la, lb, strict=True)
        )
    if a.suffix == ".csv":
        return csv_without_times(ta) == csv_without_times(tb)
    return False


# files whose bytes legitimately differ between two runs, and why
VOLATILE = {
    r"/tb/events\.out\.tfevents\.": "TensorBoard event files hold wall times and the host name",
    r"\.html$": "the report embeds its creation time",
    r"regpt/equal_compute\.csv$": "which dev evaluation falls within a budget of training "
    "seconds depends on how fast the machine ran (its time columns are stripped too)",
    r"(learning_curves|dev_curves)\.png$": "the learning curves plot dev scores against "
    "training seconds",
}


class Killer(threading.Thread):
    """Watch the jobs of one workflow folder and SIGKILL one job of each rule, once."""

    def __init__(self, workdir: Path, outputs: list[tuple[set, str, float]], rng: random.Random):
        super().__init__(daemon=True)
        self.workdir = str(workdir.resolve())
        self.outputs = outputs  # (shell command tokens, rule, reference duration) per job
        self.rng = rng
        self.killed: dict[str, dict] = {}  # rule -> what happened
        self.escaped: dict[str, int] = {}  # rule -> jobs that finished before their kill time
        self.stop = threading.Event()
        self.pending: dict[int, tuple[str, float, float]] = {}  # pid -> (rule, due, seen)
        self.lifetimes: dict[str, float] = {}  # rule -> shortest observed run of an escaped job

    def rule_of(self, argv: list[str]) -> tuple[str, float] | None:
        """The job whose shell command holds this process's module and every results/ path."""
        module = next(a for a in argv if a.startswith("relift."))
        paths = {a for a in argv if "results/" in a}
        for tokens, rule, dur in self.outputs:
            if module in tokens and paths <= tokens:
                return rule, dur
        return None

    def jobs(self):
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                if b"-m" not in argv or not any(a.startswith(b"relift.") for a in argv):
                    continue
                if os.readlink(f"/proc/{pid}/cwd") != self.workdir:
                    continue
            except OSError:
                continue
            yield int(pid), [a.decode(errors="replace") for a in argv if a]

    def run(self):
        while not self.stop.is_set():
            now = time.monotonic()
            alive = set()
            for pid, argv in self.jobs():
                alive.add(pid)
                if pid in self.pending:
                    continue
                hit = self.rule_of(argv)
                if hit is None or hit[0] in self.killed:
                    continue
                rule, dur = hit
                if any(r == rule for r, _, _ in self.pending.values()):
                    continue
                # a moment within the job's run: the reference run's duration, or (after a job
                # of this rule finished first) the shortest run seen here
                dur = min(dur, self.lifetimes.get(rule, dur))
                self.pending[pid] = (rule, now + self.rng.uniform(0.05, 0.9) * dur, now)
            for pid, (rule, due, seen) in list(self.pending.items()):
                if pid not in alive:
                    self.escaped[rule] = self.escaped.get(rule, 0) + 1
                    self.lifetimes[rule] = min(self.lifetimes.get(rule, 1e9), max(0.05, now - seen))
                    del self.pending[pid]
                elif now >= due:
                    try:
                        os.kill(pid, signal.SIGKILL)
                        self.killed[rule] = {"after_s": round(now - seen, 2), "pid": pid}
                    except ProcessLookupError:
                        self.escaped[rule] = self.escaped.get(rule, 0) + 1
                    del self.pending[pid]
            time.sleep(0.02)


def run_snakemake(wd: Path, *extra: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    cmd = [
        SNAKEMAKE,
        "-s",
        str(ROOT / "Snakefile"),
        "--cores",
        "2",
        "--configfile",
        str(TINY),
        "--keep-going",
        "--rerun-incomplete",
        *extra,
    ]
    return subprocess.run(cmd, cwd=wd, capture_output=True, text=True, timeout=timeout)


def test_kill_every_rule_then_rerun_gives_the_same_artifacts(tiny_run, tmp_path):
    ref_meta = metadata(tiny_run)
    rules = sorted({m["rule"] for m in ref_meta.values()})
    outputs = [
        (set(shlex.split(m["shellcmd"] or "")), m["rule"], max(0.2, m["endtime"] - m["starttime"]))
        for m in ref_meta.values()
    ]
    wd = tmp_path / "killed"
    wd.mkdir()
    fixture_tm_wheels(wd / "fixture_wheels")
    killer = Killer(wd, outputs, random.Random(SEED))
    killer.start()
    rounds, force = [], []
    try:
        for _ in range(60):
            r = run_snakemake(wd, *(["--forcerun", *force] if force else []))
            out = r.stdout + r.stderr
            failed = sorted(set(re.findall(r"Error in rule (\w+):", out)))
            rounds.append({"rc": r.returncode, "failed": failed, "forced": force})
            unexpected = set(failed) - set(killer.killed)
            assert not unexpected, f"rules failed without a kill: {unexpected}\n{out[-5000:]}"
            if r.returncode != 0:
                force = []  # rerun what the kills interrupted
                continue
            # rules whose every job finished before its kill moment: run them (and what depends
            # on them) again until one job is killed
            force = sorted(set(rules) - set(killer.killed))
            if not force:
                break
    finally:
        killer.stop.set()
        killer.join()
    # a forced rerun of a finished rule that is then killed loses outputs that no remaining job
    # needs (Snakemake does not rebuild intermediate files of up-to-date results): build them
    missing = sorted(p for p in ref_meta if not (wd / p).exists())
    if missing:
        r = run_snakemake(wd, *missing)
        rounds.append({"rc": r.returncode, "rebuilt": missing})
    print(f"kill seed {SEED}: {len(rounds)} snakemake runs {rounds}")
    print(f"killed (seconds after the job was seen): {killer.killed}")
    print(f"jobs that finished before their kill moment: {killer.escaped}")
    assert rounds[-1]["rc"] == 0, rounds
    assert set(killer.killed) == set(rules), f"never killed: {set(rules) - set(killer.killed)}"

    # the same artifacts as the uninterrupted run, and no temporaries left behind
    ours, ref = artifact_files(wd, ref_meta), artifact_files(tiny_run, ref_meta)
    assert set(ours) == set(ref), set(ours) ^ set(ref)
    differ = []
    for rel, p in ref.items():
        q = ours[rel]
        if p.read_bytes() == q.read_bytes():
            continue
        if any(re.search(pat, rel) for pat in VOLATILE):
            continue
        if p.suffix in (".json", ".jsonl", ".csv") and same_up_to_time(p, q):
            continue
        differ.append(rel)
    assert not differ, f"artifacts differ from the uninterrupted run: {differ}"
    leftovers = [str(p.relative_to(wd)) for p in (wd / "results").rglob("*") if ".tmp" in p.name]
    assert not leftovers, leftovers
