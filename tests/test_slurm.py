"""The tiny DAG on a real one-node SLURM cluster (tools/local-slurm.sh), with
`snakemake --profile slurm` as a user types it.

The cluster (Debian's slurm-wlm with slurmdbd accounting, partitions cpu/a100/p100, fake GPU
gres) is installed when missing and started for this module, and stopped by PID afterwards, also
on failure. The profile is found by its bare name: the install step (`make install` runs
`python -m relift.profiles install`) links profiles/slurm into a temporary Snakemake profile
folder (XDG_CONFIG_HOME; the real user's is never touched), and every run here is
`snakemake --profile slurm --profile NODE`. NODE is a second profile with what the small test
node needs and nothing else: GPU counts capped at 1, memory/runtime/CPU requests that fit one
4-CPU node (Snakemake replaces a whole top-level key of an earlier profile, so NODE restates
default-resources and set-resources from profiles/slurm with those changes), and fast status
checks. Set RELIFT_SKIP_SLURM=1 to skip (e.g. not root, not Debian).

The fault tests (issue 7) then train three rules on the cluster with the profile's retries and
disturb them: a job cancelled with scancel is retried and resumes from its checkpoint, a job
over its memory is killed by SLURM and retried with twice the memory, a requeued job runs
again under the same id and resumes. Each prints its rule's sacct records (pytest -s).
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import ROOT, fixture_tm_wheels, overlay, snakemake, snakemake_cmd

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


# One cluster per machine: `stop` scancels every job, so a second test session on the same
# machine (two checkouts, or CI beside a developer's run) would cancel this one's jobs. Sessions
# take turns on this lock, held from start to stop.
LOCK = Path("/tmp/relift-slurm.lock")
LOCK_WAIT_S = 3600


@pytest.fixture(scope="module")
def slurm():
    if os.environ.get("RELIFT_SKIP_SLURM") == "1":
        pytest.skip("RELIFT_SKIP_SLURM=1")
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("the local SLURM cluster needs root on Debian (apt-get, daemons)")
    with open(LOCK, "w") as lock:
        deadline = time.time() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                assert time.time() < deadline, f"{LOCK} held by another test session for an hour"
                time.sleep(5)
        r = cluster("start")
        try:
            assert r.returncode == 0, f"local SLURM did not start:\n{r.stdout}\n{r.stderr[-4000:]}"
            yield
        finally:
            cluster("stop", timeout=120)


@pytest.fixture(scope="module")
def profile_env(tmp_path_factory) -> dict[str, str]:
    """The environment of a user who ran the install step: `--profile slurm` is relift's."""
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path_factory.mktemp("xdg-config"))}
    env.pop("SNAKEMAKE_PROFILE", None)
    r = subprocess.run(
        [sys.executable, "-m", "relift.profiles", "install", "--checkout", str(ROOT)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "linked" in r.stdout, r.stdout
    link = Path(env["XDG_CONFIG_HOME"]) / "snakemake" / "slurm"
    assert link.resolve() == ROOT / "profiles" / "slurm"
    return env


def make_test_profile(tmp_path: Path) -> Path:
    """The second profile, given after `--profile slurm`: the one small test node."""
    real = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    prof = {k: real[k] for k in ("default-resources", "set-resources")}
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
    out = tmp_path / "node-profile"
    out.mkdir()
    (out / "config.yaml").write_text(yaml.safe_dump(prof))
    return out


def sacct_jobs(since: str, workdir: Path) -> list[dict]:
    """The jobs submitted since ``since`` from ``workdir`` (a run's own jobs, no one else's)."""
    fields = ["JobID", "JobName", "Partition", "State", "AllocTRES", "Comment", "WorkDir"]
    r = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-S", since, "-o", ",".join(f + "%400" for f in fields)],
        capture_output=True,
        text=True,
        check=True,
    )
    jobs = [dict(zip(fields, line.split("|"))) for line in r.stdout.splitlines() if line.strip()]
    return [j for j in jobs if Path(j["WorkDir"]).resolve() == workdir.resolve()]


def test_tiny_dag_on_slurm_matches_local(slurm, profile_env, tiny_run, tmp_path):
    wd = tmp_path / "slurm-run"
    wd.mkdir()
    fixture_tm_wheels(wd / "fixture_wheels")
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 5))
    node = make_test_profile(tmp_path)
    r = snakemake(
        wd,
        *("--profile", "slurm", "--profile", str(node)),
        *TARGETS,
        timeout=1800,
        cores=None,
        env=profile_env,
    )
    log = r.stdout + r.stderr
    assert f"Using profiles slurm and {node} and workflow specific profile" in log, log[:2000]
    # every job completed, and every GPU rule ran in its partition with a GPU allocated
    deadline = time.time() + 60
    while True:
        jobs = sacct_jobs(since, wd)
        if jobs and all(j["State"] == "COMPLETED" for j in jobs) or time.time() > deadline:
            break
        time.sleep(2)
    assert jobs, f"no SLURM jobs recorded by sacct\n{log[-3000:]}"
    assert all(j["State"] == "COMPLETED" for j in jobs), (jobs, log[-3000:])
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
        "results/selfmem/tm_ende/memory/dev.txt",
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


