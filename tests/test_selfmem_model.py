"""Selfmem tokenizer, generator architectures (vanilla / joint / dual), beam search, training
and candidate CLIs on tiny models (offline, seconds)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_selfmem_memory import PAIRS, QUERIES, write_split  # noqa: E402

from relift.io import run_cli
from relift.selfmem.data import load_split
from relift.selfmem.generator import candidates
from relift.selfmem.generator import tokenizer as sm_tokenizer
from relift.selfmem.generator import train as train_generator
from relift.selfmem.generator.model import (
    DualBartForConditionalGeneration,
    Generator,
    GeneratorSpec,
    ModelSize,
)

TINY = ModelSize(
    d_model=32,
    encoder_layers=1,
    decoder_layers=2,
    attention_heads=2,
    ffn_dim=64,
    dropout=0.0,
    attention_dropout=0.0,
)


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tok") / "tokenizer"
    train = write_split(folder.parent / "train.jsonl", PAIRS * 3)
    assert (
        run_cli(
            sm_tokenizer.main,
            ["--train", str(train), "--vocab-size", "400", "--output", str(folder)],
        )
        == 0
    )
    return sm_tokenizer.load_tokenizer(folder)


def gen(tok, arch, **spec):
    return Generator.from_scratch(tok, GeneratorSpec(arch=arch, **spec), TINY, seed=0)


def test_tokenizer_specials_and_loading(tok, tmp_path):
    from transformers import AutoTokenizer

    assert [
        tok.bos_token_id,
        tok.pad_token_id,
        tok.eos_token_id,
        tok.unk_token_id,
        tok.mask_token_id,
    ] == [0, 1, 2, 3, 4]
    assert tok.convert_ids_to_tokens([0, 1, 2, 3, 4]) == ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok.save_pretrained(tmp_path / "t")
    again = AutoTokenizer.from_pretrained(tmp_path / "t")
    text = "Das ausgewählte Benutzerkonto löschen"
    ids = again(text)["input_ids"]
    assert ids[0] == 0 and ids[-1] == 2
    assert again.decode(ids, skip_special_tokens=True).strip() == text
    # both sides were learnt: German words are single tokens in a tiny vocabulary, too
    assert len(again(" Benutzerkonto", add_special_tokens=False)["input_ids"]) <= 3


def test_tokenizer_too_small_vocab(tmp_path, capsys):
    train = write_split(tmp_path / "t.jsonl", PAIRS)
    assert (
        run_cli(
            sm_tokenizer.main,
            ["--train", str(train), "--vocab-size", "100", "--output", str(tmp_path / "o")],
        )
        == 2
    )
    assert "too small" in capsys.readouterr().err


def test_joint_layout_and_truncation(tok):
    src_ids = tok("Save the file", add_special_tokens=False)["input_ids"]
    mem_ids = tok("Datei speichern", add_special_tokens=False)["input_ids"]
    enc = gen(tok, "joint", max_source_length=32, max_memory_length=32).encode_inputs(
        ["Save the file"], ["Datei speichern"]
    )
    assert enc["input_ids"][0].tolist() == [
        0,
        *src_ids,
        2,
        *mem_ids,
        2,
    ]  # <s> source </s> memory </s>
    g = gen(tok, "joint", max_source_length=8, max_memory_length=8)
    assert len(src_ids) <= 6
    long_mem = " ".join(["Benutzerkonto löschen"] * 10)
    enc = g.encode_inputs(["Save the file", "Open"], [long_mem, "x"])
    row = enc["input_ids"][0].tolist()
    assert len(row) == 16  # max_source_length + max_memory_length
    seps = [i for i, t in enumerate(row) if t == 2]
    assert row[1 : seps[0]] == src_ids, "longest-first truncation cuts the (longer) memory first"
    assert enc["attention_mask"][1].sum() < 16  # the short pair is padded
    assert g.encode_inputs(["a"], ["b"]).keys() == {"input_ids", "attention_mask"}


def test_vanilla_ignores_memory_and_dual_encodes_it(tok):
    v = gen(tok, "vanilla", max_source_length=8)
    a, b = v.encode_inputs(["Save the file"], ["x"]), v.encode_inputs(["Save the file"], ["y y y"])
    assert a["input_ids"].tolist() == b["input_ids"].tolist()
    d = gen(tok, "dual", max_source_length=8, max_memory_length=5)
    enc = d.encode_inputs(["Save the file"], [" ".join(["Benutzerkonto"] * 20)])
    assert set(enc) == {"input_ids", "attention_mask", "memory_input_ids", "memory_attention_mask"}
    assert enc["memory_input_ids"].shape[1] == 5


def test_labels_drop_the_decoder_start(tok):
    g = gen(tok, "joint")
    labels = g.encode_labels(["Datei speichern", "Ja"])
    assert labels[0, 0].item() != g.model.config.decoder_start_token_id
    assert (labels[1] == -100).any() and labels[0, -1].item() == tok.eos_token_id


def test_dual_memory_changes_the_output(tok):
    d = gen(tok, "dual")
    d.model.eval()
    src = ["Save the current document to disk"] * 2
    enc = d.encode_inputs(src, ["Das aktuelle Dokument speichern", "Das Profilbild entfernen"])
    dec = torch.full((2, 3), tok.bos_token_id)
    with torch.no_grad():
        logits = d.model(**enc, decoder_input_ids=dec).logits
    assert not torch.allclose(logits[0], logits[1], atol=1e-5)
    # same memory -> same logits (the difference comes from the memory alone)
    enc2 = d.encode_inputs(src, ["Das Profilbild entfernen"] * 2)
    with torch.no_grad():
        same = d.model(**enc2, decoder_input_ids=dec).logits
    assert torch.allclose(same[0], same[1], atol=1e-6)
    assert torch.allclose(same[1], logits[1], atol=1e-5)
    # the memory reaches the decoder only through the memory cross-attention blocks
    for layer in d.model.model.decoder.layers:
        torch.nn.init.zeros_(layer.memory_attn.out_proj.weight)
        torch.nn.init.zeros_(layer.memory_attn.out_proj.bias)
    with torch.no_grad():
        logits = d.model(**enc, decoder_input_ids=dec).logits
    assert torch.allclose(logits[0], logits[1], atol=1e-5)


def test_dual_loss_backprop_reaches_memory_attention(tok):
    d = gen(tok, "dual")
    batch = d.batch(
        ["Save the file", "Open it"], ["Datei speichern", "Öffnen"], ["Datei speichern", "Öffnen"]
    )
    d.model.train()
    d.model(**batch).loss.backward()
    assert d.model.model.decoder.layers[0].memory_attn.k_proj.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("arch", ["dual", "joint"])
def test_beam_search_returns_k_hypotheses(tok, arch):
    d = gen(tok, arch)
    res = d.generate(
        ["Save the current document", "Open the item in a new tab", "Delete"],
        ["Das Dokument speichern", "Element öffnen", "löschen"],
        num_beams=4,
        num_return_sequences=3,
        max_new_tokens=6,
    )
    assert len(res) == 3 and all(len(r) == 3 for r in res)
    for r in res:
        scores = [s for _, s in r]
        assert all(isinstance(s, float) and s <= 0 for s in scores)
        assert scores == sorted(scores, reverse=True)


def test_dual_cached_decoding_matches_uncached(tok):
    d = gen(tok, "dual")
    d.model.eval()
    enc = d.encode_inputs(
        ["Save the current document", "Open"], ["Das Dokument speichern", "Öffnen Sie"]
    )
    kw = dict(
        max_new_tokens=7,
        min_new_tokens=7,
        do_sample=False,
        output_scores=True,
        return_dict_in_generate=True,
    )
    for beams in (1, 3):
        a = d.model.generate(**enc, num_beams=beams, use_cache=True, **kw)
        b = d.model.generate(**enc, num_beams=beams, use_cache=False, **kw)
        assert a.sequences.tolist() == b.sequences.tolist()
        for x, y in zip(a.scores, b.scores, strict=True):
            assert torch.allclose(x, y, atol=1e-4)


def test_save_and_load_roundtrip(tok, tmp_path):
    from transformers import AutoModelForSeq2SeqLM

    for arch in ("vanilla", "dual"):
        g = gen(tok, arch, max_target_length=9)
        g.save(tmp_path / arch)
        again = Generator.load(tmp_path / arch)
        assert again.spec == g.spec
        src, mem = ["Save the file"], ["Datei speichern"]
        assert again.generate(src, mem, num_beams=2, max_new_tokens=5) == g.generate(
            src, mem, num_beams=2, max_new_tokens=5
        )
    assert isinstance(
        AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "dual"), DualBartForConditionalGeneration
    )


def test_load_rejects_foreign_folder(tmp_path, capsys):
    from relift.io import InputError

    with pytest.raises(InputError, match="not a Selfmem generator folder"):
        Generator.load(tmp_path)


def _train_and_decode(tmp_path: Path, tok_dir: Path, arch: str):
    tmp_path.mkdir(parents=True, exist_ok=True)
    train = write_split(tmp_path / "train.jsonl", PAIRS)
    dev = write_split(tmp_path / "dev.jsonl", QUERIES)
    mem_tr = tmp_path / "train.mem"
    mem_dev = tmp_path / "dev.mem"
    mem_tr.write_text("".join(t + "\n" for _, t in PAIRS[1:] + PAIRS[:1]), encoding="utf-8")
    mem_dev.write_text("".join(t + "\n" for _, t in PAIRS[: len(QUERIES)]), encoding="utf-8")
    out = tmp_path / "gen"
    args = [
        "--train",
        str(train),
        "--dev",
        str(dev),
        "--tokenizer",
        str(tok_dir),
        "--arch",
        arch,
        "--d-model",
        "32",
        "--encoder-layers",
        "1",
        "--decoder-layers",
        "1",
        "--attention-heads",
        "2",
        "--ffn-dim",
        "64",
        "--batch-size",
        "4",
        "--max-steps",
        "6",
        "--warmup-steps",
        "2",
        "--eval-every",
        "3",
        "--log-every",
        "3",
        "--max-target-length",
        "12",
        "--threads",
        "1",
        "--no-progress",
        "--device",
        "cpu",
        "--work-dir",
        str(tmp_path / "work"),
        "--output",
        str(out),
    ]
    if arch != "vanilla":
        args += ["--train-memory", str(mem_tr), "--dev-memory", str(mem_dev)]
        # memories read as given (the memory recipe is tested in test_selfmem_recipe.py)
        args += ["--memory-min-match", "0", "--no-memory-marker", "--memory-noise-share", "0"]
    assert run_cli(train_generator.main, args) == 0
    result = json.loads((out / "train_result.json").read_text())
    assert (
        result["steps"] == 6 and result["eval_metric"] == "bleu" and result["best_step"] in (3, 6)
    )
    assert (out / "selfmem.json").exists() and (out / "tokenizer.json").exists()
    evals = [json.loads(x) for x in (tmp_path / "work" / "metrics.jsonl").read_text().splitlines()]
    assert [e["step"] for e in evals if e["kind"] == "eval"] == [3, 6]
    cand = [
        "--generator",
        str(out),
        "--data",
        str(dev),
        "--num-beams",
        "3",
        "--num-return-sequences",
        "3",
        "--batch-size",
        "2",
        "--output-jsonl",
        str(tmp_path / "c.jsonl"),
        "--output-txt",
        str(tmp_path / "c.txt"),
    ]
    if arch != "vanilla":
        cand += ["--memory", str(mem_dev)]
    assert run_cli(candidates.main, cand) == 0
    recs = [json.loads(x) for x in (tmp_path / "c.jsonl").read_text().splitlines()]
    assert [r["id"] for r in recs] == list(range(len(QUERIES)))
    assert all(len(r["candidates"]) == 3 == len(r["scores"]) for r in recs)
    lines = (tmp_path / "c.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert len(lines) == 3 * len(QUERIES)
    assert lines[3:6] == recs[1]["candidates"]
    return args


def test_train_generator_and_candidates_cli(tok, tmp_path):
    tok_dir = tmp_path / "tok"
    tok.save_pretrained(tok_dir)
    args = _train_and_decode(tmp_path / "dual", tok_dir, "dual")
    # a rerun with the same settings resumes from the last checkpoint (nothing left to train)
    weights = (tmp_path / "dual" / "gen" / "model.safetensors").read_bytes()
    assert run_cli(train_generator.main, args) == 0
    evals = [
        json.loads(x)
        for x in (tmp_path / "dual" / "work" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [e["step"] for e in evals if e["kind"] == "eval"] == [3, 6]
    assert (tmp_path / "dual" / "gen" / "model.safetensors").read_bytes() == weights
    assert load_split(tmp_path / "dual" / "dev.jsonl").sources[0] == QUERIES[0][0]
    # a changed setting (here through --settings, as the workflow passes it) starts over
    assert run_cli(train_generator.main, [*args, "--settings", '{"label_smoothing": 0.2}']) == 0
    assert (tmp_path / "dual" / "gen" / "model.safetensors").read_bytes() != weights
    evals = [
        json.loads(x)
        for x in (tmp_path / "dual" / "work" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [e["step"] for e in evals if e["kind"] == "eval"] == [3, 6]  # trained again


def test_train_generator_needs_memory(tmp_path, tok, capsys):
    tok.save_pretrained(tmp_path / "tok")
    train = write_split(tmp_path / "train.jsonl", PAIRS)
    rc = run_cli(
        train_generator.main,
        [
            "--train",
            str(train),
            "--dev",
            str(train),
            "--tokenizer",
            str(tmp_path / "tok"),
            "--arch",
            "joint",
            "--work-dir",
            str(tmp_path / "w"),
            "--output",
            str(tmp_path / "o"),
        ],
    )
    assert rc == 2 and "needs --train-memory" in capsys.readouterr().err
    mem = tmp_path / "short.mem"
    mem.write_text("one line\n")
    rc = run_cli(
        train_generator.main,
        [
            "--train",
            str(train),
            "--dev",
            str(train),
            "--tokenizer",
            str(tmp_path / "tok"),
            "--arch",
            "joint",
            "--train-memory",
            str(mem),
            "--dev-memory",
            str(mem),
            "--work-dir",
            str(tmp_path / "w"),
            "--output",
            str(tmp_path / "o"),
        ],
    )
    err = capsys.readouterr().err
    assert rc == 2 and "short.mem" in err and "has 1 lines but 12 were expected" in err


def test_dual_from_a_bart_checkpoint_copies_cross_attention(tok, tmp_path):
    # a plain (post-LN) BartForConditionalGeneration, saved as a "pretrained" checkpoint
    src = Generator.from_scratch(
        tok, GeneratorSpec(arch="joint"), ModelSize(**{**TINY.__dict__, "pre_ln": False})
    )
    src.model.save_pretrained(tmp_path / "bart")
    d = Generator.from_pretrained_model(str(tmp_path / "bart"), tok, GeneratorSpec(arch="dual"))
    layer = d.model.model.decoder.layers[0]
    assert isinstance(d.model, DualBartForConditionalGeneration)
    assert torch.equal(layer.memory_attn.q_proj.weight, layer.encoder_attn.q_proj.weight)
    assert torch.equal(d.model.model.shared.weight, src.model.model.shared.weight)
    assert (
        len(
            d.generate(["Save"], ["Datei"], num_beams=2, num_return_sequences=2, max_new_tokens=3)[
                0
            ]
        )
        == 2
    )


# ------------------------------------------------------------------ the memory path is real
def _memory_task(tok, n, seed):
    """Targets are random German word sequences unrelated to their (English) sources: only the
    memory (the target itself, at training time) tells the generator what to write."""
    import random

    rng = random.Random(seed)
    de = sorted({w for _, t in PAIRS for w in t.split()})[:12]
    en = sorted({w for s, _ in PAIRS for w in s.split()})[:12]
    src = [" ".join(rng.choices(en, k=3)) for _ in range(n)]
    trg = [" ".join(rng.choices(de, k=3)) for _ in range(n)]
    return src, trg


def _train_memory_copier(tok, arch, copy=False, steps=250, drop_memory=False):
    torch.set_num_threads(1)
    size = ModelSize(64, 1, 1, 4, 128, 0.0, 0.0, pre_ln=True, copy=copy)
    g = Generator.from_scratch(tok, GeneratorSpec(arch=arch), size, seed=0)
    if drop_memory:  # a broken memory path: the encoder never sees the memory
        g.encode_inputs = lambda sources, memories: Generator.encode_inputs(
            g, sources, [""] * len(sources)
        )
    src, trg = _memory_task(tok, 256, seed=1)
    opt = torch.optim.Adam(g.model.parameters(), lr=5e-3)
    cfg = g.model.config
    from transformers.models.bart.modeling_bart import shift_tokens_right

    g.model.train()
    for step in range(steps):
        idx = [(step * 32 + i) % len(src) for i in range(32)]
        b = g.batch([src[i] for i in idx], [trg[i] for i in idx], [trg[i] for i in idx])
        b["decoder_input_ids"] = shift_tokens_right(
            b["labels"], cfg.pad_token_id, cfg.decoder_start_token_id
        )
        loss = g.model(**b).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return g


def _chrf_with(g, src, memories, trg):
    from relift.score import score

    hyps = [r[0][0] for r in g.generate(src, memories, num_beams=1, max_new_tokens=16)]
    return score(hyps, trg, ["chrf"])["chrf"]["score"]


@pytest.mark.slow  # > 5 s: make test runs it, make test-fast does not
@pytest.mark.parametrize("copy", [False, True], ids=["plain", "copy_head"])
def test_generator_reads_its_memory(tok, copy):
    """Trained briefly, a joint generator scores far higher (chrF++) with the reference as memory
    than with shuffled memory; with the memory dropped from its input it cannot (the check
    fails)."""
    src, trg = _memory_task(tok, 48, seed=2)
    shuffled = trg[1:] + trg[:1]
    g = _train_memory_copier(tok, "joint", copy=copy)
    ref, shuf = _chrf_with(g, src, trg, trg), _chrf_with(g, src, shuffled, trg)
    assert ref >= shuf + 30, (ref, shuf)
    if not copy:
        broken = _train_memory_copier(tok, "joint", drop_memory=True)
        ref_b, shuf_b = _chrf_with(broken, src, trg, trg), _chrf_with(broken, src, shuffled, trg)
        assert not ref_b >= shuf_b + 30, (ref_b, shuf_b)


def test_copy_head_is_a_distribution_and_round_trips(tok, tmp_path):
    from relift.selfmem.generator.model import CopyMBartForConditionalGeneration

    size = ModelSize(32, 1, 1, 2, 64, 0.0, 0.0, pre_ln=True, copy=True)
    g = Generator.from_scratch(tok, GeneratorSpec(arch="joint"), size, seed=0)
    assert isinstance(g.model, CopyMBartForConditionalGeneration)
    g.model.eval()
    b = g.batch(["Save the file"], ["Datei speichern"], ["Datei speichern"])
    out = g.model(**b)
    assert torch.allclose(out.logits.exp().sum(-1), torch.ones(1), atol=1e-4)
    res = g.generate(["Save the file", "Open"], ["Datei speichern", "Öffnen"], num_beams=3)
    assert len(res) == 2
    g.save(tmp_path / "g")
    back = Generator.load(tmp_path / "g")
    assert isinstance(back.model, CopyMBartForConditionalGeneration)
    assert torch.allclose(back.model(**b).logits, out.logits, atol=1e-5)
    with pytest.raises(Exception, match="copy head"):
        Generator.from_scratch(tok, GeneratorSpec(arch="dual"), size)


@pytest.mark.parametrize("arch,copy", [("vanilla", False), ("joint", True), ("dual", False)])
def test_fast_beam_search_equals_plain_beam_search(tok, monkeypatch, arch, copy):
    """The cross-attention cache is not reordered between beams, and the copy head's keys are
    computed once per call: the same candidates and scores as transformers' plain beam search."""
    from transformers.cache_utils import DynamicCache, EncoderDecoderCache

    import relift.selfmem.generator.copy_head as MC
    import relift.selfmem.generator.model as M

    size = ModelSize(32, 1, 1, 2, 64, 0.0, 0.0, pre_ln=arch != "dual", copy=copy)
    g = Generator.from_scratch(tok, GeneratorSpec(arch=arch), size, seed=0)
    g.model.generation_config.min_new_tokens = 10  # an untrained model would stop at once
    with torch.no_grad():  # sharper weights: outputs that depend on the history of each beam
        for p in g.model.parameters():
            if p.dim() > 1:
                p.mul_(4)
    moved = []  # beams really reordered (else a broken reordering would go unnoticed)
    reorder = MC.BeamSearchCache.reorder_cache

    def watch(self, beam_idx):
        moved.append(bool((beam_idx != torch.arange(len(beam_idx))).any()))
        reorder(self, beam_idx)

    monkeypatch.setattr(MC.BeamSearchCache, "reorder_cache", watch)
    srcs = ["Save the file", "Open the window now", "Close", "Print all pages of it"]
    mems = None if arch == "vanilla" else ["Datei speichern", "Öffnen", "Schließen", "Drucken"]
    fast = g.generate(srcs, mems, num_beams=3, num_return_sequences=3, max_new_tokens=12)
    assert sum(moved) >= 5
    monkeypatch.setattr(
        M, "beam_search_cache", lambda cfg: EncoderDecoderCache(DynamicCache(), DynamicCache())
    )
    if copy:
        orig = M.CopyMBartForConditionalGeneration._encode_for_generation

        def no_cached_keys(self, inputs_tensor, model_kwargs):
            kw = orig(self, inputs_tensor, model_kwargs)
            kw["encoder_outputs"].copy_keys = None
            return kw

        monkeypatch.setattr(
            M.CopyMBartForConditionalGeneration, "_encode_for_generation", no_cached_keys
        )
    plain = g.generate(srcs, mems, num_beams=3, num_return_sequences=3, max_new_tokens=12)
    assert [[t for t, _ in r] for r in fast] == [[t for t, _ in r] for r in plain]
    for a, b in zip(fast, plain, strict=True):
        assert [s for _, s in a] == pytest.approx([s for _, s in b], abs=1e-4)


