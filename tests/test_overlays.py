"""Overlays a user writes for their own data, checked by dry runs of the real snakemake CLI (no
job runs): own Selfmem tasks without the German memory, and the paper overlays stacked."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from helpers import ROOT, SNAKEMAKE, overlay, planned_jobs, snakemake

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
    assert jobs["selfmem_memory"] == 1


@pytest.mark.slow  # > 5 s: make test runs it, make test-fast does not
def test_french_task_plans_no_german_memory(tmp_path):
    """An overlay that defines only a French task: no wheel download, no tm_corpus, no tm_ende
    job, and the French task's whole DAG."""
    wd = tmp_path / "run"
    wd.mkdir()
    fr = french_overlay(tmp_path)
    jobs = planned_jobs(wd, configfiles=[fr])
    assert not GERMAN_MEMORY_RULES & set(jobs), jobs
    assert jobs["selfmem_memory"] == 1 and jobs["selfmem_compare"] == 1
    out = dry_run(wd, [fr])
    assert "tm_ende" not in out and "results/data/tm" not in out
    assert "results/selfmem/en_fr/report/comparison.html" in out


@pytest.mark.slow  # > 5 s: make test runs it, make test-fast does not
def test_null_removes_the_default_task(tmp_path):
    """`tm_ende: null` removes the default task from the map (validated, nothing planned for
    it); run_tasks naming a removed task stops the run with a message naming it."""
    wd = tmp_path / "run"
    wd.mkdir()
    fr = french_overlay(tmp_path, extra="    tm_ende: null\n")
    jobs = planned_jobs(wd, configfiles=[fr])
    assert not GERMAN_MEMORY_RULES & set(jobs) and jobs["selfmem_memory"] == 1
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


@pytest.mark.slow  # > 5 s: make test runs it, make test-fast does not
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


@pytest.mark.slow  # > 5 s: make test runs it, make test-fast does not
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


# ------------------------------------------------------------------ paper overlays
PAPER_SELFMEM = ROOT / "config" / "paper-selfmem.yaml"
PAPER_LOOP = ROOT / "config" / "paper-selfmem-loop.yaml"


def dry_run_as_typed(workdir: Path, *configfiles: Path) -> tuple[int, str]:
    """`snakemake -n -p --configfile A B` as a user types it (no tiny overlay underneath)."""
    cmd = [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "--cores", "1", "-n", "-p"]
    cmd += ["--configfile", *map(str, configfiles)]
    r = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=600)
    return r.returncode, r.stdout + r.stderr


def job_stats(out: str) -> dict[str, int]:
    table = out.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    return {k: int(v) for k, v in re.findall(r"^(\w+)\s+(\d+)\s*$", table, re.M) if k != "total"}


def shell_commands(out: str, module: str) -> list[str]:
    return [ln for ln in out.splitlines() if f"python -m relift.{module} " in ln]


def test_paper_selfmem_overlays_stack(tmp_path):
    """config/paper-selfmem.yaml + config/paper-selfmem-loop.yaml with fake JRC-Acquis files
    plan the paper's run: one task (jrc_ende), Elasticsearch memory, three Transformer-base
    generators on one GPU each, beam 50/50 candidates, the XLM-R selector of the two memory
    architectures and 5 loop iterations of self memory and the ORACLE; no German memory."""
    wd = tmp_path / "run"
    (wd / "data" / "jrc_ende").mkdir(parents=True)
    for s in ("train", "dev", "test"):
        row = {"src": "the Commission shall adopt", "trg": "die Kommission erlässt"}
        (wd / "data" / "jrc_ende" / f"{s}.jsonl").write_text(json.dumps(row) + "\n")
    rc, out = dry_run_as_typed(wd, PAPER_SELFMEM, PAPER_LOOP)
    assert rc == 0, out[-4000:]
    jobs = job_stats(out)
    archs, loop_archs, variants, iterations = 3, 2, 2, 5
    expected = {
        "selfmem_memory": 1,
        "selfmem_tokenizer": 1,
        "selfmem_train_generator": archs,
        "selfmem_candidates": archs * 2,
        "selfmem_hypotheses": archs * 2,
        "selfmem_score": archs * 2,
        "selfmem_selector_train_candidates": loop_archs,
        "selfmem_selector_train": loop_archs,
        "selfmem_loop_iter0": loop_archs * variants,
        "selfmem_loop_select": loop_archs * variants * iterations,
        # the final hypotheses are a separate beam-5 decode (the pools are beam 50)
        "selfmem_loop_hypotheses": loop_archs * variants * iterations,
        "selfmem_loop_score": loop_archs * variants * (iterations + 1),
        "selfmem_compare": 1,
        "selfmem_loop_report": 1,
    }
    assert {k: jobs.get(k) for k in expected} == expected
    assert not GERMAN_MEMORY_RULES & set(jobs) and "tm_ende" not in out
    (bm25,) = shell_commands(out, "selfmem.memory")
    # the selfmem.memory section arrives as one --settings JSON value; --task names the index
    memory = json.loads(shlex.split(bm25.split("--settings ", 1)[1])[0])
    assert memory["backend"] == "elasticsearch" and (memory["top_k"], memory["max_words"]) == (
        10,
        600,
    )
    assert memory["es_index_prefix"] == "relift-selfmem" and "--task jrc_ende" in bm25
    gens = shell_commands(out, "selfmem.generator.train")
    assert len(gens) == archs
    paper_generator = {
        "d_model": 512,
        "encoder_layers": 6,
        "decoder_layers": 6,
        "attention_heads": 8,
        "ffn_dim": 2048,
        "pre_ln": False,
        "batch_size": 48,
        "max_tokens": 0,
        "label_smoothing": 0.1,
        "lr": 0.0007,
        "scheduler": "inverse_sqrt",
        "warmup_steps": 4000,
        "precision": "fp32",
        "max_steps": 437000,
        "grad_clip": 1.0,
    }
    for cmd in gens:
        # the selfmem.generator section arrives as one --settings JSON value
        settings = json.loads(shlex.split(cmd.split("--settings ", 1)[1])[0])
        assert {k: settings[k] for k in paper_generator} == paper_generator, cmd
        assert "gpus" not in settings
        # the paper's recipe: every generator from scratch, every memory read as retrieved
        assert "--init-generator" not in cmd
        assert settings.get("memory_min_match", 0) == 0 and not settings.get("memory_marker")
    cands = [c for c in shell_commands(out, "selfmem.generator.candidates") if "/candidates/" in c]
    assert len(cands) == archs * 2
    # selfmem.candidates as one --settings JSON value (without the workflow's splits and gpus);
    # the final hypotheses are the same module with selfmem.hypotheses' beam, one per input
    for cmd in cands:
        settings = json.loads(shlex.split(cmd.split("--settings ", 1)[1])[0])
        assert settings["num_beams"] == settings["num_return_sequences"] == 50, cmd
        assert "splits" not in settings and "gpus" not in settings
    hyps = [c for c in shell_commands(out, "selfmem.generator.candidates") if "/hypotheses/" in c]
    assert len(hyps) == archs * 2
    for cmd in hyps:
        settings = json.loads(shlex.split(cmd.split("--settings ", 1)[1])[0])
        assert (settings["num_beams"], settings["num_return_sequences"]) == (5, 1), cmd
    # the selfmem.selector section arrives as one --settings JSON value
    for cmd in shell_commands(out, "selfmem.selector.cli"):
        settings = json.loads(shlex.split(cmd.split("--settings ", 1)[1])[0])
        assert settings["encoder"] == "xlm-roberta-base" and "gpus" not in settings, cmd
    # the GPU jobs ask for one GPU each (profiles/slurm maps it to the P100 partition's gres)
    gen_block = out.split("rule selfmem_train_generator:", 1)[1].split("\n\n", 1)[0]
    assert "gpu=1" in gen_block


