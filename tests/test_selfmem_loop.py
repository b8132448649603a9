"""Selfmem loop: Top-B memory beam, augmented memory, pool alignment, the select CLI, and the DAG
of iterations (snakemake dry runs on an overlay config: iteration k reads iteration k-1)."""

from __future__ import annotations

import json
import random
import re
import subprocess

import pytest
from helpers import ROOT, SNAKEMAKE, overlay

from relift.io import InputError, run_cli
from relift.selfmem.loop import formats, oracle
from relift.selfmem.loop import run as loop
from relift.selfmem.loop.formats import Beam
from relift.selfmem.loop.topb import TokenCounter, combine_memory, select_topb


# --------------------------------------------------------------------------- Top-B
def _random_step(rng, n, slots, k):
    parents = [[Beam(memory=f"m{i}.{s}") for s in range(slots)] for i in range(n)]
    pools = [[[f"c{i}.{s}.{j}" for j in range(k)] for s in range(slots)] for i in range(n)]
    scores = [[[rng.random() for _ in range(k)] for _ in range(slots)] for _ in range(n)]
    return parents, pools, scores


@pytest.mark.parametrize("b,slots,k", [(1, 1, 4), (2, 1, 4), (2, 2, 4), (3, 3, 2), (4, 2, 1)])
def test_topb_keeps_exactly_b_best_children_per_input(b, slots, k):
    rng = random.Random(b * 100 + slots * 10 + k)
    parents, pools, scores = _random_step(rng, 7, slots, k)
    out = select_topb(parents, pools, scores, b)
    assert len(out) == 7
    for i, beams in enumerate(out):
        assert len(beams) == b
        # every survivor is a candidate of ITS input, from the slot it names
        for bm in beams:
            assert bm.selected.startswith(f"c{i}.{bm.parent}.")
            assert bm.memory == bm.selected  # replace mode
        # ranked by score, and they are the best children (each slot spawns its top-B)
        got = [bm.score for bm in beams]
        assert got == sorted(got, reverse=True)
        children = sorted(
            (v for s in range(slots) for v in sorted(scores[i][s], reverse=True)[:b]),
            reverse=True,
        )
        distinct = sorted({bm.memory: bm.score for bm in beams}.values(), reverse=True)
        assert distinct == children[:b]  # all children distinct here: padding only repeats


def test_topb_b1_is_the_argmax_of_the_single_pool():
    parents = [[Beam("bm25 a")], [Beam("bm25 b")]]
    pools = [[["a0", "a1", "a2"]], [["b0", "b1"]]]
    scores = [[[0.1, 0.7, 0.3]], [[2.0, -1.0]]]
    out = select_topb(parents, pools, scores, 1)
    assert [[b.memory for b in bs] for bs in out] == [["a1"], ["b0"]]


def test_topb_merges_identical_children_and_prefers_distinct_ones():
    parents = [[Beam("p0"), Beam("p1")]]
    pools = [[["same", "x"], ["same", "y"]]]
    scores = [[[0.9, 0.1], [0.8, 0.5]]]
    out = select_topb(parents, pools, scores, 2)[0]
    assert [b.memory for b in out] == ["same", "y"]
    # fewer distinct children than B: the best is repeated, still exactly B
    out = select_topb([[Beam("p")]], [[["only"]]], [[[0.3]]], 3)[0]
    assert [b.memory for b in out] == ["only"] * 3


