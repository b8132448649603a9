"""Selfmem comparison: distinct outputs / collapse flag, paired bootstrap, the fuzzy-match switch
and the comparison table CLI (no model: hypothesis files written by the test)."""

from __future__ import annotations

import json

import pytest

from relift.io import InputError, run_cli
from relift.score import diversity, paired_bootstrap, score
from relift.selfmem.evaluation import compare
from relift.selfmem.match import fuzzy_match

REFS = [
    "der Hund läuft schnell nach Hause",
    "die Katze schläft auf dem Sofa",
    "ein Vogel singt im Garten",
    "das Haus ist sehr groß",
    "wir gehen heute ins Kino",
    "er liest ein gutes Buch",
    "sie trinkt einen heißen Tee",
    "die Sonne scheint hell am Himmel",
]
REFS = [f"{r} Nummer {i}" for i in range(5) for r in REFS]  # 40 distinct references


def test_diversity_and_collapse_flag():
    assert diversity(["a", "b", "c", "d"]) == {"distinct": 1.0, "collapsed": False}
    assert diversity(["a"] * 9 + ["b"]) == {"distinct": 0.2, "collapsed": True}
    sc = score(["x"] * len(REFS), REFS, ["bleu"])
    assert sc["collapsed"] and sc["distinct"] == pytest.approx(1 / len(REFS), abs=1e-4)


def test_paired_bootstrap_orders_systems_and_matches_corpus_bleu():
    good = [r if i % 4 else r.split()[0] + " Tag" for i, r in enumerate(REFS)]
    bad = cut(2)
    res = paired_bootstrap(good, bad, REFS, resamples=200, seed=1)
    expected = (
        score(good, REFS, ["bleu"])["bleu"]["score"] - score(bad, REFS, ["bleu"])["bleu"]["score"]
    )
    assert res["delta"] == pytest.approx(expected, abs=0.02)
    assert res["p_value"] < 0.01 and res["ci95"][0] > 0
    rev = paired_bootstrap(bad, good, REFS, resamples=200, seed=1)
    assert rev["p_value"] > 0.99 and rev["delta"] == -res["delta"]
    same = paired_bootstrap(good, good, REFS, resamples=50)
    assert same["delta"] == 0 and same["p_value"] == 1.0  # never better than itself
    with pytest.raises(InputError):
        paired_bootstrap(good[:3], bad, REFS)


def test_paired_bootstrap_pools_seeds():
    good = [r if i % 4 else r.split()[0] + " Tag" for i, r in enumerate(REFS)]
    bad = cut(2)
    one = paired_bootstrap(good, bad, REFS, resamples=100, seed=1)
    # the same run three times pooled: the same BLEU difference, one run paired with three
    three = paired_bootstrap([good] * 3, bad, REFS, resamples=100, seed=1)
    assert three["delta"] == one["delta"] and three["seeds"] == 3
    # seeds are paired in order: (good, bad) + (bad, good) pooled is no difference
    mixed = paired_bootstrap([good, bad], [bad, good], REFS, resamples=100)
    assert mixed["delta"] == 0 and mixed["p_value"] == 1.0
    with pytest.raises(InputError, match="cannot be paired"):
        paired_bootstrap([good, good], [bad, bad, bad], REFS)


def test_fuzzy_match_and_threshold_on_dev():
    assert fuzzy_match("a b c d", "a b c d") == 1.0
    assert fuzzy_match("a b c d", "a b x y") == 0.5
    assert fuzzy_match("", "") == 1.0
    memories = [REFS[i] if i % 2 == 0 else "völlig falsch" for i in range(len(REFS))]
    fallback = cut(3)
    match = [0.9 if i % 2 == 0 else 0.3 for i in range(len(REFS))]
    t, bleu = compare.choose_threshold(memories, fallback, match, REFS)
    assert 0.3 < t <= 0.9  # use the memory exactly where it is right
    assert compare.switch(memories, fallback, match, t) == [
        REFS[i] if i % 2 == 0 else fallback[i] for i in range(len(REFS))
    ]
    assert bleu > score(fallback, REFS, ["bleu"])["bleu"]["score"]


def cut(k):
    """Each reference's first k words, kept distinct (its index appended)."""
    return [" ".join(r.split()[:k]) + f" x{i}" for i, r in enumerate(REFS)]


def _write(path, lines):
    path.write_text("".join(x + "\n" for x in lines), encoding="utf-8")
    return str(path)