# ---- faults on the cluster (issue 7): scancel, a memory limit, a requeue
#
# One `snakemake --profile slurm --profile NODE` run (NODE without `retries`, so profiles/slurm's
# `retries: 2` applies) trains three rules at once in a copy of the session's tiny run (every
# upstream output is there and --allowed-rules keeps Snakemake to these three jobs), and a
# watcher disturbs them:
#   regpt_stage1            scancel once it has a checkpoint: the retry must resume from it
#   selfmem_train_generator scontrol requeue once it has a checkpoint: the same job id runs
#                           again (SLURM holds it for AuthInfo=cred_expire) and resumes
#   selfmem_selector_train  attempt 1 gets less memory than it needs: SLURM kills it
#                           (JobAcctGatherParams=OverMemoryKill) and attempt 2 gets twice as much
# One run instead of three: the plugin backs its status checks off by 10 s per quiet check, so
# every separate run would cost a minute or two of waiting. Each test reads its rule's records.

FAULT_RULES = {  # rule -> (output, work dir of its checkpoints, log)
    "regpt_stage1": (
        "results/regpt/stage1",
        "results/regpt/stage1.ckpt",
        "results/logs/regpt/stage1.log",
    ),
    "selfmem_train_generator": (
        "results/selfmem/tm_ende/generator/joint",
        "results/selfmem/tm_ende/work/joint",
        "results/logs/selfmem/tm_ende/train_generator_joint.log",
    ),
    "selfmem_selector_train": (
        "results/selfmem/tm_ende/joint/selector/model",
        "results/selfmem/tm_ende/work/selector_joint",
        "results/logs/selfmem/tm_ende/selector_train_joint.log",
    ),
}
# long enough to be caught between checkpoints (~0.5 s a step here), short enough for CI
FAULT_OVERLAY = """\
regpt:
  stage1: {max_steps: 24, save_every: 2}
selfmem:
  generator:
    max_steps: 16
    eval_every: 2
    # the joint generator continues from vanilla: 16 steps of its own
    warm_start_train: {max_steps: 16, lr: 0.002, warmup_steps: 1}
"""
# the plugin checks job states every 2 s, then 10 s longer after every check without news
RETRY_WAIT = 120
SELECTOR_MEM = 650  # MB on attempt 1; the selector's job step peaks at 0.9-1.0 GB
SACCT_FIELDS = ["JobID", "Comment", "State", "ReqMem", "MaxRSS", "Elapsed", "ExitCode"]


def fault_profile(tmp_path: Path) -> Path:
    """The node profile without `retries` (profiles/slurm's apply) and with attempt-scaled
    memory; one CPU per job so that all three fit the 4-CPU node at once (GPU jobs: 1 of the
    node's 2 fake GPUs)."""
    out = make_test_profile(tmp_path)
    prof = yaml.safe_load((out / "config.yaml").read_text())
    del prof["retries"]
    res = prof["set-resources"]
    for rule in ("regpt_stage1", "selfmem_train_generator"):
        res[rule].update(cpus_per_gpu=1, mem_mb="1000 * attempt")
    res["selfmem_selector_train"] = {"cpus_per_task": 1, "mem_mb": f"{SELECTOR_MEM} * attempt"}
    (out / "config.yaml").write_text(yaml.safe_dump(prof))
    return out


def of_rule(comment: str, rule: str) -> bool:
    """Whether a job's comment (the plugin's ``rule_<name>[_wildcards_...]``) names ``rule``."""
    return comment.split("_wildcards")[0] == f"rule_{rule}"


def queue() -> list[tuple[str, str, str]]:
    """(job id, state, rule) of every job in squeue (the job comment names the rule)."""
    r = subprocess.run(["squeue", "-h", "-o", "%i|%T|%k"], capture_output=True, text=True)
    jobs = []
    for line in r.stdout.splitlines():
        jobid, state, comment = line.split("|", 2)
        jobs.append((jobid, state, comment.split("_wildcards")[0].removeprefix("rule_")))
    return jobs


def checkpoint_steps(work: Path) -> list[int]:
    """Complete checkpoints (``step-N``; a save in progress is ``.step-N.tmp``)."""
    return sorted(int(p.name[5:]) for p in (work / "checkpoints").glob("step-*") if p.is_dir())


