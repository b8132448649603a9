"""Overlays a user writes for their own data, checked by dry runs of the real snakemake CLI (no
job runs): own Selfmem tasks without the German memory, and the paper overlays stacked."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import ROOT, overlay, planned_jobs, snakemake

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


# ------------------------------------------------------------------ user corpus cleanups
USER_DOCS = [
    "Keep the evens: [x for x in s if predicate(x)] and the interval [0, 1].",
    "Slices such as s[:i] and d['key'] stay. So do [Laughter] and [citation needed].",
    "WikiText-looking 1 @,@ 000 and well @-@ known stay as written @.@ too.",
    "def f(xs):\n    return [x * 2 for x in xs]  # a [note]\n",
    "Tabs\tand  double  spaces,\u00a0a non-breaking space and\r\nnewlines collapse to one space.",
    "Long: [a] " + " ".join(f"word{i}." for i in range(150)),
]


def test_user_corpus_survives_preprocessing(tmp_path):
    """A user corpus (source: files) with brackets, code and WikiText-like `@-@` goes through
    the workflow's preprocessing job byte for byte, apart from the documented normalisation:
    every run of whitespace becomes one space, and a record is cut into chunks of whole sentences
    (joined with one space they give the record back)."""
    import datasets

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        "".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(USER_DOCS))
    )
    mine = overlay(
        tmp_path,
        "mine.yaml",
        "data:\n  lm:\n    source: files\n    files:\n      format: jsonl\n"
        + "".join(f"      {s}: {json.dumps(str(corpus))}\n" for s in ("train", "dev", "test")),
    )
    wd = tmp_path / "run"
    wd.mkdir()
    snakemake(wd, configfiles=[mine], targets=["results/regpt/data/train"], cores=1)
    ds = datasets.load_from_disk(str(wd / "results" / "regpt" / "data" / "train"))
    chunks: dict[str, list[tuple[int, str]]] = {}
    for rid, text in zip(ds["id"], ds["text"]):
        doc, k = rid.rsplit("#", 1)
        chunks.setdefault(doc, []).append((int(k), text))
    assert len(chunks["d5"]) > 1  # the long record was cut (tiny: max_words 64)
    for i, doc in enumerate(USER_DOCS):
        joined = " ".join(t for _, t in sorted(chunks[f"d{i}"]))
        assert joined.encode() == " ".join(doc.split()).encode(), doc


def preprocess_commands(workdir: Path, configfiles) -> list[str]:
    r = snakemake(
        workdir,
        "-n",
        "-p",
        "--forceall",
        configfiles=configfiles,
        targets=["results/regpt/data/train"],
        cores=1,
    )
    return [ln for ln in (r.stdout + r.stderr).splitlines() if "relift.regpt.preprocess" in ln]


def test_cleanups_follow_the_data_source(tmp_path):
    """sotu drops its bracketed notes; config/paper-regpt.yaml (WikiText-103 TSV) undoes the
    WikiText artifacts and keeps brackets; user files get neither unless asked for."""
    wd = tmp_path / "run"
    (wd / "data" / "wikitext103").mkdir(parents=True)
    for s in ("train", "dev", "test"):
        (wd / "data" / "wikitext103" / f"{s}.tsv").write_text("a @-@ b [c]\t0\n")
    (cmd,) = preprocess_commands(wd, [])
    assert "--drop-bracketed" in cmd and "--wikitext-fix" not in cmd
    (cmd,) = preprocess_commands(wd, [ROOT / "config" / "paper-regpt.yaml"])
    assert "--wikitext-fix" in cmd and "--drop-bracketed" not in cmd
    files = overlay(
        tmp_path,
        "files.yaml",
        "data:\n  lm:\n    source: files\n    files:\n      format: tsv\n"
        + "".join(f"      {s}: data/wikitext103/{s}.tsv\n" for s in ("train", "dev", "test")),
    )
    (cmd,) = preprocess_commands(wd, [files])
    assert "--wikitext-fix" not in cmd and "--drop-bracketed" not in cmd
