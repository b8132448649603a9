"""The tiny DAG on a real one-node SLURM cluster (tools/local-slurm.sh), with profiles/slurm.

The cluster (Debian's slurm-wlm with slurmdbd accounting, partitions cpu/a100/p100, fake GPU
gres) is installed when missing and started for this module, and stopped by PID afterwards, also
on failure. The test profile is profiles/slurm itself with three changes that the small test
node needs: GPU counts capped at 1, memory/runtime/CPU requests that fit one 4-CPU node, and
fast status checks. Set RELIFT_SKIP_SLURM=1 to skip (e.g. not root, not Debian).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import ROOT, fixture_tm_wheels, snakemake

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
