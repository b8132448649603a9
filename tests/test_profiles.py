"""`snakemake --profile slurm` and a plain `snakemake`, typed as they are (issue 17).

The install step (`make install` runs `python -m relift.profiles install`) links profiles/slurm
into the user's Snakemake profile folder. Every test here points that folder at a temporary
directory (XDG_CONFIG_HOME), so the real user's profiles are never read or written.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import ROOT, SNAKEMAKE

from relift import profiles


def config_env(tmp: Path) -> dict[str, str]:
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp / "config")}
    env.pop("SNAKEMAKE_PROFILE", None)
    return env


def relift_profiles(action: str, checkout: Path, env: dict[str, str]) -> str:
    r = subprocess.run(
        [sys.executable, "-m", "relift.profiles", action, "--checkout", str(checkout)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return r.stdout


def test_install_links_the_profile_says_so_and_uninstall_undoes_it(tmp_path):
    env = config_env(tmp_path)
    dest = tmp_path / "config" / "snakemake" / "slurm"
    src = ROOT / "profiles" / "slurm"
    assert "not installed" in relift_profiles("status", ROOT, env)

    out = relift_profiles("install", ROOT, env)
    assert f"linked {dest} -> {src}" in out, out
    assert dest.is_symlink() and dest.resolve() == src
    assert (dest / "config.yaml").read_bytes() == (src / "config.yaml").read_bytes()
    assert "already linked" in relift_profiles("install", ROOT, env)  # idempotent
    assert "installed" in relift_profiles("status", ROOT, env)

    out = relift_profiles("uninstall", ROOT, env)
    assert f"removed the link {dest}" in out, out
    assert not dest.is_symlink() and not dest.exists()
    assert "nothing to remove" in relift_profiles("uninstall", ROOT, env)


@pytest.mark.parametrize("kind", ["folder", "file", "foreign link", "dangling link"])
def test_install_never_replaces_a_profile_the_user_has(tmp_path, monkeypatch, kind):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    dest = tmp_path / "config" / "snakemake" / "slurm"
    dest.parent.mkdir(parents=True)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.yaml").write_text("executor: slurm\njobs: 7\n")
    if kind == "folder":
        shutil.copytree(mine, dest)
    elif kind == "file":
        dest.write_text("jobs: 7\n")
    elif kind == "foreign link":
        dest.symlink_to(mine)
    else:
        dest.symlink_to(tmp_path / "gone")

    def snapshot():
        if dest.is_symlink():
            return os.readlink(dest)
        if dest.is_dir():
            return (dest / "config.yaml").read_text()
        return dest.read_text()

    before = snapshot()
    msg = profiles.install(ROOT)
    assert msg.startswith(f"kept your own profile {dest}"), msg
    assert snapshot() == before
    msg = profiles.uninstall(ROOT)
    assert msg.startswith(f"left {dest} alone"), msg
    assert snapshot() == before


def test_install_without_a_profile_to_link_fails_clearly(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    with pytest.raises(SystemExit, match="no profile at"):
        profiles.install(tmp_path)
    assert not (tmp_path / "config").exists()


def test_make_install_runs_the_link_step():
    r = subprocess.run(
        ["make", "-n", "-B", "install"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "-m relift.profiles install" in r.stdout, r.stdout


# ---- the commands as typed, in a fresh checkout after the install step


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    """What a fresh clone of this working tree holds (tracked files and new files that git
    does not ignore, as they are now; no results/, no .snakemake/)."""
    co = tmp_path_factory.mktemp("checkout")
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for rel in filter(None, files):
        if (ROOT / rel).is_file():
            (co / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, co / rel)
    return co


@pytest.fixture
def installed(checkout, tmp_path):
    env = config_env(tmp_path)
    assert "linked" in relift_profiles("install", checkout, env)
    return env


def dry_run(cwd: Path, env: dict[str, str], *args: str) -> tuple[str, dict[str, int]]:
    r = subprocess.run(
        [SNAKEMAKE, *args, "-n"], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    table = out.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    jobs = {k: int(v) for k, v in re.findall(r"^(\w+)\s+(\d+)\s*$", table, re.M)}
    return out, jobs


@pytest.mark.slow
def test_profile_slurm_and_plain_snakemake_plan_the_default_dag(checkout, installed, tmp_path):
    out, jobs = dry_run(checkout, installed, "--profile", "slurm")
    assert "Using profiles slurm and workflow specific profile profiles/default" in out, out[:500]
    assert jobs["all"] == 1 and jobs["regpt_stage1"] == 1 and jobs["selfmem_train_generator"]
    # every job goes through the SLURM executor's resources (the profile's partitions)
    assert "slurm_partition=a100" in out and "slurm_partition=p100" in out

    plain, plain_jobs = dry_run(checkout, installed)
    assert "Using workflow specific profile profiles/default" in plain, plain[:500]
    assert plain_jobs == jobs
    assert "slurm_partition" not in plain

    # from another working directory, with -s: the same profile, the same DAG
    wd = tmp_path / "elsewhere"
    wd.mkdir()
    elsewhere, elsewhere_jobs = dry_run(
        wd, installed, "--profile", "slurm", "-s", str(checkout / "Snakefile")
    )
    assert "Using profiles slurm and workflow specific profile" in elsewhere, elsewhere[:500]
    assert elsewhere_jobs == jobs


SETTINGS = """
import json, sys
from snakemake.cli import parse_args
_, a = parse_args(sys.argv[1:])
print(json.dumps({k: str(getattr(a, k)) for k in (
    "cores", "jobs", "executor", "set_threads", "rerun_incomplete", "printshellcmds",
    "show_failed_logs")}))
"""


def settings(checkout: Path, env: dict[str, str], *args: str) -> dict[str, str]:
    """The settings a `snakemake ARGS` run in ``checkout`` gets from its profiles."""
    r = subprocess.run(
        [sys.executable, "-c", SETTINGS, *args],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_plain_snakemake_runs_locally_with_the_local_profile_and_slurm_gets_none_of_it(
    checkout, installed
):
    plain = settings(checkout, installed)
    local = settings(checkout, installed, "--profile", "profiles/local")
    assert plain == local, (plain, local)
    assert int(plain["cores"]) >= 1 and plain["executor"] == "None"
    assert plain["set_threads"] == "{}"  # every job with config.yaml's threads
    assert plain["rerun_incomplete"] == plain["printshellcmds"] == "True"

    slurm = settings(checkout, installed, "--profile", "slurm")
    # no `cores: all` (it would cap every cluster job's threads at the login node's cores) and
    # no local thread tuning; the rest of profiles/slurm as written
    assert slurm["cores"] == "None" and slurm["set_threads"] == "{}", slurm
    prof = yaml.safe_load((checkout / "profiles" / "slurm" / "config.yaml").read_text())
    assert slurm["executor"] == prof["executor"] == "slurm"
    assert slurm["jobs"] == str(prof["jobs"])
    assert slurm["rerun_incomplete"] == "True"
    # an explicit executor without a profile: the same
    assert settings(checkout, installed, "--executor", "slurm", "--jobs", "3")["cores"] == "None"
    # and an explicit --cores always wins
    assert settings(checkout, installed, "--cores", "3")["cores"] == "3"
