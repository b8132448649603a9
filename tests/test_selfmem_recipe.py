"""The memory recipe (relift.selfmem.generator.recipe): threshold, bucket marker, training
shares and warm start, applied the same way at training and at inference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_selfmem_memory import PAIRS, QUERIES, write_split

from relift.io import InputError, run_cli
from relift.selfmem.data import load_split
from relift.selfmem.generator import candidates
from relift.selfmem.generator import tokenizer as sm_tokenizer
from relift.selfmem.generator import train as train_generator
from relift.selfmem.generator.model import Generator
from relift.selfmem.generator.recipe import MARKERS, marker, memory_view, mix_training_memory
from relift.selfmem.match import BANDS, band_of, fuzzy_match, read_scores

TINY = ["--d-model", "32", "--encoder-layers", "1", "--decoder-layers", "1"]
TINY += ["--attention-heads", "2", "--ffn-dim", "64", "--batch-size", "4", "--max-tokens", "0"]
TINY += ["--warmup-steps", "1", "--eval-every", "2", "--log-every", "2"]
TINY += ["--max-target-length", "12", "--threads", "1", "--no-progress", "--device", "cpu"]
TINY += ["--memory-noise-share", "0"]  # every training memory as retrieved unless a test says


def test_threshold_withholds_exactly_the_memories_below_it():
    mems = ["a", "b", "c", "d", ""]
    scores = [0.2, 0.5, 0.49999, 0.95, 0.99]
    assert memory_view(mems, scores, 0.5, False) == ["", "b", "", "d", ""]
    assert memory_view(mems, scores, 0.0, False) == mems
    marked = memory_view(mems, scores, 0.5, True)
    assert marked == ["", "<fm1> b", "", "<fm3> d", ""]
    with pytest.raises(InputError, match="match"):
        memory_view(mems, None, 0.5, False)


def test_marker_buckets_are_the_bands():
    assert [marker(s) for s in (0.0, 0.49, 0.5, 0.69, 0.7, 0.89, 0.9, 1.0)] == [
        MARKERS[i] for i in (0, 0, 1, 1, 2, 2, 3, 3)
    ]
    assert len(MARKERS) == len(BANDS)
    assert [band_of(s) for s in (0.0, 0.5, 0.7, 0.9, 1.0)] == [0, 1, 2, 3, 3]


def test_training_shares_and_their_scores():
    split = load_split(write_split(Path("/tmp/relift_recipe_split.jsonl"), PAIRS * 20))
    n = len(split)
    mems = [split.targets[(i + 1) % n] for i in range(n)]
    scores = [fuzzy_match(split.sources[i], split.sources[(i + 1) % n]) for i in range(n)]
    shares = {"withheld": 0.2, "random": 0.2, "noised_target": 0.2}
    out, sc, _, counts = mix_training_memory(split, mems, scores, None, shares, seed=0)
    assert sum(counts.values()) == n and all(counts[k] > 0.1 * n for k in shares)
    assert sum(m == "" for m in out) >= counts["withheld"]
    # a replaced memory's score is what it would be: noised copies of the target score high
    changed = [i for i in range(n) if out[i] != mems[i] and out[i]]
    assert changed and all(0.0 <= sc[i] <= 1.0 for i in changed)
    again = mix_training_memory(split, mems, scores, None, shares, seed=0)
    assert again[0] == out  # fixed per example
    with pytest.raises(InputError, match="add up"):
        mix_training_memory(split, mems, scores, None, {"withheld": 0.7, "random": 0.4}, 0)


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    d = tmp_path_factory.mktemp("recipe")
    tok_dir = d / "tokenizer"
    train = write_split(d / "train.jsonl", PAIRS)
    write_split(d / "dev.jsonl", QUERIES)
    assert run_cli(sm_tokenizer.main, ["--train", str(train), "--vocab-size", "400",
                                       "--output", str(tok_dir)]) == 0  # fmt: skip
    (d / "train.mem").write_text("".join(t + "\n" for _, t in PAIRS[1:] + PAIRS[:1]))
    (d / "dev.mem").write_text("".join(t + "\n" for _, t in PAIRS[: len(QUERIES)]))
    rng = np.random.default_rng(0)
    (d / "train.match").write_text("".join(f"{x:.4f}\n" for x in rng.random(len(PAIRS))))
    (d / "dev.match").write_text("".join(f"{x:.4f}\n" for x in rng.random(len(QUERIES))))
    return d


def _train(d: Path, arch: str, name: str, extra=(), steps=2):
    out = d / name
    args = ["--train", str(d / "train.jsonl"), "--dev", str(d / "dev.jsonl")]
    args += ["--tokenizer", str(d / "tokenizer"), "--arch", arch, *TINY]
    args += ["--max-steps", str(steps), "--work-dir", str(d / f"{name}.work"), "--output", str(out)]
    if arch != "vanilla":
        args += ["--train-memory", str(d / "train.mem"), "--dev-memory", str(d / "dev.mem")]
        args += ["--train-match", str(d / "train.match"), "--dev-match", str(d / "dev.match")]
    assert run_cli(train_generator.main, [*args, *extra]) == 0
    return out


def candidates_args(task: Path, generator: Path, name: str) -> list[str]:
    """The candidates CLI over the training split with its memories and match scores, one
    hypothesis per input, into ``<name>.jsonl`` / ``<name>.txt``."""
    args = ["--generator", str(generator), "--data", str(task / "train.jsonl")]
    args += ["--memory", str(task / "train.mem"), "--match", str(task / "train.match")]
    args += ["--num-beams", "2", "--num-return-sequences", "1", "--batch-size", "4"]
    return args + [
        "--output-jsonl",
        str(task / f"{name}.jsonl"),
        "--output-txt",
        str(task / f"{name}.txt"),
    ]


def spy_memories(monkeypatch) -> dict[str, dict[str, str]]:
    """What the generator reads: source -> memory as trained on ("train") and as decoded with
    ("infer"), filled as the generator runs."""
    seen = {"train": {}, "infer": {}}
    real_batch, real_generate = Generator.batch, Generator.generate

    def spy_batch(self, sources, memories, targets=None):
        if targets is not None:
            seen["train"].update(zip(sources, memories, strict=True))
        return real_batch(self, sources, memories, targets)

    def spy_generate(self, sources, memories, *a, **k):
        seen["infer"].update(zip(sources, memories or [], strict=False))
        return real_generate(self, sources, memories, *a, **k)

    monkeypatch.setattr(Generator, "batch", spy_batch)
    monkeypatch.setattr(Generator, "generate", spy_generate)
    return seen


def test_marker_and_threshold_identical_at_training_and_inference(task, monkeypatch):
    seen = spy_memories(monkeypatch)
    recipe = ["--memory-min-match", "0.4", "--memory-marker"]
    out = _train(task, "joint", "marked", recipe, steps=4)
    spec = json.loads((out / "selfmem.json").read_text())
    assert spec["memory_min_match"] == 0.4 and spec["memory_marker"] is True
    # training: exactly the memories below 0.4 are withheld, the others carry their marker
    tr = load_split(task / "train.jsonl")
    tr_mem = (task / "train.mem").read_text().splitlines()
    tr_sc = read_scores(task / "train.match")
    assert len(seen["train"]) == len(tr.sources)
    for s, m, x in zip(tr.sources, tr_mem, tr_sc, strict=True):
        assert seen["train"][s] == ("" if x < 0.4 else f"{marker(x)} {m}")
    # inference (candidates CLI, training-split inputs): the same view for the same example
    seen["infer"].clear()
    args = candidates_args(task, out, "c")
    assert run_cli(candidates.main, args) == 0
    assert seen["infer"] == seen["train"]
    # a recipe generator refuses memories without their scores
    bad = [a for a in args if a not in ("--match", str(task / "train.match"))]
    assert run_cli(candidates.main, bad) != 0


def test_warm_start_continues_from_the_vanilla_weights(task):
    van = _train(task, "vanilla", "van", steps=2)
    # a tiny learning rate: one update leaves the weights where the warm start put them
    warm = _train(task, "joint", "warm", ["--init-generator", str(van), "--lr", "1e-9"], 1)
    scratch = _train(task, "joint", "scratch", ["--lr", "1e-9", "--seed", "5"], 1)
    w_van, w_warm, w_scr = (Generator.load(p).model.state_dict() for p in (van, warm, scratch))
    key = next(k for k in w_van if "encoder.layers.0" in k and k.endswith("weight"))
    assert torch.allclose(w_van[key], w_warm[key], atol=1e-5)
    assert not torch.allclose(w_van[key], w_scr[key], atol=1e-3)
    res = json.loads((warm / "train_result.json").read_text())
    done = json.loads((van / "train_result.json").read_text())
    assert res["init"]["steps"] == 2 and res["total_steps"] == 3
    assert res["total_train_seconds"] >= done["train_seconds"]
    # the segment embedding joins a warm start at zero: the vanilla weights stay as they were
    seg = _train(task, "joint", "seg", ["--init-generator", str(van), "--lr", "1e-9",
                                        "--memory-segments"], 1)  # fmt: skip
    w_seg = Generator.load(seg).model.state_dict()
    assert torch.allclose(w_van[key], w_seg[key], atol=1e-5)
    assert w_seg["segment_embed.weight"].abs().max() < 1e-6
    curve = (warm / "dev_curve.csv").read_text().splitlines()
    assert curve[0].startswith("step,train_seconds,total_steps,total_train_seconds")
    assert curve[1].split(",")[:3:2] == ["1", "3"]


def test_memory_source_goes_before_the_memory_target():
    mems, srcs = ["ein Haus", "", "zwei"], ["a house", "x", "two"]
    scores = [0.8, 0.9, 0.3]
    assert memory_view(mems, scores, 0.0, False, srcs, True) == [
        "a house </s> ein Haus",
        "",
        "two </s> zwei",
    ]
    # with the threshold and the marker: the marker first, withheld memories stay empty
    assert memory_view(mems, scores, 0.5, True, srcs, True) == [
        "<fm2> a house </s> ein Haus",
        "",
        "",
    ]
    # without scores (no threshold, no marker) every memory counts as read
    assert memory_view(mems, None, 0.0, False, srcs, True)[0] == "a house </s> ein Haus"
    with pytest.raises(InputError, match="memory-source"):
        memory_view(mems, scores, 0.0, False, None, True)
    with pytest.raises(InputError, match="2 memory sources for 3"):
        memory_view(mems, scores, 0.0, False, srcs[:2], True)


def test_training_shares_carry_their_memories_sources():
    split = load_split(write_split(Path("/tmp/relift_recipe_split_src.jsonl"), PAIRS * 20))
    n = len(split)
    mems = [split.targets[(i + 1) % n] for i in range(n)]
    msrc = [split.sources[(i + 1) % n] for i in range(n)]
    shares = {"withheld": 0.2, "random": 0.2, "noised_target": 0.3}
    out, _, src, counts = mix_training_memory(split, mems, None, None, shares, 0, msrc)
    assert all(counts[k] for k in shares)
    t2s = {}
    for s, t in zip(split.sources, split.targets, strict=True):
        t2s.setdefault(t, set()).add(s)
    kinds = {"kept": 0, "withheld": 0, "own": 0, "other": 0}
    for i in range(n):
        if out[i] == mems[i]:  # kept BM25 memory: its source unchanged
            assert src[i] == msrc[i]
            kinds["kept"] += 1
        elif out[i] == "":
            assert src[i] == ""
            kinds["withheld"] += 1
        elif out[i] in t2s and src[i] in t2s[out[i]]:  # a random training example, its source
            kinds["other"] += 1
        else:  # a noised copy of the target translates the example itself: its own source
            assert src[i] == split.sources[i], (i, out[i], src[i])
            kinds["own"] += 1
    assert all(kinds.values()), kinds
    # without sources nothing changes but the missing sources
    assert mix_training_memory(split, mems, None, None, shares, 0)[2] is None


def test_memory_source_identical_at_training_and_inference(task, monkeypatch):
    """memory_source: training, the dev evaluation and the candidates CLI read the same
    `marker source </s> target` for an example; the separator is the tokenizer's </s>."""
    tr = load_split(task / "train.jsonl")
    n = len(tr)
    (task / "train.msrc").write_text("".join(tr.sources[(i + 1) % n] + "\n" for i in range(n)))
    (task / "dev.msrc").write_text("".join(s + "\n" for s, _ in PAIRS[: len(QUERIES)]))
    seen = spy_memories(monkeypatch)
    recipe = ["--memory-min-match", "0.4", "--memory-marker", "--memory-source"]
    files = ["--train-memory-sources", str(task / "train.msrc")]
    files += ["--dev-memory-sources", str(task / "dev.msrc")]
    # the recipe without the sources is refused before training
    base = ["--train", str(task / "train.jsonl"), "--dev", str(task / "dev.jsonl")]
    base += ["--tokenizer", str(task / "tokenizer"), "--arch", "joint", *TINY, *recipe]
    base += ["--train-memory", str(task / "train.mem"), "--dev-memory", str(task / "dev.mem")]
    base += ["--train-match", str(task / "train.match"), "--dev-match", str(task / "dev.match")]
    base += ["--max-steps", "2", "--work-dir", str(task / "nosrc.work")]
    assert run_cli(train_generator.main, [*base, "--output", str(task / "nosrc")]) != 0
    assert not (task / "nosrc").exists()
    out = _train(task, "joint", "sourced", [*recipe, *files], steps=4)
    assert json.loads((out / "selfmem.json").read_text())["memory_source"] is True
    tr_mem = (task / "train.mem").read_text().splitlines()
    tr_src = (task / "train.msrc").read_text().splitlines()
    tr_sc = read_scores(task / "train.match")
    for s, m, ms, x in zip(tr.sources, tr_mem, tr_src, tr_sc, strict=True):
        assert seen["train"][s] == ("" if x < 0.4 else f"{marker(x)} {ms} </s> {m}")
    seen["infer"].clear()
    args = candidates_args(task, out, "s")
    assert run_cli(candidates.main, args) != 0  # no --memory-sources: refused
    assert run_cli(candidates.main, [*args, "--memory-sources", str(task / "train.msrc")]) == 0
    assert seen["infer"] == seen["train"]
    # the separator is one end-of-sequence token between the memory's source and target
    gen = Generator.load(out)
    src, read = next((k, v) for k, v in seen["train"].items() if v)
    ids = gen.encode_inputs([src], [read])["input_ids"][0].tolist()
    eos = gen.tokenizer.convert_tokens_to_ids("</s>")
    assert ids.count(eos) == 3, gen.tokenizer.convert_ids_to_tokens(ids)


