"""Overlays a user writes for their own data, checked by dry runs of the real snakemake CLI (no
job runs): own Selfmem tasks without the German memory, and the paper overlays stacked."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import overlay, planned_jobs, snakemake

GERMAN_MEMORY_RULES = {"tm_wheels", "tm_corpus"}


def fake_task(tmp: Path, name: str, src: str, trg: str) -> dict[str, str]:
    """JSONL splits of a task (a few lines each) under tmp/name/."""
    folder = tmp / name
    folder.mkdir()
    paths = {}
    for split in ("train", "dev", "test"):
        p = folder / f"{split}.jsonl"
        rows = [{src: f"the house {i}", trg: f"la maison {i}"} for i in range(4)]
        p.write_text("".join(json.dumps(r) + "\n" for r in rows))
        paths[split] = str(p)
    return paths


def french_overlay(tmp: Path, extra: str = "") -> Path:
    paths = fake_task(tmp, "enfr", "en", "fr")
    return overlay(
        tmp,
        "fr.yaml",
        # wheel_dir "" (the embedded default): without the fix the 16 wheels would be downloaded
        'data:\n  translation_memory:\n    wheel_dir: ""\n'
        "selfmem:\n  tasks:\n    en_fr:\n"
        + "".join(f"      {s}: {json.dumps(p)}\n" for s, p in paths.items())
        + "      src_field: en\n      trg_field: fr\n      metric: bleu\n"
        + extra
        + "  run_tasks: [en_fr]\n",
    )


def dry_run(workdir: Path, configfiles) -> str:
    r = snakemake(workdir, "-n", configfiles=configfiles)
    return r.stdout + r.stderr


def test_default_task_plans_the_german_memory(tmp_path):
    """The control: the embedded default's task reads the German memory, so a run builds it."""
    wd = tmp_path / "run"
    wd.mkdir()
    download = overlay(tmp_path, "dl.yaml", 'data:\n  translation_memory:\n    wheel_dir: ""\n')
    jobs = planned_jobs(wd, configfiles=[download])
    assert GERMAN_MEMORY_RULES <= set(jobs)
    assert jobs["selfmem_bm25"] == 1


def test_french_task_plans_no_german_memory(tmp_path):
    """An overlay that defines only a French task: no wheel download, no tm_corpus, no tm_ende
    job, and the French task's whole DAG."""
    wd = tmp_path / "run"
    wd.mkdir()
    fr = french_overlay(tmp_path)
    jobs = planned_jobs(wd, configfiles=[fr])
    assert not GERMAN_MEMORY_RULES & set(jobs), jobs
    assert jobs["selfmem_bm25"] == 1 and jobs["selfmem_compare"] == 1
    out = dry_run(wd, [fr])
    assert "tm_ende" not in out and "results/data/tm" not in out
    assert "results/selfmem/en_fr/report/comparison.html" in out


def test_null_removes_the_default_task(tmp_path):
    """`tm_ende: null` removes the default task from the map (validated, nothing planned for
    it); run_tasks naming a removed task stops the run with a message naming it."""
    wd = tmp_path / "run"
    wd.mkdir()
    fr = french_overlay(tmp_path, extra="    tm_ende: null\n")
    jobs = planned_jobs(wd, configfiles=[fr])
    assert not GERMAN_MEMORY_RULES & set(jobs) and jobs["selfmem_bm25"] == 1
    assert "tm_ende" not in dry_run(wd, [fr])
    gone = overlay(tmp_path, "gone.yaml", "selfmem:\n  tasks:\n    tm_ende: null\n")
    r = snakemake(wd, "-n", configfiles=[gone], check=False)
    assert r.returncode != 0
    assert "selfmem.run_tasks names 'tm_ende', which selfmem.tasks does not define" in (
        r.stdout + r.stderr
    )
    assert not (wd / "results").exists()
