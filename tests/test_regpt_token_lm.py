"""The token LM's output bias (``regpt.baseline.output_bias``): it starts as the unigram model of
the training tokens, survives save/load, and the evaluation and generation load it."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from relift.regpt import data as D
from relift.regpt.model import llama_config, load_tokenizer
from relift.regpt.token_lm import (
    TOKEN_LM_TYPE,
    BiasedLlamaForCausalLM,
    build_token_lm,
    load_token_lm,
    log_unigram,
)
from relift.regpt.training import causal_lm_loss

TINY = dict(hidden=32, layers=2, heads=2, intermediate=64, max_positions=64)


def tiny_config(vocab_size: int):
    return llama_config(**TINY, vocab_size=vocab_size)


def windows_of(world, split: str = "train"):
    tok = load_tokenizer(world["tokenizer"])
    return tok, D.windows(D.tokenize(D.load_texts(world[split]), tok), 32)


def test_initial_bias_is_the_unigram_model(world):
    tok, wins = windows_of(world)
    V = len(tok)
    prior = log_unigram(wins, V)
    # add-one smoothing by hand
    counts = np.zeros(V)
    for w in wins:
        for t in w[1:]:
            counts[t] += 1
    assert torch.allclose(
        prior.double(), torch.log(torch.tensor((counts + 1) / (counts.sum() + V)))
    )
    assert math.isclose(float(prior.exp().sum()), 1.0, rel_tol=1e-5)

    torch.manual_seed(0)
    model = build_token_lm(tiny_config(V), output_bias=True, log_prior=prior)
    assert isinstance(model, BiasedLlamaForCausalLM)
    assert torch.equal(model.lm_head.bias.detach(), prior)
    batch = D.collate(wins)
    keep = (batch["labels"] != -100) & (batch["labels"] != D.EOS)
    gold = batch["labels"][keep]
    unigram_ce = float(-prior[gold].double().mean())  # the unigram model's cross-entropy
    with torch.no_grad():
        model.lm_head.weight.zero_()  # the rest of the model outputs zeros: logits = the bias
        loss, _ = causal_lm_loss(model.eval(), batch, 0)
    assert loss.item() == pytest.approx(unigram_ce, abs=1e-4)
    # with the head's usual random init the model starts near the unigram model, far below
    # uniform (log V), where the unbiased LM starts
    torch.manual_seed(0)
    fresh = build_token_lm(tiny_config(V), output_bias=True, log_prior=prior).eval()
    torch.manual_seed(0)
    plain = build_token_lm(tiny_config(V), output_bias=False).eval()
    with torch.no_grad():
        biased_loss = causal_lm_loss(fresh, batch, 0)[0].item()
        plain_loss = causal_lm_loss(plain, batch, 0)[0].item()
    assert abs(biased_loss - unigram_ce) < 0.05
    assert plain_loss == pytest.approx(math.log(V), abs=0.05)
    assert biased_loss < math.log(V) - 0.4  # 5.5 against 6.0 nats on this tiny corpus


def test_bias_survives_save_and_load(world, tmp_path):
    V = 50
    torch.manual_seed(0)
    model = build_token_lm(tiny_config(V), True, torch.log_softmax(torch.randn(V), 0)).eval()
    ids = torch.randint(3, V, (2, 9))
    with torch.no_grad():
        want = model(input_ids=ids).logits
    model.save_pretrained(str(tmp_path / "m"))
    assert json.loads((tmp_path / "m" / "config.json").read_text())["model_type"] == TOKEN_LM_TYPE
    back = load_token_lm(tmp_path / "m")
    assert isinstance(back, BiasedLlamaForCausalLM) and not back.training
    assert torch.equal(back.lm_head.bias, model.lm_head.bias)
    with torch.no_grad():
        assert torch.equal(back(input_ids=ids).logits, want)
    # a plain (unbiased) baseline folder still loads, as a LlamaForCausalLM
    from transformers import LlamaForCausalLM

    plain = build_token_lm(tiny_config(V), False).eval()
    plain.save_pretrained(str(tmp_path / "p"))
    back = load_token_lm(tmp_path / "p")
    assert type(back) is LlamaForCausalLM
    with torch.no_grad():
        assert torch.equal(back(input_ids=ids).logits, plain(input_ids=ids).logits)


def save_biased_lm(world, folder, favourite: int):
    """A token LM over the world's tokenizer whose bias makes ``favourite`` win everywhere."""
    from relift.io import save_tokenizer

    tok = load_tokenizer(world["tokenizer"])
    torch.manual_seed(0)
    model = build_token_lm(tiny_config(len(tok)), True, torch.zeros(len(tok))).eval()
    with torch.no_grad():
        model.lm_head.bias[favourite] = 30.0
    model.save_pretrained(str(folder))
    save_tokenizer(tok, folder)
    return model, tok


