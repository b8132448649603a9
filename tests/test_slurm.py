"""The tiny DAG on a real one-node SLURM cluster (tools/local-slurm.sh), with profiles/slurm.

The cluster (Debian's slurm-wlm with slurmdbd accounting, partitions cpu/a100/p100, fake GPU
gres) is installed when missing and started for this module, and stopped by PID afterwards, also
on failure. The test profile is profiles/slurm itself with three changes that the small test
node needs: GPU counts capped at 1, memory/runtime/CPU requests that fit one 4-CPU node, and
fast status checks. Set RELIFT_SKIP_SLURM=1 to skip (e.g. not root, not Debian).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import ROOT, SNAKEMAKE, TINY, fixture_tm_wheels, overlay, snakemake

pytestmark = pytest.mark.slow
SCRIPT = ROOT / "tools" / "local-slurm.sh"
ENV = {
    **os.environ,
    "SLURM_CI_ROOT": "/tmp/relift-slurm",
    "NODE_CPUS": "4",
    "NODE_MEM_MB": "16000",
    "NODE_GPUS": "2",
    "PARTITIONS": "cpu a100 p100",
}
# the rules that must run on a GPU partition, and which one
GPU_PARTITION = {
    "regpt_embeddings": "a100",
    "regpt_negatives": "a100",
    "regpt_stage1": "a100",
    "regpt_stage2": "a100",
    "regpt_baseline": "a100",
    "regpt_evaluate": "a100",
    "regpt_generate": "a100",
    "selfmem_train_generator": "p100",
    "selfmem_candidates": "p100",
    "selfmem_hypotheses": "p100",
}


# a slice of the tiny DAG that has CPU rules and GPU rules of both partitions (the whole tiny DAG
# has ~80 jobs; on one 4-CPU test node that would take most of the CI budget)
TARGETS = [
    "results/regpt/negatives.tsv",
    "results/regpt/eval/stage2.json",
    "results/selfmem/tm_ende/hypotheses/joint/dev.txt",
    "results/selfmem/tm_ende/candidates/joint/dev.jsonl",
]


def cluster(cmd: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), cmd], env=ENV, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def slurm():
    if os.environ.get("RELIFT_SKIP_SLURM") == "1":
        pytest.skip("RELIFT_SKIP_SLURM=1")
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("the local SLURM cluster needs root on Debian (apt-get, daemons)")
    r = cluster("start")
    try:
        assert r.returncode == 0, f"local SLURM did not start:\n{r.stdout}\n{r.stderr[-4000:]}"
        yield
    finally:
        cluster("stop", timeout=120)


def make_test_profile(tmp_path: Path) -> Path:
    """profiles/slurm adapted to the one small test node."""
    prof = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    prof["default-resources"].update(slurm_account="ci", mem_mb=1500, runtime=30)
    for res in prof["set-resources"].values():
        if res.get("gpu"):
            res.update(gpu=1, cpus_per_gpu=2)
        res.pop("cpus_per_task", None)
        res.update(mem_mb=2000, runtime=30)
    prof.update(
        {
            "slurm-init-seconds-before-status-checks": 2,
            "seconds-between-status-checks": 2,
            "jobs": 4,
            "retries": 0,
            "latency-wait": 5,
        }
    )
    out = tmp_path / "profile"
    out.mkdir()
    (out / "config.yaml").write_text(yaml.safe_dump(prof))
    return out


def sacct_jobs(since: str) -> list[dict]:
    fields = ["JobID", "JobName", "Partition", "State", "AllocTRES", "Comment"]
    r = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-S", since, "-o", ",".join(f + "%200" for f in fields)],
        capture_output=True,
        text=True,
        check=True,
    )
    return [dict(zip(fields, line.split("|"))) for line in r.stdout.splitlines() if line.strip()]


def test_tiny_dag_on_slurm_matches_local(slurm, tiny_run, tmp_path):
    wd = tmp_path / "slurm-run"
    wd.mkdir()
    fixture_tm_wheels(wd / "fixture_wheels")
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 5))
    r = snakemake(
        wd, "--profile", str(make_test_profile(tmp_path)), *TARGETS, timeout=1800, cores=None
    )
    log = r.stdout + r.stderr
    # every job completed, and every GPU rule ran in its partition with a GPU allocated
    deadline = time.time() + 60
    while True:
        jobs = sacct_jobs(since)
        if jobs and all(j["State"] == "COMPLETED" for j in jobs) or time.time() > deadline:
            break
        time.sleep(2)
    assert jobs, f"no SLURM jobs recorded by sacct\n{log[-3000:]}"
    assert all(j["State"] == "COMPLETED" for j in jobs), jobs
    ran = {}
    for j in jobs:
        rule = j["Comment"].split("_wildcards")[0].removeprefix("rule_")
        ran.setdefault(rule, []).append(j)
    for rule, part in GPU_PARTITION.items():
        if rule not in ran:
            continue
        for j in ran[rule]:
            assert j["Partition"] == part, (rule, j)
            assert "gres/gpu=1" in j["AllocTRES"], (rule, j)
    for rule in ("sotu_corpus", "regpt_tokenizer", "regpt_phrases"):
        assert all(j["Partition"] == "cpu" and "gres/gpu" not in j["AllocTRES"] for j in ran[rule])
    assert {
        "regpt_embeddings",
        "regpt_negatives",
        "regpt_stage1",
        "regpt_stage2",
        "regpt_evaluate",
        "selfmem_train_generator",
        "selfmem_candidates",
        "selfmem_hypotheses",
    } <= set(ran), set(ran)
    # the artifacts equal those of the local run of the same config
    for rel in (
        "results/regpt/phrases.npy",
        "results/regpt/negatives_ids.npy",
        "results/data/tm/test.jsonl",
        "results/data/lm/train.jsonl",
        "results/selfmem/tm_ende/memory/bm25/dev.txt",
    ):
        assert (wd / rel).read_bytes() == (tiny_run / rel).read_bytes(), rel
    np.testing.assert_allclose(
        np.load(wd / "results/regpt/phrases_embeddings.npy"),
        np.load(tiny_run / "results/regpt/phrases_embeddings.npy"),
        atol=1e-5,
    )
    import json

    ours = json.loads((wd / "results/regpt/eval/stage2.json").read_text())
    local = json.loads((tiny_run / "results/regpt/eval/stage2.json").read_text())
    # trained on CPU with the same seed and thread count: the same model up to float reduction order
    for key, value in local.items():
        if isinstance(value, float) and key != "seconds":
            assert abs(ours[key] - value) <= 1e-2 * max(1.0, abs(value)), (key, ours[key], value)
        elif key in ("chunks", "tokens", "bytes"):
            assert ours[key] == value, key


# ---- faults on the cluster: scancel, memory limit, requeue (with the real profile's retries: 2)
#
# Each test runs one training rule in a copy of the session's tiny run (every upstream output is
# there, so with --allowed-rules only the rule under test is submitted), disturbs its job while
# it trains, and reads what happened from sacct.

SACCT_FIELDS = ["JobID", "Comment", "State", "ReqMem", "MaxRSS", "Elapsed", "ExitCode"]


def copy_run(tiny_run: Path, dest: Path, *outputs: str) -> Path:
    """A copy of the tiny run (mtimes kept, so everything is up to date) less ``outputs``."""
    shutil.copytree(tiny_run, dest, symlinks=True)
    for rel in outputs:
        shutil.rmtree(dest / rel, ignore_errors=True)
    return dest


def fault_profile(tmp_path: Path, rule: str, **resources) -> Path:
    """The test profile with profiles/slurm's retries (2) and attempt-scaled ``resources`` of
    ``rule`` (expressions of ``attempt``, evaluated by Snakemake per attempt)."""
    real = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    out = make_test_profile(tmp_path)
    prof = yaml.safe_load((out / "config.yaml").read_text())
    prof["retries"] = real["retries"]
    prof["set-resources"][rule].update(resources)
    (out / "config.yaml").write_text(yaml.safe_dump(prof))
    return out


def start_snakemake(wd: Path, profile: Path, rule: str, target: str, *configfiles: Path):
    log = open(wd / "snakemake-slurm.log", "w")
    cmd = [
        SNAKEMAKE,
        "-s",
        str(ROOT / "Snakefile"),
        "--configfile",
        str(TINY),
        *map(str, configfiles),
        "--profile",
        str(profile),
        "--allowed-rules",
        rule,
        "--",
        target,
    ]
    proc = subprocess.Popen(cmd, cwd=wd, stdout=log, stderr=subprocess.STDOUT, text=True)
    proc.logfile = wd / "snakemake-slurm.log"
    return proc


def finish(proc, timeout: int = 600) -> str:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return proc.logfile.read_text()


def wait_until(what: str, cond, proc, timeout: float = 300, every: float = 0.5):
    end = time.time() + timeout
    while time.time() < end:
        value = cond()
        if value:
            return value
        if proc.poll() is not None:
            raise AssertionError(f"snakemake exited ({proc.returncode}) before {what}:\n"
                                 + proc.logfile.read_text()[-4000:])
        time.sleep(every)
    proc.kill()
    raise AssertionError(f"timeout waiting for {what}:\n" + finish(proc)[-4000:])


def of_rule(comment: str, rule: str) -> bool:
    """Whether a job's comment (the plugin's ``rule_<name>[_wildcards_...]``) names ``rule``."""
    return comment.split("_wildcards")[0] == f"rule_{rule}"


def running_job(rule: str) -> str | None:
    """The id of the RUNNING job of ``rule`` (from squeue's comment, which names the rule)."""
    r = subprocess.run(["squeue", "-h", "-o", "%i|%T|%k"], capture_output=True, text=True)
    for line in r.stdout.splitlines():
        jobid, state, comment = line.split("|", 2)
        if state == "RUNNING" and of_rule(comment, rule):
            return jobid
    return None


def checkpoints(work: Path) -> list[int]:
    return sorted(int(p.name[5:]) for p in (work / "checkpoints").glob("step-*") if p.is_dir())


def sacct_records(since: str) -> list[dict]:
    """Every record since ``since``: jobs, steps and the earlier runs of requeued jobs (-D)."""
    r = subprocess.run(
        ["sacct", "-D", "-n", "-P", "-S", since, "-o", ",".join(f + "%200" for f in SACCT_FIELDS)],
        capture_output=True,
        text=True,
        check=True,
    )
    return [dict(zip(SACCT_FIELDS, line.split("|"))) for line in r.stdout.splitlines() if line]


def rule_jobs(since: str, rule: str, settled: bool = True) -> tuple[list[dict], list[dict]]:
    """(job records of ``rule`` in submission order, all records of those jobs incl. steps);
    waits (up to 60 s) until every job record is final when ``settled``."""
    deadline = time.time() + 60
    while True:
        recs = sacct_records(since)
        jobs = [r for r in recs if "." not in r["JobID"] and of_rule(r["Comment"], rule)]
        ids = {j["JobID"] for j in jobs}
        mine = [r for r in recs if r["JobID"].split(".")[0] in ids]
        final = all(j["State"] not in ("PENDING", "RUNNING", "REQUEUED") for j in jobs[-1:])
        if not settled or final or time.time() > deadline:
            return jobs, mine
        time.sleep(1)


def print_table(title: str, records: list[dict]) -> None:
    rows = [[r[f] if f != "Comment" else r[f].split("_wildcards")[0] for f in SACCT_FIELDS]
            for r in records]
    widths = [max(len(f), *(len(row[i]) for row in rows)) for i, f in enumerate(SACCT_FIELDS)]
    print(f"\n{title}")
    for row in [SACCT_FIELDS, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))


