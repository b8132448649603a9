"""The from-scratch selector encoder over the task's own tokenizer (selfmem.selector.encoder:
scratch): built from a joint BPE of French and English, loaded and trained by the selector like
any encoder folder (tiny sizes, offline, seconds). Not a quality measurement."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import write_jsonl

from relift.io import InputError, run_cli
from relift.selfmem.loop.formats import read_scores
from relift.selfmem.selector import cli as sel
from relift.selfmem.selector import model as selm
from relift.selfmem.selector import scratch_encoder as se

EN = [f"the file number {i} was not found on the server" for i in range(12)]
FR = [f"le fichier numéro {i} est introuvable sur le serveur, déjà supprimé" for i in range(12)]


@pytest.fixture(scope="module")
def task_tokenizer(tmp_path_factory):
    """The task's generator tokenizer: relift's joint byte-level BPE over both sides."""
    from relift.selfmem.generator.tokenizer import train_bpe

    folder = tmp_path_factory.mktemp("tok") / "tokenizer"
    train_bpe(EN + FR, vocab_size=300, min_frequency=1).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def scratch(task_tokenizer, tmp_path_factory):
    out = tmp_path_factory.mktemp("scratch") / "enc"
    args = ["--tokenizer", str(task_tokenizer), "--hidden", "16", "--layers", "2"]
    args += ["--heads", "2", "--intermediate", "32", "--max-length", "64", "--output", str(out)]
    assert run_cli(se.main, args) == 0
    return out


def test_scratch_encoder_speaks_the_task_tokenizer(scratch, task_tokenizer):
    from transformers import AutoTokenizer

    task_tok = AutoTokenizer.from_pretrained(str(task_tokenizer))
    tok, model = selm.build_selector(str(scratch), "mean", layers=2)
    assert model.encoder.config.vocab_size == len(task_tok) == len(tok)
    assert model.encoder.config.num_hidden_layers == 2
    # the same ids as the generator's tokenizer, accents included (byte-level: never <unk>)
    assert tok(FR[3])["input_ids"] == task_tok(FR[3])["input_ids"]
    assert tok.unk_token_id not in tok(FR[3])["input_ids"]
    # a (source, candidate) pair: <s> source </s> candidate </s>
    enc = selm.encode_pairs(tok, [EN[0]], [FR[0]], 64)
    ids = enc["input_ids"][0].tolist()
    assert ids == task_tok(EN[0], FR[0])["input_ids"]
    assert ids[0] == tok.bos_token_id and ids.count(tok.eos_token_id) == 2
    with torch.no_grad():
        assert model(**enc).shape == (1,)


def test_scratch_encoder_initialisation_follows_the_seed(task_tokenizer):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(task_tokenizer))
    sizes = dict(hidden=16, layers=1, heads=2, intermediate=32, max_positions=32)
    a, b = (se.build_scratch_encoder(tok, **sizes, seed=0) for _ in range(2))
    c = se.build_scratch_encoder(tok, **sizes, seed=1)
    wa, wb, wc = (m.embeddings.word_embeddings.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
    with pytest.raises(InputError, match="not a multiple"):
        se.build_scratch_encoder(tok, hidden=15, layers=1, heads=2, intermediate=8)


def test_selector_trains_and_scores_with_the_scratch_encoder(scratch, tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", [{"en": s, "fr": t} for s, t in zip(EN, FR)])
    cands = write_jsonl(
        tmp_path / "cands.jsonl",
        [
            {"id": i, "candidates": [f"le numéro {i}", FR[i], "tout autre chose"], "scores": []}
            for i in range(12)
        ],
    )
    out = tmp_path / "selector"
    rc = run_cli(
        sel.main,
        [
            "train",
            "--train-data", str(data), "--train-candidates", str(cands),
            "--dev-data", str(data), "--dev-candidates", str(cands),
            "--src-field", "en", "--trg-field", "fr",
            "--encoder", str(scratch), "--layers", "2", "--max-length", "48",
            "--batch-size", "3", "--max-steps", "4", "--eval-every", "2",
            "--warmup-steps", "0", "--lr", "1e-3", "--device", "cpu", "--no-progress",
            "--work-dir", str(tmp_path / "work"), "--output", str(out),
        ],
    )  # fmt: skip
    assert rc == 0
    res = json.loads((out / "train_result.json").read_text())
    assert res["steps"] == 4 and res["train_pools"] == 12
    scores = tmp_path / "scores.dev.jsonl"
    rc = run_cli(
        sel.main,
        [
            "score", "--selector", str(out), "--data", f"dev={data}",
            "--src-field", "en", "--trg-field", "fr",
            "--candidates", f"dev={cands}", "--output", f"dev={scores}", "--pool-size", "3",
            "--device", "cpu",
        ],
    )  # fmt: skip
    assert rc == 0
    got = read_scores(scores, [["a", "b", "c"]] * 12)
    assert len(got) == 12 and all(len(s) == 3 for s in got)