def sacct_records(since: str) -> list[dict]:
    """Every record since ``since``: jobs, their steps, and earlier runs of requeued jobs (-D)."""
    fields = ",".join(f + "%200" for f in SACCT_FIELDS)
    r = subprocess.run(
        ["sacct", "-D", "-n", "-P", "-S", since, "-o", fields],
        capture_output=True,
        text=True,
        check=True,
    )
    return [dict(zip(SACCT_FIELDS, line.split("|"))) for line in r.stdout.splitlines() if line]


def rule_records(records: list[dict], rule: str) -> tuple[list[dict], list[dict]]:
    """(job records of ``rule`` in submission order, those records with their steps)."""
    jobs = [r for r in records if "." not in r["JobID"] and of_rule(r["Comment"], rule)]
    ids = {j["JobID"] for j in jobs}
    return jobs, [r for r in records if r["JobID"].split(".")[0] in ids]


def print_table(title: str, records: list[dict]) -> None:
    rows = [[r[f].split("_wildcards")[0] for f in SACCT_FIELDS] for r in records]
    widths = [max([len(f)] + [len(row[i]) for row in rows]) for i, f in enumerate(SACCT_FIELDS)]
    print(f"\n{title}")
    for row in [SACCT_FIELDS, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())


def kbytes(size: str) -> int:
    """sacct's MaxRSS (``834816K``, ``1.2G``, empty) in KiB."""
    if not size:
        return 0
    scale = {"K": 1, "M": 1024, "G": 1024**2}.get(size[-1])
    return int(float(size[:-1]) * scale) if scale else int(size) // 1024


def resumed_step(log: Path) -> tuple[int, int]:
    """(step, max steps) of the log's ``resumed from ... (step N of M)`` line."""
    m = re.search(r"resumed from \S+ \(step (\d+) of (\d+)\)", log.read_text())
    assert m, f"no 'resumed from' in {log}:\n{log.read_text()[-3000:]}"
    return int(m.group(1)), int(m.group(2))