def resumed_step(log: Path) -> tuple[int, int]:
    m = re.search(r"resumed from \S+ \(step (\d+) of (\d+)\)", log.read_text())
    assert m, f"no 'resumed from' in {log}:\n{log.read_text()[-3000:]}"
    return int(m.group(1)), int(m.group(2))


def now_stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 2))


def test_cancelled_job_is_retried_and_resumes(slurm, tiny_run, tmp_path):
    """scancel of regpt_stage1 mid-training: the profile's retry resubmits it (attempt 2, more
    memory) and attempt 2 resumes from the last checkpoint of attempt 1."""
    rule, target, work = "regpt_stage1", "results/regpt/stage1", "results/regpt/stage1.ckpt"
    wd = copy_run(tiny_run, tmp_path / "run", target, work)
    steps = overlay(tmp_path, "steps.yaml", "regpt:\n  stage1:\n    steps: 24\n    save_every: 2\n")
    prof = fault_profile(tmp_path, rule, mem_mb="1000 * attempt")
    since = now_stamp()
    proc = start_snakemake(wd, prof, rule, target, steps)
    jobid = wait_until(f"a checkpoint of a running {rule} job",
                       lambda: checkpoints(wd / work) and running_job(rule), proc)
    seen = checkpoints(wd / work)[-1]
    subprocess.run(["scancel", jobid], check=True)
    log = finish(proc)
    jobs, records = rule_jobs(since, rule)
    print_table(f"{rule}: scancel {jobid} after checkpoint step-{seen}", records)
    assert proc.returncode == 0, log[-4000:]
    assert [j["JobID"] for j in jobs][0] == jobid
    assert [j["State"].split()[0] for j in jobs] == ["CANCELLED", "COMPLETED"], jobs
    assert [j["ReqMem"] for j in jobs] == ["1000M", "2000M"], jobs
    step, total = resumed_step(wd / "results/logs/regpt/stage1.log")
    assert seen <= step < total == 24, (seen, step, total)
    assert (wd / target / "model.safetensors").exists() or any((wd / target).iterdir())