def test_topb_ranks_by_the_selector_never_by_references(monkeypatch, tmp_path):
    """The select step follows the scores even when a reference would disagree, and the CLI
    never opens a reference: every way to read one raises."""

    def boom(*a, **k):
        raise AssertionError("the selection read a reference")

    monkeypatch.setattr("relift.selfmem.data.load_split", boom)
    monkeypatch.setattr(loop, "oracle_scores", boom)
    monkeypatch.setattr(oracle, "oracle_scores", boom)
    monkeypatch.setattr(oracle, "delta_scores", boom)
    # input 0's reference would be "gold 0", but the selector prefers "bad 0"
    pools = [["gold 0", "bad 0", "meh 0"], ["gold 1", "bad 1", "meh 1"]]
    scores = [[0.1, 0.9, 0.5], [0.2, 0.3, 0.8]]
    d = tmp_path
    formats.write_beams(d / "beams.dev.jsonl", [[Beam("bm25 0")], [Beam("bm25 1")]])
    formats.write_pools(d / "cands.dev.jsonl", pools)
    formats.write_scores(d / "scores.dev.jsonl", scores)
    rc = run_cli(
        loop.main,
        [
            "select", "--beams", f"dev={d / 'beams.dev.jsonl'}",
            "--candidates", f"dev={d / 'cands.dev.jsonl'}",
            "--scores", f"dev={d / 'scores.dev.jsonl'}", "--beam-b", "2",
            "--out-beams", f"dev={d / 'out.beams.jsonl'}",
            "--out-memory", f"dev={d / 'out.memory.txt'}",
        ],
    )  # fmt: skip
    assert rc == 0
    assert (d / "out.memory.txt").read_text().splitlines() == ["bad 0", "meh 1"]
    beams = formats.read_beams(d / "out.beams.jsonl")
    assert [[b.memory for b in bs] for bs in beams] == [["bad 0", "meh 0"], ["meh 1", "bad 1"]]
    # the select subcommand has no way to receive references at all
    with pytest.raises(SystemExit):
        loop.main(["select", "--data", "dev=x"])


def test_select_rejects_scores_of_another_pool(tmp_path, capsys):
    d = tmp_path
    formats.write_beams(d / "b.jsonl", [[Beam("m0")], [Beam("m1")]])
    formats.write_pools(d / "c.jsonl", [["a", "b"], ["c", "d", "e"]])
    formats.write_scores(d / "s.jsonl", [[0.1, 0.2, 0.3], [0.1, 0.2]])  # swapped lengths
    rc = run_cli(
        loop.main,
        [
            "select", "--beams", f"dev={d / 'b.jsonl'}", "--candidates", f"dev={d / 'c.jsonl'}",
            "--scores", f"dev={d / 's.jsonl'}", "--out-beams", f"dev={d / 'o.jsonl'}",
            "--out-memory", f"dev={d / 'o.txt'}",
        ],
    )  # fmt: skip
    assert rc == 2
    assert "s.jsonl, line 1, field 'scores': expected 2 scores" in capsys.readouterr().err
    assert not (d / "o.txt").exists()


def test_read_pools_rejects_records_out_of_order(tmp_path):
    p = tmp_path / "c.jsonl"
    p.write_text('{"id": 0, "candidates": ["a"]}\n{"id": 2, "candidates": ["b"]}\n')
    with pytest.raises(InputError, match="expected id 1"):
        formats.read_pools(p)
    p.write_text('{"id": 0, "candidates": ["a", "b", "c"]}\n')
    assert formats.read_pools(p, 1, pool_size=2) == [["a", "b"]]
    with pytest.raises(InputError, match="1 candidate pools but the split has 2"):
        formats.read_pools(p, 2)


def test_top1_takes_the_best_candidate_of_each_pool(tmp_path):
    formats.write_pools(tmp_path / "c.jsonl", [["best 0", "x"], ["best 1", "y", "z"]])
    rc = run_cli(
        loop.main,
        ["top1", "--candidates", f"dev={tmp_path / 'c.jsonl'}",
         "--output-txt", f"dev={tmp_path / 'h.txt'}"],
    )  # fmt: skip
    assert rc == 0 and (tmp_path / "h.txt").read_text() == "best 0\nbest 1\n"


def test_oracle_scores_use_the_reference():
    s = oracle.oracle_scores([["x y z", "the cat sat"]], ["the cat sat"])
    assert s[0][1] == pytest.approx(100.0) and s[0][0] < 1.0