def test_memory_sources_are_the_top_hits_sources(task):
    """`python -m relift.selfmem.match --sources`: the top-1 hit's source per line, an empty line
    without a hit; the same hit the match score is computed against."""
    from relift.selfmem import match

    tr = load_split(task / "train.jsonl")
    hits = [[3, 1], [], [0]]
    (task / "q.hits.jsonl").write_text("".join(json.dumps({"ids": h}) + "\n" for h in hits))
    write_split(task / "q.jsonl", QUERIES[:3])
    args = ["--train", str(task / "train.jsonl"), "--data", str(task / "q.jsonl")]
    args += ["--hits", str(task / "q.hits.jsonl")]
    assert run_cli(match.main, [*args, "--sources", "--output", str(task / "q.src")]) == 0
    assert (task / "q.src").read_text().split("\n") == [tr.sources[3], "", tr.sources[0], ""]
    assert match.read_sources(task / "q.src", 3) == [tr.sources[3], "", tr.sources[0]]
    assert run_cli(match.main, [*args, "--output", str(task / "q.match")]) == 0
    q = load_split(task / "q.jsonl")
    assert read_scores(task / "q.match")[0] == pytest.approx(
        fuzzy_match(q.sources[0], tr.sources[3]), abs=1e-4
    )
    with pytest.raises(InputError, match="2 were expected"):
        match.read_sources(task / "q.src", 2)