def test_plan_batches_sorts_by_source_length_and_keeps_the_budget():
    src = [9, 1, 5, 3, 7, 2, 8, 4]
    inp = [s * 2 for s in src]
    fixed = candidates.plan_batches(src, inp, batch_size=3)
    assert fixed == [[1, 5, 3], [7, 2, 4], [6, 0]]  # shortest sources first, 3 per batch
    budget = candidates.plan_batches(src, inp, batch_size=3, batch_tokens=24)
    assert sorted(i for b in budget for i in b) == list(range(8))
    for b in budget:  # inputs x the longest encoder input stays within the budget
        assert len(b) == 1 or len(b) * max(inp[i] for i in b) <= 24
    # short inputs share a batch, long ones split
    assert [len(b) for b in budget] == [3, 2, 1, 1, 1]
    # a single input over the budget still gets its own batch; at most 4 x batch_size inputs
    assert candidates.plan_batches([50], [50], 2, batch_tokens=10) == [[0]]
    assert max(len(b) for b in candidates.plan_batches([1] * 20, [1] * 20, 2, 1000)) == 8


def test_candidates_do_not_depend_on_the_batch_plan(tok):
    """Input order comes back whatever the batches: fixed, token budget, one input at a time."""
    g = gen(tok, "joint", max_target_length=12)  # ratio 0 below: the same output budget
    srcs = ["Save the file", "Open the window now", "Close", "Print all pages of it", "Undo"]
    mems = ["Datei speichern", "Öffnen", "Schließen", "Drucken", "Rückgängig"]
    runs = [
        candidates.generate_candidates(
            g, srcs, mems, 2, 2, bs, max_length_ratio=0, log_every=0, batch_tokens=bt
        )
        for bs, bt in [(5, 0), (2, 0), (1, 0), (2, 12)]
    ]
    for r in runs[1:]:
        assert [c for c, _ in r] == [c for c, _ in runs[0]]
        for (_, a), (_, b) in zip(r, runs[0], strict=True):
            assert a == pytest.approx(b, abs=1e-4)