# --------------------------------------------------------------------------- augment
@pytest.fixture(scope="module")
def bpe_counter():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    text = ["Die Datei wurde nicht gefunden", "Speichern unter", "Einstellungen öffnen"] * 20
    tok.train_from_iterator(
        text,
        trainers.BpeTrainer(
            vocab_size=300,
            show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    return TokenCounter(lambda t: tok.encode(t, add_special_tokens=False).offsets)


@pytest.mark.parametrize("counter_name", ["whitespace", "bpe"])
@pytest.mark.parametrize("budget", [3, 7, 12, 40])
def test_augment_respects_the_budget_and_keeps_the_most_recent_part(
    counter_name, budget, bpe_counter
):
    counter = TokenCounter.whitespace() if counter_name == "whitespace" else bpe_counter
    mem = "Die Datei wurde nicht gefunden"
    for k in range(4):  # grow the memory over iterations
        selected = f"Einstellungen öffnen Speichern unter {k}"
        full = f"{mem} | {selected}"
        mem = combine_memory(mem, selected, "augment", " | ", budget, counter)
        assert counter.count(mem) <= budget
        assert full.endswith(mem)  # a suffix: the most recent part is kept
        if counter.count(full) <= budget:
            assert mem == full
        if counter.count(selected) <= budget - 1:
            assert mem.endswith(selected)  # the newest selection survives whole
        if mem and mem != full:
            assert full[len(full) - len(mem) - 1] in " |"  # cut at a word boundary


def test_replace_and_unlimited_augment():
    assert combine_memory("old", "new", "replace") == "new"
    assert combine_memory("old", "new", "augment", " ") == "old new"
    assert combine_memory("", "new", "augment", " ") == "new"
    assert combine_memory("old", " ", "augment", " ") == "old"  # an empty selection adds nothing
    with pytest.raises(InputError):
        combine_memory("a", "b", "augment", " ", budget=3)  # a budget needs a tokenizer
    with pytest.raises(InputError):
        combine_memory("a", "b", "append")


def test_select_cli_augments_within_the_generator_budget(tmp_path):
    d = tmp_path
    gen = d / "gen"
    gen.mkdir()
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(gen / "tokenizer.json"))
    formats.write_beams(d / "b.jsonl", [[Beam("one two three four")]])
    formats.write_pools(d / "c.jsonl", [["five six", "seven"]])
    formats.write_scores(d / "s.jsonl", [[1.0, 0.0]])
    rc = run_cli(
        loop.main,
        [
            "select", "--beams", f"dev={d / 'b.jsonl'}", "--candidates", f"dev={d / 'c.jsonl'}",
            "--scores", f"dev={d / 's.jsonl'}", "--memory-mode", "augment", "--budget", "4",
            "--tokenizer", str(gen), "--separator", " ",
            "--out-beams", f"dev={d / 'o.jsonl'}", "--out-memory", f"dev={d / 'o.txt'}",
        ],
    )  # fmt: skip
    assert rc == 0
    assert (d / "o.txt").read_text() == "three four five six\n"


# --------------------------------------------------------------------------- the DAG
def _dry_run(tmp_path, iterations: int) -> dict:
    """Jobs of a dry run of the loop report on a small overlay task (nothing exists yet, so
    every job is planned): ``{(rule, wildcards): (inputs, outputs)}``."""
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    for s in ("train", "dev", "test"):
        (data / f"{s}.jsonl").write_text('{"src": "a b", "trg": "c d"}\n')
    cfg = overlay(
        tmp_path,
        f"loop{iterations}.yaml",
        f"""selfmem:
  tasks:
    t:
      train: {data / "train.jsonl"}
      dev: {data / "dev.jsonl"}
      test: {data / "test.jsonl"}
  run_tasks: [t]
  archs: [joint]
  loop:
    iterations: {iterations}
    variants:
      topaug: {{select: selector, beam_b: 2, memory_mode: augment}}
      oracle: {{select: oracle}}
    run_variants: [topaug, oracle]
""",
    )
    r = subprocess.run(
        [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "--configfile", str(cfg), "-n",
         "results/selfmem/t/report/loop_scores.csv"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    jobs = {}
    for block in re.split(r"^rule ", out, flags=re.M)[1:]:
        rule = block.split(":", 1)[0]
        fields = dict(re.findall(r"^    (\w+): (.*)$", block, re.M))
        wc = dict(w.split("=", 1) for w in fields.get("wildcards", "").split(", ") if w)
        key = (rule, frozenset(wc.items()))
        jobs[key] = (set(fields.get("input", "").split(", ")), set(fields["output"].split(", ")))
    return jobs


def _short(job) -> tuple:
    wc = dict(job[1])
    k = "0" if job[0] == "selfmem_loop_iter0" else wc.get("k")
    return (job[0], wc.get("variant"), k, wc.get("beam"))


@pytest.mark.slow  # > 5 s: make test runs it, make test-fast does not
def test_iteration_k_reads_iteration_k_minus_1_and_more_iterations_only_add_jobs(tmp_path):
    jobs2 = _dry_run(tmp_path, 2)
    producer = {o: job for job, (_, outs) in jobs2.items() for o in outs}

    def upstream(job):
        return {producer[i] for i in jobs2[job][0] if i in producer}

    short = sorted(_short(j) for j in jobs2)
    # B = 2: iteration 0 holds one slot (the BM25 memory), later iterations two; of the last
    # iteration only the best memory's pool is needed (its best candidate is the hypothesis)
    assert [s for s in short if s[0] == "selfmem_loop_candidates"] == [
        ("selfmem_loop_candidates", "oracle", "1", "0"),
        ("selfmem_loop_candidates", "oracle", "2", "0"),
        ("selfmem_loop_candidates", "topaug", "1", "0"),
        ("selfmem_loop_candidates", "topaug", "1", "1"),
        ("selfmem_loop_candidates", "topaug", "2", "0"),
    ]
    for job in jobs2:
        rule, variant, k, _ = _short(job)
        if rule != "selfmem_loop_select":
            continue
        ups = {_short(u) for u in upstream(job)}
        loop_ups = {u for u in ups if u[0].startswith("selfmem_loop")}
        # iteration k reads iteration k-1 and nothing else of the loop
        assert loop_ups and all(u[1] == variant and u[2] == str(int(k) - 1) for u in loop_ups), (
            job,
            ups,
        )
        if k == "1":
            assert ("selfmem_loop_iter0", variant, "0", None) in ups
            if variant == "topaug":  # iteration 0's pools, scored once by the selector
                assert ("selfmem_selector_bm25_pools", None, None, None) in ups
            else:
                assert ("selfmem_loop_oracle_scores", "oracle", "0", "0") in ups
        elif variant == "topaug":
            assert ups >= {
                ("selfmem_loop_select", "topaug", "1", None),
                ("selfmem_loop_candidates", "topaug", "1", "0"),
                ("selfmem_loop_candidates", "topaug", "1", "1"),
                ("selfmem_loop_selector_scores", "topaug", "1", "0"),
                ("selfmem_loop_selector_scores", "topaug", "1", "1"),
            }
    # the pools of iteration k decode with iteration k's memory; the hypotheses of iteration k
    # are the best candidates of its best memory's pool (decoded with the final beam)
    for job in jobs2:
        rule, variant, k, _ = _short(job)
        ups = {_short(u) for u in upstream(job)}
        if rule == "selfmem_loop_candidates":
            assert ("selfmem_loop_select", variant, k, None) in ups
        if rule == "selfmem_loop_hypotheses":
            assert ups == {("selfmem_loop_candidates", variant, k, "0")}
    # the generator stays frozen: trained once (the embedded default warm-starts it from the
    # vanilla generator, trained once too); the selector too
    gens = sorted(dict(j[1])["arch"] for j in jobs2 if j[0] == "selfmem_train_generator")
    assert gens == ["joint", "vanilla"]
    assert sum(j[0] == "selfmem_selector_train" for j in jobs2) == 1

    # raising the iteration count only adds jobs: those of iteration 3 and the rest of
    # iteration 2's pools and their scores (iteration 3 selects from them); every other job
    # keeps its inputs and outputs
    jobs3 = _dry_run(tmp_path, 3)
    assert set(jobs2) <= set(jobs3)
    assert sorted(_short(j) for j in set(jobs3) - set(jobs2)) == sorted(
        [
            ("selfmem_loop_select", "oracle", "3", None),
            ("selfmem_loop_select", "topaug", "3", None),
            ("selfmem_loop_hypotheses", "oracle", "3", None),
            ("selfmem_loop_hypotheses", "topaug", "3", None),
            ("selfmem_loop_score", "oracle", "3", None),
            ("selfmem_loop_score", "topaug", "3", None),
            ("selfmem_loop_candidates", "oracle", "3", "0"),
            ("selfmem_loop_candidates", "topaug", "3", "0"),
            ("selfmem_loop_candidates", "topaug", "2", "1"),
            ("selfmem_loop_selector_scores", "topaug", "2", "0"),
            ("selfmem_loop_selector_scores", "topaug", "2", "1"),
            ("selfmem_loop_oracle_scores", "oracle", "2", "0"),
        ]
    )
    for job in jobs2:
        if job[0] != "selfmem_loop_report":
            assert jobs2[job] == jobs3[job]


# --------------------------------------------------------------------------- report
def test_report_picks_the_iteration_on_dev_and_labels_the_oracle(tmp_path):
    import csv

    from relift.score import score
    from relift.selfmem.evaluation import report

    refs = ["a b c d", "e f g h"]
    hyp_by = {  # (variant, k) -> dev hypotheses quality; test prefers another iteration
        ("sm", 0): (["a b", "e f"], ["a b", "e f"]),
        ("sm", 1): (["a b c d", "e f g h"], ["a b", "e"]),
        ("sm", 2): (["a b c", "e f g"], ["a b c d", "e f g h"]),
        ("orc", 0): (["a b", "e f"], ["a b", "e f"]),
        ("orc", 1): (["a", "e"], ["a", "e"]),
        ("orc", 2): (["a b c d", "e f g"], ["a b c d", "e f g"]),
    }
    root = tmp_path / "t"
    for (v, k), (dev, test) in hyp_by.items():
        d = root / "joint" / v / f"iter{k}"
        d.mkdir(parents=True)
        for split, hyps in (("dev", dev), ("test", test)):
            (d / f"scores.{split}.json").write_text(json.dumps(score(hyps, refs)))
            (d / f"memory_scores.{split}.json").write_text(json.dumps(score(["a", "e"], refs)))
    out = tmp_path / "out"
    rc = run_cli(
        report.main,
        [
            "--root", str(root), "--task", "t", "--archs", "joint",
            "--variants", "sm=selector:1:replace", "orc=oracle:1:replace", "--iterations", "2",
            "--output-csv", str(out / "s.csv"), "--output-html", str(out / "r.html"),
            "--output-png", str(out / "p.png"),
        ],
    )  # fmt: skip
    assert rc == 0
    rows = list(csv.DictReader((out / "s.csv").open()))
    assert len(rows) == 2 * 3 * 2
    chosen = {
        (r["variant"], r["split"]): r["iteration"] for r in rows if r["chosen_on_dev"] == "True"
    }
    assert chosen[("sm", "dev")] == chosen[("sm", "test")] == "1"  # dev decides, not test
    assert chosen[("orc", "dev")] == "2"
    html = (out / "r.html").read_text()
    assert "ORACLE selection (reference; upper bound)" in html and "BM25 memory" in html
    assert (out / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_a_loop_memory_is_read_with_the_inputs_own_source(tmp_path):
    """memory_source in the loop: a self memory translates its input, so the generator reads
    `input source </s> memory`, with the recipe's marker."""
    from relift.selfmem.data import load_split
    from relift.selfmem.generator.model import Generator, GeneratorSpec

    class Recipe:
        spec = GeneratorSpec("joint", memory_marker=True, memory_source=True)
        memory_view = Generator.memory_view

    data = tmp_path / "dev.jsonl"
    data.write_text("".join(json.dumps({"src": s, "trg": t}) + "\n" for s, t in
                            [("a cat", "eine Katze"), ("two dogs", "zwei Hunde")]))  # fmt: skip
    (tmp_path / "mem.txt").write_text("eine Katz\nzwei Hund\n")
    (tmp_path / "match.txt").write_text("0.95\n0.2\n")
    sp = load_split(data)
    files = {"memory": {"dev": tmp_path / "mem.txt"}, "beams": {}}
    files["match"] = {"dev": tmp_path / "match.txt"}
    got = loop._split_memories(None, Recipe(), files, "dev", sp)
    assert got == ["<fm3> a cat </s> eine Katz", "<fm0> two dogs </s> zwei Hund"]
