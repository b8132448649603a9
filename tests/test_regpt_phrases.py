"""Unit tests of the ReGPT phrase-table chain on real text (sotu) and the real MiniLM encoder."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from relift.data import sotu
from relift.io import InputError
from relift.regpt import negatives as neg
from relift.regpt import preprocess as pre
from relift.regpt.phrases import phrase_table, token_text
from relift.regpt.tokenizer import load_base_tokenizer, train_phrase_tokenizer


def run_module(module, *args):
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True
    )


@pytest.fixture(scope="module")
def speeches():
    return dict(sotu.speech_files())


@pytest.fixture(scope="module")
def texts(speeches):
    ids = list(speeches)[-3:]
    return [p["text"] for sid in ids for p in sotu.paragraphs(sid, speeches[sid])]


@pytest.fixture(scope="module")
def tokenizers(texts):
    return {
        mode: train_phrase_tokenizer(
            load_base_tokenizer("mistral-common"), iter([texts]), 1500, mode
        )
        for mode in ("none", "metaspace")
    }


# ------------------------------------------------------------------ data: sotu
def test_sotu_split_by_speech_without_overlap(speeches):
    ids = list(speeches)
    assert len(ids) == 249 and ids == sorted(ids)
    split = sotu.split_speeches(ids, dev=4, test=4)
    assert split["test"] == ids[-4:] and split["dev"] == ids[-8:-4]
    assert set(split["train"]).isdisjoint(split["dev"] + split["test"])
    assert len(split["train"]) == 241
    assert sotu.split_speeches(ids, 1, 1, train=5)["train"] == ids[-7:-2]
    with pytest.raises(InputError):
        sotu.split_speeches(ids[:3], dev=2, test=1)


# ------------------------------------------------------------------ preprocessing
def test_clean_and_sentences():
    assert (
        pre.clean(
            "the 1 @,@ 000 @-@ strong army @.@ 5 [Laughter] men", wikitext=True, drop_bracketed=True
        )
        == "the 1,000-strong army.5 men"
    )
    # both cleanups are off unless asked for: only whitespace runs become one space
    raw = "keep [0, 1]\tand  1 @,@ 000\n"
    assert pre.clean(raw) == "keep [0, 1] and 1 @,@ 000"
    assert pre.sentences('He said "Yes." Then he left! Why? Fine') == [
        'He said "Yes."',
        "Then he left!",
        "Why?",
        "Fine",
    ]


def test_chunks_are_whole_sentences_up_to_max_words():
    text = "One two three. Four five six seven. Eight nine. " + " ".join(["w"] * 12) + ". End."
    chunks = list(pre.chunk(text, 6))
    assert all(len(c.split()) <= 6 for c in chunks)
    assert chunks[:2] == ["One two three.", "Four five six seven. Eight nine."]
    assert chunks[-1] == "End."
    assert " ".join(chunks).split() == text.split()  # nothing lost, order kept


def test_build_rows_sorted_with_length(texts):
    rows = pre.build_rows([{"id": str(i), "text": t} for i, t in enumerate(texts)], 32)
    assert rows["text_length"] == sorted(rows["text_length"])
    assert all(0 < n <= 32 for n in rows["text_length"])
    assert all(len(t.split()) == n for t, n in zip(rows["text"], rows["text_length"]))


@pytest.mark.parametrize(
    "fmt,content",
    [
        ("text", "A b c. D e f.\n\nG h.\n"),
        ("tsv", "A b c. D e f.\t1\nG h.\t2\n"),
        ("jsonl", '{"text": "A b c. D e f."}\n{"text": "G h."}\n'),
    ],
)
def test_preprocess_cli_formats(tmp_path, fmt, content):
    import datasets

    src = tmp_path / f"in.{fmt}"
    src.write_text(content)
    r = run_module(
        "relift.regpt.preprocess",
        "--input",
        src,
        "--format",
        fmt,
        "--max-words",
        3,
        "--output",
        tmp_path / "ds",
    )
    assert r.returncode == 0, r.stderr
    ds = datasets.load_from_disk(str(tmp_path / "ds"))
    assert sorted(ds["text"]) == ["A b c.", "D e f.", "G h."]
    assert ds["text_length"] == [2, 3, 3]


@pytest.mark.parametrize(
    "content,fmt,msg",
    [
        ("\n \n", "text", "corpus is empty"),
        ("one\ttwo\tthree\n", "tsv", "line 1: expected 2"),
        ('{"text": 1}\n', "jsonl", "field 'text'"),
    ],
)
def test_preprocess_cli_bad_input(tmp_path, content, fmt, msg):
    src = tmp_path / "in.x"
    src.write_text(content)
    r = run_module(
        "relift.regpt.preprocess", "--input", src, "--format", fmt, "--output", tmp_path / "ds"
    )
    assert r.returncode == 2 and msg in r.stderr and str(src) in r.stderr
    assert r.stderr.count("\n") == 1  # one clear line, no traceback
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.x"]


# ------------------------------------------------------------------ tokenizer and phrases
def test_tokenizer_faithful_phrases_cross_words(tokenizers, tmp_path):
    from transformers import AutoTokenizer

    tok = tokenizers["none"]
    assert tok.convert_ids_to_tokens([0, 1, 2]) == ["<unk>", "<s>", "</s>"]
    vocab = tok.convert_ids_to_tokens(list(range(len(tok))))
    multi = [t for t in vocab if "▁" in t.strip("▁")]
    assert len(multi) > 100  # e.g. '▁of▁the▁'
    tok.save_pretrained(str(tmp_path / "tok"))
    again = AutoTokenizer.from_pretrained(str(tmp_path / "tok"))
    text = "The State of the Union is strong."
    assert again(text)["input_ids"] == tok(text)["input_ids"]


def test_tokenizer_metaspace_is_word_aligned(tokenizers):
    tok = tokenizers["metaspace"]
    vocab = tok.convert_ids_to_tokens(list(range(3, len(tok))))
    assert not [t for t in vocab if "▁" in t[1:]]


def test_vocab_smaller_than_specials():
    with pytest.raises(InputError, match="special"):
        train_phrase_tokenizer(load_base_tokenizer("mistral-common"), iter([["a b"]]), 3)


def test_phrases_round_trip_with_tokenizer(tokenizers, texts):
    for tok in tokenizers.values():
        phrases = phrase_table(tok)
        assert len(phrases) == len(tok) and phrases.dtype.kind == "U"
        assert phrases[1] == "<s>"
        for text in texts[:50]:
            ids = tok(text, add_special_tokens=False)["input_ids"]
            if 0 not in ids:  # <unk>: a character the small vocabulary never saw
                assert "".join(phrases[ids]) == " " + text
    assert token_text("<0x41>") == "A" and token_text("▁of▁the▁") == " of the "


# ------------------------------------------------------------------ embeddings
def test_encode_matches_plain_mean_pooling_and_dedup():
    import torch

    from relift.encoders import encode, load_encoder, normalize

    tok, model = load_encoder("minilm", torch.device("cpu"))
    texts = [" the", "The", " united states", "of the people", "x"]
    emb = encode(texts, tok, model, batch_size=2)
    assert emb.shape == (5, 384) and emb.dtype == np.float32
    np.testing.assert_array_equal(emb[0], emb[1])  # same encoder input, computed once
    with torch.no_grad():
        for i, t in enumerate(texts):
            enc = tok([t], return_tensors="pt")
            ref = model(**enc).last_hidden_state.mean(1)[0].numpy()
            np.testing.assert_allclose(emb[i], ref, rtol=1e-4, atol=1e-5)
    norms = np.linalg.norm(normalize(emb), axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-6)


@pytest.mark.slow  # > 5 s: make test runs it, make test-fast does not
def test_embed_cli_and_bad_encoder(tmp_path):
    np.save(tmp_path / "phrases.npy", np.array(["<unk>", " the", " of the", " army"]))
    r = run_module(
        "relift.regpt.embed",
        "--phrases",
        tmp_path / "phrases.npy",
        "--dtype",
        "fp32",
        "--output",
        tmp_path / "e.npy",
        "--output-normalized",
        tmp_path / "n.npy",
    )
    assert r.returncode == 0, r.stderr
    raw, normed = np.load(tmp_path / "e.npy"), np.load(tmp_path / "n.npy")
    assert raw.shape == (4, 384) and raw.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(normed, axis=1), 1, atol=1e-6)
    np.testing.assert_allclose(normed, raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-6)
    r = run_module(
        "relift.regpt.embed",
        "--phrases",
        tmp_path / "phrases.npy",
        "--encoder",
        tmp_path / "no/such/encoder",
        "--output",
        tmp_path / "e2.npy",
        "--output-normalized",
        tmp_path / "n2.npy",
    )
    assert r.returncode == 2 and "encoder path does not exist" in r.stderr
    assert not (tmp_path / "e2.npy").exists() and not (tmp_path / "n2.npy").exists()


# ------------------------------------------------------------------ negatives
def brute_force(x, k):
    sim = x @ x.T
    ids = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    return ids, np.take_along_axis(sim, ids, 1)


@pytest.mark.parametrize("backend", ["numpy", "torch", "faiss"])
def test_negatives_equal_brute_force(backend):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 24)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids, scores = neg.search(x, 17, backend)
    ref_ids, ref_scores = brute_force(x, 17)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)
    assert (ids[:, 0] == np.arange(300)).all()


def test_hnsw_recall():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2000, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids, _ = neg.search(x, 10, "hnsw")
    ref, _ = brute_force(x, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, ref)])
    assert recall > 0.9


def test_self_first_with_duplicates():
    x = np.eye(4, dtype=np.float32)[[0, 1, 1, 2, 3]]  # rows 1 and 2 are the same vector
    ids, scores = neg.search(x, 3, "numpy")
    assert ids[2, 0] == 1  # a tie: the search cannot tell row 2 from row 1
    frac = neg.self_first(x, ids, scores)
    assert frac == 1.0  # ... but the phrase tied with rank 1
    assert (ids[:, 0] == np.arange(5)).all() and list(ids[2][:2]) == [2, 1]
    assert len(set(ids[2])) == 3


@pytest.mark.slow  # > 5 s: make test runs it, make test-fast does not
def test_negatives_cli_tsv_and_sidecar(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((40, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    np.save(tmp_path / "n.npy", x)
    np.save(tmp_path / "p.npy", np.array([f"p{i}" for i in range(40)]))
    out = [tmp_path / "negatives.tsv", tmp_path / "ids.npy", tmp_path / "scores.npy"]
    args = [
        "--embeddings",
        tmp_path / "n.npy",
        "--phrases",
        tmp_path / "p.npy",
        "--output",
        out[0],
        "--output-ids",
        out[1],
        "--output-scores",
        out[2],
    ]
    r = run_module("relift.regpt.negatives", *args, "--depth", 5)
    assert r.returncode == 0, r.stderr
    lines = out[0].read_text().splitlines()
    assert len(lines) == 200 and lines[0].split("\t")[:3] == ["0", "0", "1"]
    assert [ln.split("\t")[2] for ln in lines[:6]] == ["1", "2", "3", "4", "5", "1"]
    ids, scores = neg.read_tsv(out[0])
    np.testing.assert_array_equal(ids, np.load(out[1]))
    np.testing.assert_allclose(scores, np.load(out[2]), atol=1e-6)
    for p in out:
        p.unlink()
    r = run_module("relift.regpt.negatives", *args, "--depth", 41)
    assert r.returncode == 2 and "larger than the phrase table (40 phrases)" in r.stderr
    assert not any(p.exists() for p in out)
    np.save(tmp_path / "p.npy", np.array(["a", "b"]))
    r = run_module("relift.regpt.negatives", *args, "--depth", 5)
    assert r.returncode == 2 and "embeddings have 40 rows but phrases.npy has 2" in r.stderr