def test_memory_segments_mark_the_memory_and_start_neutral(tok, tmp_path):
    """The segment embedding: 0 for ``<s> source </s>``, 1 for the memory after it; added
    zero-initialised to a model without it, the model computes exactly what it did; trained
    weights change the output, survive save/load, and beam search runs through it."""
    size = ModelSize(32, 1, 1, 2, 64, 0.0, 0.0, pre_ln=True, copy=True)
    g = Generator.from_scratch(tok, GeneratorSpec(arch="joint"), size, seed=0)
    g.model.eval()
    b = g.batch(["Save the file", "Open"], ["Datei speichern", ""], ["Datei speichern", "Öffnen"])
    ids = b["input_ids"]
    seg = g.model.segment_ids(ids)
    eos = tok.eos_token_id
    for row, srow in zip(ids.tolist(), seg.tolist(), strict=True):
        first = row.index(eos)
        assert srow[: first + 1] == [0] * (first + 1) and set(srow[first + 1 :]) <= {1}
    assert seg[0].sum() > 1  # the memory "Datei speichern" and its </s>
    before = g.model(**b).logits
    g.model.enable_memory_segments()
    assert g.model.config.memory_segments and not g.model.segment_embed.weight.any()
    assert torch.allclose(g.model(**b).logits, before, atol=1e-5)
    with torch.no_grad():
        g.model.segment_embed.weight.normal_()
    after = g.model(**b).logits
    assert not torch.allclose(after, before, atol=1e-3)
    g.save(tmp_path / "seg")
    back = Generator.load(tmp_path / "seg")
    assert back.model.segment_embed is not None
    assert torch.allclose(back.model(**b).logits, after, atol=1e-5)
    assert len(back.generate(["Save the file"], ["Datei speichern"], num_beams=2)) == 1
    wrong = replace_size(size, copy=False, memory_segments=True)
    with pytest.raises(Exception, match="segment embedding"):
        Generator.from_scratch(tok, GeneratorSpec(arch="joint"), wrong)


def replace_size(size, **changes):
    from dataclasses import replace

    return replace(size, **changes)


def test_model_size_is_built_from_generator_settings():
    """ModelSize holds no second set of numbers: its defaults and from_settings are
    GeneratorSettings' (only the copy head and the segment embedding are resolved for the
    arch)."""
    from dataclasses import asdict, replace

    from relift.selfmem.generator.settings import GeneratorSettings

    st = GeneratorSettings()
    for name, value in asdict(ModelSize()).items():
        if name not in ("copy", "memory_segments"):
            assert value == getattr(st, name), name
    assert ModelSize.from_settings(st, "joint") == replace(ModelSize(), copy=st.copy)
    assert ModelSize.from_settings(st, "dual").copy is False
    seg = replace(st, memory_segments=True)
    assert ModelSize.from_settings(seg, "joint").memory_segments is True
    assert ModelSize.from_settings(seg, "vanilla").memory_segments is False
    mine = replace(st, d_model=64, encoder_layers=5, attention_dropout=0.2, copy=False)
    size = ModelSize.from_settings(mine, "vanilla")
    assert (size.d_model, size.encoder_layers, size.attention_dropout, size.copy) == (
        64,
        5,
        0.2,
        False,
    )