def _toy_task(tmp_path) -> tuple[list[str], dict]:
    """Train/dev/test splits of the toy task, each example's top hit its own index (a fuzzy match
    of 1.0), the BM25 memory (each reference's first 4 words); -> (the table CLI's data
    arguments, the output paths)."""
    srcs = [f"source number {i} with words" for i in range(len(REFS))]
    for s in ("train", "dev", "test"):
        with open(tmp_path / f"{s}.jsonl", "w", encoding="utf-8") as fh:
            for src, trg in zip(srcs, REFS, strict=True):
                fh.write(json.dumps({"src": src, "trg": trg}) + "\n")
        _write(tmp_path / f"{s}.hits.jsonl", [json.dumps({"ids": [i]}) for i in range(len(REFS))])
    mem = _write(tmp_path / "mem.txt", cut(4))
    argv = ["table", "--task", "toy", "--train", str(tmp_path / "train.jsonl")]
    for s in ("dev", "test"):
        argv += [f"--{s}", str(tmp_path / f"{s}.jsonl"), f"--memory-{s}", mem]
        argv += [f"--hits-{s}", str(tmp_path / f"{s}.hits.jsonl")]
    return argv, {k: tmp_path / f"cmp.{k}" for k in ("json", "csv", "html")}


def _run_table(argv, out, tail):
    argv = argv + tail + ["--vanilla", "vanilla (no memory)", "--reference", "joint + BM25 memory"]
    argv += ["--resamples", "100"]
    for k, p in out.items():
        argv += [f"--output-{k}", str(p)]
    assert run_cli(compare.main, argv) == 0
    return json.loads(out["json"].read_text()), argv


def test_table_cli(tmp_path):
    base, out = _toy_task(tmp_path)
    joint = _write(tmp_path / "joint.txt", cut(5))
    vanilla = _write(tmp_path / "vanilla.txt", cut(2))
    collapsed = _write(tmp_path / "collapsed.txt", [REFS[0]] * len(REFS))
    oracle = _write(tmp_path / "oracle.txt", REFS)
    it1 = _write(tmp_path / "it1.txt", cut(3))
    tail = ["--row", f"vanilla (no memory)|generator|{vanilla}|{vanilla}"]
    tail += ["--row", f"joint + BM25 memory|generator|{joint}|{joint}"]
    tail += ["--row", f"joint + empty memory|diagnostic|{collapsed}|{collapsed}"]
    tail += ["--row", f"joint + reference as memory (ORACLE)|oracle|{oracle}|{oracle}"]
    tail += ["--loop", f"joint selfmem|loop|{it1},{oracle}|{it1},{it1}"]
    t, argv = _run_table(base, out, tail)
    rows = {(r["split"], r["label"].split(" (iteration")[0]): r for r in t["rows"]}
    assert t["collapsed"] == ["joint + empty memory"]
    assert rows[("test", "joint + empty memory")]["collapsed"] is True
    assert "p_value" not in rows[("test", "joint + BM25 memory")]  # the reference row
    orc = rows[("test", "joint + reference as memory (ORACLE)")]
    assert orc["bleu"] == 100.0 and orc["delta_vs_ref"] > 0 and orc["p_value"] < 0.05
    copy = rows[("dev", "copy the BM25 memory")]
    assert copy["equals_bm25_memory"] == 1.0
    # the loop row is the iteration chosen on DEV (iteration 2 = the oracle file on dev)
    loop = [r for r in t["rows"] if r["label"].startswith("joint selfmem")]
    assert all("(iteration 2)" in r["label"] for r in loop)
    assert "fuzzy-match switch (BM25 memory if match ≥ t, else vanilla)" in {
        r["label"] for r in t["rows"]
    }
    # generator and loop rows are also tested against the fuzzy-match switch; baselines are not
    switch = next(r for r in t["rows"] if r["label"].startswith("fuzzy-match switch"))
    assert "p_vs_switch" not in switch and "p_vs_switch" not in copy
    orc_loop = next(r for r in loop if r["split"] == "dev")  # the reference itself on dev
    assert orc_loop["delta_vs_switch"] > 0 and orc_loop["p_vs_switch"] < 0.05
    assert 0 <= rows[("test", "joint + BM25 memory")]["p_vs_switch"] <= 1
    # every generator and loop row is tested against copy, switch, vanilla and the reference
    joint_tests = {x["against"]: x for x in rows[("test", "joint + BM25 memory")]["tests"]}
    assert set(joint_tests) == {
        "copy the BM25 memory",
        "fuzzy-match switch (BM25 memory if match ≥ t, else vanilla)",
        "vanilla (no memory)",
    }
    vs_vanilla = joint_tests["vanilla (no memory)"]
    assert vs_vanilla["delta"] > 0 and vs_vanilla["p"] < 0.05  # cut(5) beats cut(2)
    assert "joint + BM25 memory" in {x["against"] for x in orc_loop["tests"]}
    page = out["html"].read_text()
    assert "Δ vs switch (p)" in page and "<b>Collapse</b> (test): " in page
    assert "paired bootstraps, test: joint + BM25 memory" in page
    assert out["csv"].read_text().splitlines()[0].startswith("split,label,kind,seeds,bleu")
    # a row with the wrong number of lines is a clear error
    bad = argv.copy()
    bad[bad.index(f"joint + BM25 memory|generator|{joint}|{joint}")] = (
        f"joint + BM25 memory|generator|{joint}|{_write(tmp_path / 'short.txt', ['x'])}"
    )
    assert run_cli(compare.main, bad) != 0