def test_evaluation_scores_with_the_bias(world, tmp_path):
    from relift.regpt import evaluate as E
    from relift.regpt import scoring as S

    model, tok = save_biased_lm(world, tmp_path / "b", favourite=100)
    E.main(
        ["--model", str(tmp_path / "b"), "--split", str(world["test"]), "--max-len", "32"]
        + ["--output", str(tmp_path / "b.json")]
    )
    got = json.loads((tmp_path / "b.json").read_text())
    texts = S.pick_chunks(D.load_texts(world["test"]), 0)
    wins = D.windows(D.tokenize(texts, tok), 32)
    with torch.no_grad():
        want = S.summarize(S.eval_causal_lm(model, wins), sum(len(t.encode()) for t in texts))
    assert got["kind"] == "baseline"
    assert got["bits_per_byte"] == pytest.approx(want["bits_per_byte"], rel=1e-5)
    assert got["acc@1"] == pytest.approx(want["acc@1"])


def test_generation_decodes_with_the_bias(world, tmp_path):
    from relift.regpt import generate as G
    from relift.regpt.model import ReGPT

    torch.manual_seed(0)
    regpt = ReGPT.build(world["emb"], hidden=32, layers=2, heads=2, intermediate=64)
    regpt.save_pretrained(tmp_path / "r", load_tokenizer(world["tokenizer"]))
    save_biased_lm(world, tmp_path / "b", favourite=100)
    G.main(
        ["--model", str(tmp_path / "r"), "--prompt", "We the people", "--prompt", "Our nation"]
        + ["--max-new", "4", "--baseline", str(tmp_path / "b")]
        + ["--baseline-output", str(tmp_path / "bs.jsonl"), "--output", str(tmp_path / "s.jsonl")]
    )
    recs = [json.loads(x) for x in (tmp_path / "bs.jsonl").read_text().splitlines()]
    assert len(recs) == 2 and all(r["token_ids"] == [100] * 4 for r in recs)


def test_baseline_cli_trains_the_bias_from_the_unigram_start(world, tmp_path):
    from relift.regpt import baseline

    common = ["--base-tokenizer", str(world["tokenizer"]), "--train", str(world["train"])]
    common += ["--dev", str(world["dev"]), "--dev-chunks", "5", "--steps", "1"]
    common += ["--hidden", "32", "--layers", "2", "--heads", "2", "--intermediate", "64"]
    common += ["--max-positions", "64", "--max-len", "32", "--batch-size", "4"]
    common += ["--optimizer", "adamw", "--lr", "1e-3", "--threads", "1", "--no-progress"]
    for name, flag in (("b", "--output-bias"), ("p", "--no-output-bias")):
        baseline.main(
            common
            + [flag, "--work-dir", str(tmp_path / f"{name}.ckpt")]
            + ["--output", str(tmp_path / name)]
        )
    info = {n: json.loads((tmp_path / n / "train_info.json").read_text()) for n in "bp"}
    assert info["b"]["output_bias"] is True and info["p"]["output_bias"] is False
    assert info["b"]["steps"] == info["b"]["args"]["max_steps"] == 1  # what ran, recorded
    start = {n: info[n]["start_eval"]["dev_bits_per_byte"] for n in "bp"}
    assert start["b"] < start["p"] - 0.1  # the unigram start, against uniform (tiny corpus)
    tok, wins = windows_of(world)
    model = load_token_lm(tmp_path / "b")
    assert model.config.model_type == TOKEN_LM_TYPE
    # one AdamW step at lr 1e-3 moves each bias entry by about 1e-3 from log unigram
    assert torch.allclose(model.lm_head.bias, log_unigram(wins, len(tok)), atol=5e-3)
    assert not model.lm_head.bias.detach().equal(log_unigram(wins, len(tok)))  # it learns
