"""The pieces of the ReGPT recipe and its measurements: logQ-corrected and full-table losses, the
phrase bias (scores, save/load), generation metrics, phrase texts with their leading space, and
the equal-compute reading of learning curves."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch

from relift.regpt import losses as LS
from relift.regpt.decoding import distinct_n, generate, repetition_rate
from relift.regpt.model import ReGPT
from relift.regpt.report import at_budget, equal_compute, learning_curves


def test_logq_correction_by_hand():
    q = torch.tensor([[1.0, 0.0], [0.5, -1.0]])
    table = torch.tensor([[1.0, 2.0], [0.0, 1.0], [-1.0, 0.5], [2.0, 0.0]])
    cand = torch.tensor([1, 2, 3])
    gold = torch.tensor([2, 0])
    log_q = torch.log(torch.tensor([0.1, 0.2, 0.3, 0.4]))
    scores = (q @ table[cand].T) / 0.5 - log_q[cand][None, :]
    want = torch.nn.functional.cross_entropy(scores, gold)
    got = LS.inbatch_loss(q, table, cand, gold, 0.5, log_q=log_q)
    assert got.item() == pytest.approx(want.item(), abs=1e-6)
    # without log_q: the original loss
    assert LS.inbatch_loss(q, table, cand, gold, 0.5).item() != pytest.approx(got.item())


def test_full_table_loss_is_the_full_softmax():
    torch.manual_seed(0)
    table, q = torch.randn(11, 4), torch.randn(5, 4)
    gold = torch.tensor([0, 3, 10, 7, 7])
    want = -torch.log_softmax(q @ table.T, -1)[torch.arange(5), gold].mean()
    assert LS.full_loss(q, table, gold).item() == pytest.approx(want.item(), abs=1e-6)


def test_phrase_bias_scores_and_roundtrip(world, tmp_path):
    torch.manual_seed(0)
    m = ReGPT.build(
        world["emb"], hidden=32, layers=2, heads=2, intermediate=64, phrase_bias=True
    ).eval()
    with torch.no_grad():
        m.phrase_bias.copy_(torch.linspace(-1, 1, m.num_phrases))
    ids = torch.tensor([[1, 5, 9, 4]])
    with torch.no_grad():
        q = m(ids)
        # q = [W h + b_out, 1]: the score is q·e + bias
        direct = q[..., :-1] @ m.phrase_emb.T + m.phrase_bias
        assert torch.allclose(m.score_all(q), direct, atol=1e-5)
        assert torch.allclose(m.score_all(q), q @ m.phrase_table.T, atol=1e-5)
    m.save_pretrained(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["phrase_bias"] is True
    back = ReGPT.from_pretrained(tmp_path / "m")
    assert torch.equal(back.phrase_bias, m.phrase_bias)
    with torch.no_grad():
        assert torch.allclose(back.score_all(back(ids)), m.score_all(q), atol=1e-6)
    # a loss step reaches the bias through the candidates' scores
    m.train()
    loss_fn = LS.ReGPTLoss(
        "inbatch",
        np.load(world["neg_ids"]),
        np.load(world["neg_scores"]),
        m.num_phrases,
        log_q=torch.zeros(m.num_phrases),
    )
    batch = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "labels": torch.tensor([[5, 9, 4, 7]]),
    }
    loss, _ = loss_fn(m, batch, 0)
    loss.backward()
    assert m.phrase_bias.grad is not None and m.phrase_bias.grad[[5, 9, 4, 7]].abs().sum() > 0


def test_distinct_and_repetition_by_hand():
    texts = ["a b a b a b", "c d e"]
    # 2-grams: (a b)(b a)(a b)(b a)(a b) + (c d)(d e): 4 distinct of 7
    assert distinct_n(texts, 2) == pytest.approx(4 / 7)
    assert distinct_n(texts, 3) == pytest.approx(3 / 5)
    # 4-grams of text 1: (a b a b)(b a b a)(a b a b): 1 of 3 repeats; text 2 has none
    assert repetition_rate(texts, 4) == pytest.approx(1 / 3)
    assert distinct_n([], 2) == 0.0 and repetition_rate(["x"], 4) == 0.0


def test_generation_stops_at_max_bytes(world):
    torch.manual_seed(1)
    m = ReGPT.build(world["emb"], hidden=32, layers=2, heads=2, intermediate=64).eval()
    id_bytes = [3] * m.num_phrases
    out, stop = generate(m, [[1, 5], [1, 7, 8]], max_new=50, max_bytes=10, id_bytes=id_bytes)
    assert [len(x) for x in out] == [4, 4] and stop == ["max_bytes", "max_bytes"]


def joined_phrases(phrases: list[str]) -> str:
    """The text of a phrase sequence: phrases concatenated, byte phrases (``<0xE2>``, the
    non-ASCII bytes of the byte fallback) turned back into bytes."""
    raw = b"".join(
        bytes([int(p[3:5], 16)]) if re.fullmatch(r"<0x[0-9A-F]{2}>", p) else p.encode()
        for p in phrases
    )
    return raw.decode("utf-8", errors="replace")


def test_samples_keep_each_phrase_leading_space(world, tmp_path):
    """samples.jsonl: `phrases` are the texts of `phrase_ids` in phrases.npy (as the phrases
    step writes it), leading spaces included, and joined they give the `continuation`."""
    from transformers import AutoTokenizer

    from relift.regpt import generate as G
    from relift.regpt import phrases as P

    torch.manual_seed(0)
    m = ReGPT.build(world["emb"], hidden=32, layers=2, heads=2, intermediate=64)
    m.save_pretrained(tmp_path / "m", AutoTokenizer.from_pretrained(str(world["tokenizer"])))
    P.main(["--tokenizer", str(world["tokenizer"]), "--output", str(tmp_path / "phrases.npy")])
    table = P.load_phrases(tmp_path / "phrases.npy")
    out = tmp_path / "s.jsonl"
    prompts = ["We the people", "The economy", "Tonight I", "Our nation", "In the year"]
    G.main(
        ["--model", str(tmp_path / "m"), "--max-new", "24", "--output", str(out)]
        + [a for p in prompts for a in ("--prompt", p)]
    )
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(recs) == len(prompts)
    spaced = 0
    for rec in recs:
        assert rec["phrases"] == [str(table[i]) for i in rec["phrase_ids"]]
        assert joined_phrases(rec["phrases"]) == rec["continuation"]
        spaced += sum(p.startswith(" ") for p in rec["phrases"])
    # the check has teeth: the samples hold a phrase that starts with a space
    assert spaced >= 1


def test_equal_compute_reads_both_curves_at_the_budget(tmp_path):
    def run(name, evals, info):
        d = tmp_path / name
        d.mkdir()
        (d / "train_info.json").write_text(json.dumps({"bytes_per_target": 2.0, **info}))
        (d / "metrics.jsonl").write_text(
            "".join(
                json.dumps({"kind": "eval", "step": s, "tokens": t, "train_seconds": sec}).replace(
                    "}", f', "dev_bits_per_byte": {b}}}'
                )
                + "\n"
                for s, t, sec, b in evals
            )
        )
        return d

    runs = {
        "stage1": run("s1", [(10, 100, 50.0, 3.0), (20, 200, 100.0, 2.5)], {}),
        "stage2": run("s2", [(5, 50, 30.0, 2.4)], {"init_seconds": 100.0, "init_bytes": 400}),
        "baseline": run("b", [(10, 300, 70.0, 2.9), (20, 600, 140.0, 2.6)], {"start_eval": {}}),
    }
    curves = learning_curves(runs)
    # stage 2 continues stage 1's axes: seconds 100 + 30, bytes 400 + 50 * 2
    assert curves["ReGPT stage 2"][-1][:3] == (130.0, 500.0, 2.4)
    assert at_budget(curves["token LM"], 100) == (70.0, 600.0, 2.9, 10)
    rows = equal_compute(curves, [60, 135, 1000])
    assert rows[0]["regpt_dev_bits_per_byte"] == 3.0 and rows[0]["token_lm_seconds"] == ""
    assert rows[1]["regpt_dev_bits_per_byte"] == 2.4
    assert rows[1]["token_lm_dev_bits_per_byte"] == 2.9
    assert rows[2]["regpt_minus_token_lm"] == pytest.approx(2.4 - 2.6)
    assert math.isclose(rows[2]["token_lm_train_bytes"], 1200)


def test_loading_a_checkpoint_logs_no_model_type_warning(world, tmp_path):
    """Reading a ReGPT folder (its tokenizer through config.json, then generation) does not log
    "You are using a model of type `relift-regpt` to instantiate a model of type ``"."""
    import logging

    from transformers import AutoConfig, AutoTokenizer

    from relift.regpt import generate as G
    from relift.regpt.model import MODEL_TYPE, load_tokenizer

    torch.manual_seed(0)
    m = ReGPT.build(world["emb"], hidden=32, layers=2, heads=2, intermediate=64)
    m.save_pretrained(tmp_path / "m", AutoTokenizer.from_pretrained(str(world["tokenizer"])))
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    hf = logging.getLogger("transformers")
    hf.addHandler(handler)
    try:
        tok = load_tokenizer(tmp_path / "m")
        G.main(
            ["--model", str(tmp_path / "m"), "--prompt", "We the people", "--max-new", "4"]
            + ["--output", str(tmp_path / "s.jsonl")]
        )
    finally:
        hf.removeHandler(handler)
    messages = [r.getMessage() for r in records]
    assert not [x for x in messages if "model of type" in x], messages
    assert AutoConfig.from_pretrained(str(tmp_path / "m")).model_type == MODEL_TYPE
    assert (
        tok("We the people")["input_ids"]
        == AutoTokenizer.from_pretrained(str(world["tokenizer"]))("We the people")["input_ids"]
    )