def test_paper_loop_overlay_needs_the_part1_overlay(tmp_path):
    """On its own the loop overlay's 50-candidate pools exceed the default's 4 candidates: the
    run stops before any job and says so (stack config/paper-selfmem.yaml first)."""
    rc, out = dry_run_as_typed(tmp_path, PAPER_LOOP)
    assert rc != 0
    assert "selfmem.loop.num_return_sequences must not exceed selfmem.candidates" in out
    assert not (tmp_path / "results").exists()


@pytest.mark.slow  # > 5 s: make test runs it, make test-fast does not
def test_overlay_with_a_target_as_the_readme_shows(tmp_path):
    """README, "Your own data": targets before --configfile, or the file list ended with `--`;
    a target after --configfile is read as one more config file."""
    wd = tmp_path / "run"
    wd.mkdir()
    fr = french_overlay(tmp_path)
    target = "results/selfmem/en_fr/memory/train.txt"
    base = [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "--cores", "1", "-n"]
    for cmd in (
        base + [target, "--configfile", str(fr)],
        base + ["--configfile", str(fr), "--", target],
    ):
        r = subprocess.run(cmd, cwd=wd, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        assert job_stats(r.stdout + r.stderr) == {"selfmem_memory": 1}
    r = subprocess.run(
        base + ["--configfile", str(fr), target], cwd=wd, capture_output=True, text=True
    )
    assert r.returncode != 0 and "FileNotFoundError" in r.stdout + r.stderr


@pytest.mark.slow  # > 5 s: make test runs it, make test-fast does not
def test_scratch_selector_encoder_is_planned_per_task_and_seed(tmp_path):
    """selector.encoder: scratch adds one encoder job per task and seed, built over the task's
    tokenizer and handed to the selector; the default (minilm) plans none."""
    wd = tmp_path / "run"
    wd.mkdir()
    fr = french_overlay(tmp_path)
    assert "selfmem_selector_scratch_encoder" not in planned_jobs(wd, configfiles=[fr])
    scratch = overlay(
        tmp_path,
        "scratch.yaml",
        "selfmem:\n  seeds: [0, 1]\n  selector:\n    encoder: scratch\n    layers: 2\n",
    )
    r = snakemake(wd, "-n", "-p", configfiles=[fr, scratch], cores=1)
    out = r.stdout + r.stderr
    jobs = job_stats(out)
    assert jobs["selfmem_selector_scratch_encoder"] == 2
    (build0,) = [
        c for c in shell_commands(out, "selfmem.selector.scratch_encoder") if "--seed 0" in c
    ]
    assert "--tokenizer results/selfmem/en_fr/tokenizer" in build0
    assert json.loads(shlex.split(build0.split("--settings ", 1)[1])[0])["layers"] == 2
    trains = [c for c in shell_commands(out, "selfmem.selector.cli") if " train " in c]
    encoders = {re.search(r"--encoder (\S+)", c).group(1) for c in trains}
    assert encoders == {
        "results/selfmem/en_fr/selector_encoder/scratch.s0",
        "results/selfmem/en_fr/selector_encoder/scratch.s1",
    }
    bad = overlay(
        tmp_path, "bad.yaml", "selfmem:\n  selector:\n    encoder: scratch\n    layers: 0\n"
    )
    r = snakemake(wd, "-n", configfiles=[fr, bad], check=False)
    assert r.returncode != 0 and "set layers >= 1" in r.stdout + r.stderr
