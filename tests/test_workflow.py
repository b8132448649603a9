"""The whole workflow through the real `snakemake` CLI on the tiny config (tests/configs/tiny.yaml)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT, SNAKEMAKE, overlay, planned_jobs, planned_run, snakemake

from relift.report.regpt import read_csv

pytestmark = pytest.mark.slow


def test_dag_builds_phrase_table(tiny_run):
    from transformers import AutoTokenizer

    r = tiny_run / "results"
    tok = AutoTokenizer.from_pretrained(str(r / "regpt" / "tokenizer"))
    phrases = np.load(r / "regpt" / "phrases.npy")
    raw = np.load(r / "regpt" / "phrases_embeddings.npy")
    normed = np.load(r / "regpt" / "phrases_embeddings_normalized.npy")
    ids = np.load(r / "regpt" / "negatives_ids.npy")
    scores = np.load(r / "regpt" / "negatives_scores.npy")
    v = len(tok)
    assert 300 < v <= 600 and phrases.shape == (v,)
    assert raw.shape == normed.shape == (v, 384) and raw.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(normed, axis=1), 1, atol=1e-5)
    assert ids.shape == scores.shape == (v, 11)
    assert (ids[:, 0] == np.arange(v)).all()
    assert (np.diff(scores[:, 1:], axis=1) <= 1e-6).all()
    # the pool equals a brute-force numpy search (ties aside)
    sim = normed @ normed.T
    top = -np.sort(-sim, axis=1)[:, :11]
    np.testing.assert_allclose(scores[:, 1:], top[:, 1:], atol=1e-4)
    # a phrase's nearest neighbour is itself, or a tie with it, for >= 99% of phrases
    self_or_tie = sim[np.arange(v), np.arange(v)] >= top[:, 0] - 1e-4
    assert self_or_tie.mean() >= 0.99
    # negatives.tsv: 11 lines per phrase in qid order
    lines = (r / "regpt" / "negatives.tsv").read_text().splitlines()
    assert len(lines) == 11 * v and lines[11].startswith("1\t1\t1\t")
    # the phrases round-trip through the tokenizer on held-out text
    test_text = (r / "data" / "lm" / "test.jsonl").read_text().splitlines()
    ok = 0
    for line in test_text[:40]:
        text = json.loads(line)["text"]
        enc = tok(text, add_special_tokens=False)["input_ids"]
        if 0 not in enc:
            assert "".join(phrases[enc]) == " " + text
            ok += 1
    assert ok >= 10
    # translation memory of the fixture wheel: 60 pairs, 6 dev, 6 test
    tm = {
        s: (r / "data" / "tm" / f"{s}.jsonl").read_text().splitlines()
        for s in ("train", "dev", "test")
    }
    assert [len(tm[s]) for s in ("train", "dev", "test")] == [48, 6, 6]
    assert set(tm["train"]).isdisjoint(tm["test"])


def report_description(tiny_run: Path) -> tuple[str, dict]:
    """`snakemake --report` of the tiny run: the workflow description (HTML) and the results."""
    snakemake(tiny_run, "--report", "report.html")
    page = (tiny_run / "report.html").read_text()
    desc = re.search(r"^\s*var workflow_desc = (.*);$", page, re.M).group(1)
    results = re.search(r"^\s*var results = (\{.*\});$", page, re.M).group(1)
    return json.loads(desc), json.loads(results)


def test_report_opens_on_the_run_headline(tiny_run):
    """The report's landing description carries this run's headline numbers and verdicts, read
    here from the run's own tables, and links every detail page."""
    from relift.selfmem.evaluation import findings

    desc, results = report_description(tiny_run)
    assert "<h1>What this run shows</h1>" in desc and "id='relift-landing'" in desc
    r = tiny_run / "results"
    table = json.loads((r / "selfmem/tm_ende/report/comparison.json").read_text())
    ref = findings.reference_row(table)
    switch = findings.switch_row(findings.rows_of(table))
    assert f"{ref['label']}: test BLEU {ref['bleu']:.2f}." in desc
    assert f"<td class='num'>{switch['bleu']:.2f}" in desc  # (with its interval)
    for f in findings.flags(table):
        assert f"<b>{f.title}</b>" in desc
    assert "<b>Selfmem (tm_ende)</b>" in desc and "<b>ReGPT</b>" in desc
    bpb = {
        row["model"]: float(row["bits_per_byte"]) for row in read_csv(r / "regpt/eval_table.csv")
    }
    assert f"ReGPT stage 2: {bpb['stage2']:.3f} bits per byte" in desc
    assert f"<td class='num'>{bpb['unigram floor (stage2)']:.3f}</td>" in desc
    for row in read_csv(r / "regpt/equal_compute.csv"):
        assert f"<td class='num'>{float(row['budget_seconds']):.0f}</td>" in desc
    # every detail page is linked; the figures are in the report, captioned
    for path in results:
        if not path.endswith("landing.html"):
            assert f">{path}</a>" in desc, path
    for name in ("bleu_bars", "bleu_bands", "learning_curves"):
        fig = results[f"results/selfmem/tm_ende/report/{name}.png"]
        assert fig["caption"] and fig["mime_type"] == "image/png"
    assert results["results/regpt/dev_curves.png"]["caption"]