@pytest.fixture(scope="module")
def faults(slurm, profile_env, tiny_run, tmp_path_factory):
    """Run the three rules on the cluster, disturb them, return what happened."""
    tmp = tmp_path_factory.mktemp("slurm-faults")
    wd = tmp / "run"
    shutil.copytree(tiny_run, wd, symlinks=True)  # mtimes kept: everything up to date
    for out, work, _ in FAULT_RULES.values():
        shutil.rmtree(wd / out, ignore_errors=True)
        shutil.rmtree(wd / work, ignore_errors=True)
    cmd = snakemake_cmd(
        "--profile",
        "slurm",
        "--profile",
        str(fault_profile(tmp)),
        "--allowed-rules",
        *FAULT_RULES,
        "--",
        *(out for out, _, _ in FAULT_RULES.values()),
        configfiles=[overlay(tmp, "faults.yaml", FAULT_OVERLAY)],
        cores=None,
    )
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 2))
    t0 = time.time()
    events: dict[str, dict] = {}
    with open(tmp / "snakemake.log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=wd, stdout=log, stderr=subprocess.STDOUT, env=profile_env)
        try:
            # scancel stage 1 and requeue the generator, each once, when it has a checkpoint
            actions = {
                "regpt_stage1": ["scancel"],
                "selfmem_train_generator": ["scontrol", "requeue"],
            }
            while proc.poll() is None and time.time() - t0 < 600:
                jobs = queue()
                running = {rule: jobid for jobid, state, rule in jobs if state == "RUNNING"}
                for rule in [r for r in actions if r in running]:
                    steps = checkpoint_steps(wd / FAULT_RULES[rule][1])
                    if steps:
                        subprocess.run([*actions.pop(rule), running[rule]], check=True)
                        events[rule] = {
                            "jobid": running[rule],
                            "step": steps[-1],
                            "at_s": round(time.time() - t0, 1),
                        }
                # the cancelled job must come back as a new job (Snakemake's retry)
                ev = events.get("regpt_stage1")
                if ev and "retried" not in ev:
                    if any(r == "regpt_stage1" and i != ev["jobid"] for i, _, r in jobs):
                        ev["retried"] = True
                    elif time.time() - t0 > ev["at_s"] + RETRY_WAIT:
                        ev["retried"] = False
                        break
                time.sleep(0.5)
        finally:
            if proc.poll() is None:
                proc.kill()  # its jobs are scancelled by the slurm fixture's stop
            proc.wait()
    # sacct gets the final records asynchronously; a requeued job's first run stays REQUEUED
    deadline = time.time() + (60 if proc.returncode == 0 else 10)
    while True:
        records = sacct_records(since)
        last = {r["JobID"]: r["State"] for r in records if "." not in r["JobID"]}
        if not set(last.values()) & {"PENDING", "RUNNING", "REQUEUED", "COMPLETING"}:
            break
        if time.time() > deadline:
            break
        time.sleep(1)
    print(f"\nfault run: snakemake rc {proc.returncode} after {time.time() - t0:.0f} s; {events}")
    return {
        "wd": wd,
        "rc": proc.returncode,
        "log": (tmp / "snakemake.log").read_text(),
        "events": events,
        "records": records,
    }


def test_cancelled_job_is_retried_and_resumes(faults):
    """scancel of regpt_stage1 mid-training: the profile retries it and attempt 2 resumes
    from attempt 1's last checkpoint and finishes."""
    rule = "regpt_stage1"
    assert rule in faults["events"], f"never cancelled:\n{faults['log'][-4000:]}"
    ev = faults["events"][rule]
    assert ev.get("retried"), (
        f"Snakemake did not resubmit the cancelled job {ev['jobid']} within {RETRY_WAIT} s "
        "(with slurm-status-command: sacct the plugin reads sacct's 'CANCELLED by <uid>' as "
        f"still running):\n{faults['log'][-3000:]}"
    )
    jobs, records = rule_records(faults["records"], rule)
    print_table(f"{rule}: scancel {ev['jobid']} at checkpoint step-{ev['step']}", records)
    assert faults["rc"] == 0, faults["log"][-4000:]
    assert [j["State"].split()[0] for j in jobs] == ["CANCELLED", "COMPLETED"], jobs
    assert jobs[0]["JobID"] == ev["jobid"]
    assert [j["ReqMem"] for j in jobs] == ["1000M", "2000M"], jobs  # mem_mb: 1000 * attempt
    step, total = resumed_step(faults["wd"] / FAULT_RULES[rule][2])
    print(f"{rule}: the rerun resumed from step {step} of {total}")
    assert ev["step"] <= step < total == 24, (ev, step, total)
    assert (faults["wd"] / FAULT_RULES[rule][0] / "model.safetensors").exists()


def test_memory_exceeded_job_is_retried_with_more_memory(faults):
    """selfmem_selector_train with too little memory on attempt 1: SLURM kills it for the
    memory limit, the retry asks for twice as much (mem_mb: SELECTOR_MEM * attempt) and
    completes."""
    rule = "selfmem_selector_train"
    jobs, records = rule_records(faults["records"], rule)
    print_table(f"{rule}: mem_mb {SELECTOR_MEM} * attempt", records)
    assert faults["rc"] == 0, faults["log"][-4000:]
    assert [j["State"] for j in jobs][-1] == "COMPLETED", jobs
    assert [j["State"] for j in jobs][0] in ("OUT_OF_MEMORY", "FAILED"), jobs
    assert [j["ReqMem"] for j in jobs] == [f"{SELECTOR_MEM}M", f"{2 * SELECTOR_MEM}M"], jobs
    # the kill was the memory limit (slurmstepd's words in the failed job's log, kept)
    logs = faults["wd"] / "results/logs/slurm" / f"rule_{rule}"
    slurm_log = next(logs.rglob(f"{jobs[0]['JobID']}.log"))
    assert "exceeded memory limit" in slurm_log.read_text(), slurm_log.read_text()[-3000:]
    # and attempt 2 did need more than attempt 1 had
    peak_kb = max(
        kbytes(r["MaxRSS"]) for r in records if r["JobID"].startswith(jobs[-1]["JobID"] + ".")
    )
    assert peak_kb > SELECTOR_MEM * 1024, records
    assert (faults["wd"] / FAULT_RULES[rule][0]).is_dir()


def test_requeued_job_continues(faults):
    """scontrol requeue of selfmem_train_generator mid-training: the same job id runs again
    (no Snakemake retry), resumes from its checkpoint and completes."""
    rule = "selfmem_train_generator"
    assert rule in faults["events"], f"never requeued:\n{faults['log'][-4000:]}"
    ev = faults["events"][rule]
    jobs, records = rule_records(faults["records"], rule)
    print_table(f"{rule}: scontrol requeue {ev['jobid']} at checkpoint step-{ev['step']}", records)
    assert faults["rc"] == 0, faults["log"][-4000:]
    # (the rule's other job, the vanilla generator joint continues from, is not requeued)
    assert [(j["JobID"], j["State"]) for j in jobs if j["JobID"] == ev["jobid"]] == [
        (ev["jobid"], "REQUEUED"),
        (ev["jobid"], "COMPLETED"),
    ], jobs
    step, total = resumed_step(faults["wd"] / FAULT_RULES[rule][2])
    print(f"{rule}: the rerun resumed from step {step} of {total}")
    assert ev["step"] <= step < total == 16, (ev, step, total)
    assert (faults["wd"] / FAULT_RULES[rule][0]).is_dir()