def test_table_cli_seeds(tmp_path):
    """Rows with one output file per seed: mean and sd over seeds, per-seed loop iterations."""
    base, out = _toy_task(tmp_path)
    j0, j1 = _write(tmp_path / "j0.txt", cut(5)), _write(tmp_path / "j1.txt", cut(3))
    v0, v1 = _write(tmp_path / "v0.txt", cut(2)), _write(tmp_path / "v1.txt", cut(3))
    oracle = _write(tmp_path / "oracle.txt", REFS)
    tail = ["--row", f"vanilla (no memory)|generator|{v0};{v1}|{v0};{v1}"]
    tail += ["--row", f"joint + BM25 memory|generator|{j0};{j1}|{j0};{j1}"]
    # seed 1 picks iteration 2 (the oracle file) on dev, seed 2 iteration 1
    tail += ["--loop", f"joint selfmem|loop|{j1},{oracle};{oracle},{j1}|{j1},{j0};{j0},{j1}"]
    t, argv = _run_table(base, out, tail)
    assert t["seeds"] == 2
    rows = {(r["split"], r["label"]): r for r in t["rows"]}
    joint = rows[("test", "joint + BM25 memory")]
    b0, b1 = (score(cut(k), REFS, ["bleu"])["bleu"]["score"] for k in (5, 3))
    assert joint["seeds"] == 2 and joint["bleu_seeds"] == [b0, b1]
    assert joint["bleu"] == pytest.approx((b0 + b1) / 2, abs=0.01)
    assert joint["bleu_sd"] == pytest.approx(abs(b0 - b1) / 2**0.5, abs=0.01)
    loop = rows[("test", "joint selfmem (iteration 2,1)")]
    assert loop["bleu_seeds"] == [b0, b0] and loop["bleu_sd"] == 0
    assert rows[("test", "copy the BM25 memory")]["seeds"] == 1
    switch = rows[("test", "fuzzy-match switch (BM25 memory if match ≥ t, else vanilla)")]
    assert switch["seeds"] == 2 and "seed 2:" in switch["note"]
    bad = argv.copy()
    bad[bad.index(f"joint + BM25 memory|generator|{j0};{j1}|{j0};{j1}")] = (
        f"joint + BM25 memory|generator|{j0};{j1}|{j0}"
    )
    assert run_cli(compare.main, bad) != 0


def test_band_counts_sum_to_the_split_and_scores_are_per_band():
    refs = ["das ist ein haus", "der hund bellt laut", "ein kleiner test hier", "gut gemacht"] * 3
    hyps = [refs[0], "falsch", refs[2], "gut"] * 3
    match = [0.1, 0.55, 0.75, 0.95, 0.0, 0.6, 0.8, 1.0, 0.49, 0.69, 0.89, 0.9]
    bands = compare.band_scores([hyps], refs, match)
    assert [b["n"] for b in bands] == [3, 3, 3, 3]
    assert sum(b["n"] for b in bands) == len(refs)
    assert [b["band"] for b in bands] == ["[0, 0.5)", "[0.5, 0.7)", "[0.7, 0.9)", "[0.9, 1]"]
    # band [0.7, 0.9) holds exact copies only of refs[2] and refs[0]: BLEU 100
    assert bands[2]["bleu"] == 100.0 and bands[1]["bleu"] < 50
    empty = compare.band_scores([hyps[:2]], refs[:2], [0.1, 0.2])
    assert [b["n"] for b in empty] == [2, 0, 0, 0] and empty[3]["bleu"] is None


def test_paired_tests_per_band_test_only_the_band_items():
    refs = [f"das ist satz nummer {i} hier" for i in range(24)]
    match = [0.2] * 12 + [0.95] * 12
    # better in the low band (exact), identical in the high band
    good = refs[:12] + ["etwas anderes"] * 12
    base = ["etwas anderes"] * 24
    (t,) = compare.paired_tests([good], {"base": [base]}, refs, match, 200, 0)
    assert t["against"] == "base" and t["delta"] > 0 and t["p"] < 0.05
    low, mid, _, high = t["bands"]
    assert (low["n"], mid["n"], high["n"]) == (12, 0, 12)
    assert low["delta"] == 100.0 and low["p"] < 0.05
    assert high["delta"] == 0 and high["p"] == 1.0  # never better than itself
    assert mid["delta"] is None and mid["p"] is None
    (no_bands,) = compare.paired_tests([good], {"base": [base]}, refs, None, 50, 0)
    assert "bands" not in no_bands


def test_bleu_interval_brackets_the_corpus_bleu():
    from relift.score import bootstrap_interval, score

    refs = [f"das ist satz nummer {i} hier" for i in range(40)]
    hyps = [r if i % 3 else "etwas ganz anderes" for i, r in enumerate(refs)]
    lo, hi = bootstrap_interval(hyps, refs, resamples=200, seed=0)
    bleu = score(hyps, refs, ["bleu"])["bleu"]["score"]
    assert lo < bleu < hi and hi - lo > 1
    assert bootstrap_interval(refs, refs, resamples=50) == [100.0, 100.0]