def test_nothing_to_do_after_a_run(tiny_run):
    assert planned_jobs(tiny_run) == {}


def test_negatives_depth_change_reruns_only_negatives(tiny_run, tmp_path):
    depth = overlay(tmp_path, "depth.yaml", "regpt:\n  negatives:\n    depth: 12\n")
    jobs = planned_jobs(tiny_run, configfiles=[depth])
    assert set(jobs) - {"all"} == {"regpt_negatives"} | NEGATIVES_DEPENDANTS


def test_encoder_setting_change_reruns_embeddings_onward(tiny_run, tmp_path):
    bs = overlay(tmp_path, "bs.yaml", "regpt:\n  embeddings:\n    max_length: 32\n")
    jobs = planned_jobs(tiny_run, configfiles=[bs])
    assert set(jobs) - {"all"} == {"regpt_embeddings", "regpt_negatives"} | EMBEDDINGS_DEPENDANTS


def test_lint_is_clean():
    r = subprocess.run(
        [SNAKEMAKE, "--lint", "--cores", "1"], cwd=ROOT, capture_output=True, text=True
    )
    assert "Congratulations" in r.stdout + r.stderr, r.stdout + r.stderr


def test_snakefmt_is_clean():
    fmt = shutil.which("snakefmt", path=str(Path(sys.executable).parent))
    r = subprocess.run(
        [fmt, "--check", "Snakefile", "workflow/rules"], cwd=ROOT, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout + r.stderr


# rules downstream of the negatives pool / the embeddings (the baseline matches the token count
# that ReGPT's two stages consumed, so it follows stage 2)
NEGATIVES_DEPENDANTS = {
    "regpt_stage1",
    "regpt_stage2",
    "regpt_baseline",
    "regpt_evaluate",
    "regpt_generate",
    "regpt_report",
    "regpt_dev_curves",
    "report_landing",
}
# the report's figures and landing page, rebuilt from the tables they read
REPORT_RULES = {"selfmem_figures", "report_landing"}
EMBEDDINGS_DEPENDANTS = NEGATIVES_DEPENDANTS


def test_stage2_setting_reruns_only_stage2_and_dependants(tiny_run, tmp_path):
    lr = overlay(tmp_path, "lr.yaml", "regpt:\n  stage2:\n    lr: 0.002\n")
    jobs = planned_jobs(tiny_run, configfiles=[lr])
    assert set(jobs) - {"all"} == {
        "regpt_stage2",
        "regpt_baseline",
        "regpt_evaluate",
        "regpt_generate",
        "regpt_report",
        "regpt_dev_curves",
        "report_landing",
    }
    assert jobs["regpt_evaluate"] == 2  # stage 2 and the baseline, not stage 1


def test_selector_setting_does_not_retrain_the_generator(tiny_run, tmp_path):
    sel = overlay(tmp_path, "sel.yaml", "selfmem:\n  selector:\n    lr: 0.0005\n")
    jobs = set(planned_jobs(tiny_run, configfiles=[sel])) - {"all"}
    assert "selfmem_selector_train" in jobs
    # the comparison table reads the loop's hypotheses, so it is rebuilt too
    assert all(
        j.startswith(("selfmem_selector_", "selfmem_loop_"))
        or j in {"selfmem_compare"} | REPORT_RULES
        for j in jobs
    ), jobs


def test_memory_recipe_retrains_the_memory_generator_not_vanilla(tiny_run, tmp_path):
    rec = overlay(tmp_path, "rec.yaml", "selfmem:\n  generator:\n    memory_marker: false\n")
    r = snakemake(tiny_run, "-n", "-p", configfiles=[rec])
    gens = [c for c in r.stdout.splitlines() if "python -m relift.selfmem.generator.train " in c]
    assert len(gens) == 1 and "--arch joint" in gens[0] and '"memory_marker":false' in gens[0]
    jobs = set(planned_jobs(tiny_run, configfiles=[rec])) - {"all"}
    assert "selfmem_train_generator" in jobs and "selfmem_match" not in jobs
    assert not {"selfmem_memory", "selfmem_memory_score", "selfmem_tokenizer"} & jobs
    assert not any(j.startswith("regpt_") for j in jobs)


def test_the_control_continues_vanilla_without_memory(tiny_run, tmp_path):
    """archs + control: one more training, vanilla's continuation for warm_start_train's
    updates with no memory input (so no memory setting is its setting); nothing upstream reruns."""
    ctl = overlay(tmp_path, "ctl.yaml", "selfmem:\n  archs: [vanilla, joint, control]\n")
    jobs = planned_jobs(tiny_run, configfiles=[ctl])
    assert jobs["selfmem_train_generator"] == 1
    assert jobs["selfmem_hypotheses"] == 2 and "selfmem_candidates" not in jobs
    assert not {"selfmem_memory", "selfmem_tokenizer", "selfmem_selector_train"} & set(jobs)
    r = snakemake(tiny_run, "-n", "-p", configfiles=[ctl])
    (train,) = [c for c in r.stdout.splitlines() if "relift.selfmem.generator.train " in c]
    assert "--arch vanilla" in train and "--train-memory" not in train
    assert "--init-generator results/selfmem/tm_ende/generator/vanilla " in train
    assert '"max_steps":4,' in train and '"memory_' not in train  # tiny warm_start_train
    assert "vanilla continued, no memory" in r.stdout  # its comparison row


def test_memory_source_adds_the_sources_to_the_memory_generator_only(tiny_run, tmp_path):
    """memory_source: the memories' sources per split, read by joint's training, candidates and
    hypotheses; vanilla (no memory) is neither retrained nor given them."""
    src = overlay(tmp_path, "src.yaml", "selfmem:\n  generator:\n    memory_source: true\n")
    jobs, out = planned_run(tiny_run, "-p", configfiles=[src])
    assert jobs["selfmem_memory_source"] == 3 and jobs["selfmem_train_generator"] == 1
    assert not {"selfmem_memory", "selfmem_match", "selfmem_tokenizer"} & set(jobs)
    lines = out.splitlines()
    (train,) = [c for c in lines if "relift.selfmem.generator.train " in c]
    assert "--arch joint" in train and '"memory_source":true' in train
    mem = "results/selfmem/tm_ende/memory"
    assert f"--train-memory-sources {mem}/train.source.txt" in train
    assert f"--dev-memory-sources {mem}/dev.source.txt" in train
    decodes = [c for c in lines if "relift.selfmem.generator.candidates " in c]
    assert decodes and all("/joint" in c for c in decodes)  # vanilla's stay as they are
    for c in decodes:
        split = re.search(r"--memory \S+/memory/(\w+)\.txt", c).group(1)
        assert f"--memory-sources {mem}/{split}.source.txt" in c


def test_more_iterations_only_add_new_iterations(tiny_run, tmp_path):
    it = overlay(tmp_path, "it.yaml", "selfmem:\n  loop:\n    iterations: 3\n")
    jobs = set(planned_jobs(tiny_run, configfiles=[it])) - {"all"}
    assert jobs and all(
        j.startswith("selfmem_loop_") or j in {"selfmem_compare"} | REPORT_RULES for j in jobs
    )
    assert "selfmem_loop_iter0" not in jobs


def test_a_further_seed_adds_only_its_own_copies(tiny_run, tmp_path):
    """selfmem.seeds [0, 7]: seed 0's outputs stay; seed 7 trains its own generators and
    selector and runs its own loop; the comparison table is rebuilt over both seeds."""
    seeds = overlay(tmp_path, "seeds.yaml", "selfmem:\n  seeds: [0, 7]\n")
    jobs = planned_jobs(tiny_run, configfiles=[seeds])
    assert jobs["selfmem_train_generator"] == 2  # vanilla.s7 and joint.s7
    assert jobs["selfmem_selector_train"] == 1  # joint.s7
    assert not {"selfmem_tokenizer", "selfmem_memory"} & set(jobs)
    assert not any(j.startswith("regpt") for j in jobs)
    r = snakemake(tiny_run, "-n", "-p", configfiles=[seeds])
    assert "--arch joint" in r.stdout and "--work-dir results/selfmem/tm_ende/work/joint.s7" in (
        r.stdout
    )
    assert "--seed 7" in r.stdout


def rulegraph_edges_from_dot(dot: str) -> set[tuple[str, str]]:
    names = dict(re.findall(r'^\s*(\d+)\[label = "(\w+)"', dot, re.M))
    return {(names[a], names[b]) for a, b in re.findall(r"^\s*(\d+) -> (\d+)", dot, re.M)}


def rulegraph_edges_from_svg(svg: str) -> set[tuple[str, str]]:
    names = dict(re.findall(r"<title>(\d+)</title>\s*<path[^>]*/>\s*<text[^>]*>(\w+)</text>", svg))
    edges = re.findall(r"<title>(\d+)&#45;&gt;(\d+)</title>", svg)
    return {(names[a], names[b]) for a, b in edges}


def test_readme_rulegraph_matches_rules():
    """docs/rulegraph.svg (shown in the README) is the current rule graph: `make rulegraph`."""
    dot = subprocess.run(
        [SNAKEMAKE, "--rulegraph"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    current = rulegraph_edges_from_dot(dot)
    committed = rulegraph_edges_from_svg((ROOT / "docs" / "rulegraph.svg").read_text())
    assert current and committed == current, "run `make rulegraph` and commit docs/rulegraph.svg"
