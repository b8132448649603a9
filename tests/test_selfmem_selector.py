"""Selfmem memory selector: targets, KL loss, scoring alignment, train/score CLIs (tiny encoder,
offline, seconds)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from helpers import write_jsonl

from relift.io import run_cli
from relift.selfmem.loop.formats import read_scores
from relift.selfmem.loop.oracle import delta_scores
from relift.selfmem.selector import cli as sel
from relift.selfmem.selector import model as selm
from relift.selfmem.selector import training as selt


def test_minmax_normalises_each_pool_and_zeroes_a_constant_pool():
    assert selt.minmax([10.0, 30.0, 20.0]) == [0.0, 1.0, 0.5]
    assert selt.minmax([7.0, 7.0, 7.0]) == [0.0, 0.0, 0.0]
    assert selt.minmax([3.0]) == [0.0]


def test_target_distribution_by_hand():
    # minmax -> [0, 1, .5]; / τ=0.5 -> [0, 2, 1]; softmax
    t = selt.target_distribution([10.0, 30.0, 20.0], 0.5)
    z = math.exp(0) + math.exp(2) + math.exp(1)
    assert t == pytest.approx([1 / z, math.exp(2) / z, math.exp(1) / z])
    # a constant pool: uniform target
    assert selt.target_distribution([4.0, 4.0], 0.5) == pytest.approx([0.5, 0.5])
    with pytest.raises(Exception, match="temperature"):
        selt.target_distribution([1.0, 2.0], 0.0)


def test_kl_loss_against_a_hand_computation():
    scores = torch.tensor([[1.0, 2.0, 0.0], [0.5, -1.0, 9.0]])
    mask = torch.tensor([[True, True, True], [True, True, False]])  # 2nd pool: 2 candidates
    targets = torch.tensor([[0.2, 0.5, 0.3], [0.9, 0.1, 0.0]])

    def kl(t, s):
        lse = math.log(sum(math.exp(x) for x in s))
        return sum(ti * (math.log(ti) - (si - lse)) for ti, si in zip(t, s) if ti > 0)

    expect = (kl([0.2, 0.5, 0.3], [1.0, 2.0, 0.0]) + kl([0.9, 0.1], [0.5, -1.0])) / 2
    got = selt.kl_loss(scores, targets, mask)
    assert float(got) == pytest.approx(expect, rel=1e-6)
    # zero when the model's distribution equals the target; the padded score is ignored
    t = torch.softmax(torch.tensor([[0.3, -0.2, 1.0]]), -1)
    assert float(
        selt.kl_loss(t.log() + 5, t, torch.ones_like(t, dtype=torch.bool))
    ) == pytest.approx(0, abs=1e-6)
    # gradients reach the scores
    s = scores.clone().requires_grad_()
    selt.kl_loss(s, targets, mask).backward()
    assert s.grad[1, 2] == 0 and s.grad.abs().sum() > 0


def test_delta_is_sentence_bleu():
    import sacrebleu

    ref = "Die Datei wurde nicht gefunden ."
    cands = ["Die Datei wurde nicht gefunden .", "Datei nicht gefunden", "Hallo Welt"]
    d = delta_scores(cands, ref, "bleu")
    assert d[0] == pytest.approx(100.0)
    for c, v in zip(cands, d):
        assert v == pytest.approx(sacrebleu.sentence_bleu(c, [ref]).score)
    assert d[0] > d[1] > d[2]


# --------------------------------------------------------------------------- tiny encoder
@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory):
    """A 1-layer BERT with the bundled MiniLM tokenizer, saved as a local folder."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from relift.encoders import resolve_encoder

    folder = tmp_path_factory.mktemp("enc") / "tiny-bert"
    tok = AutoTokenizer.from_pretrained(resolve_encoder("minilm"))
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=128,
    )
    BertModel(cfg).save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return folder


def test_score_pools_writes_each_score_to_its_own_input_and_candidate(tiny_encoder):
    tok, model = selm.build_selector(str(tiny_encoder), "mean")
    model.eval()
    sources = ["open the file", "a much longer source sentence about saving files", "quit"]
    pools = [["Datei öffnen", "öffnen"], ["x", "Datei speichern bitte jetzt", "y z"], ["Ende"]]
    batched = selm.score_pools(model, tok, sources, pools, max_length=64, batch_size=2)
    with torch.no_grad():
        for i, pool in enumerate(pools):
            for j, c in enumerate(pool):
                one = model(**selm.encode_pairs(tok, [sources[i]], [c], 64))
                assert batched[i][j] == pytest.approx(float(one), abs=1e-5)


def test_pick_takes_the_candidate_of_the_right_input():
    # the fork's bug: indexing the candidates of another input
    pools = [[f"wrong {i}", f"right {i}", f"other {i}"][: 2 + i % 2] for i in range(5)]
    scores = [[0.0, 1.0, -1.0][: len(p)] for p in pools]
    assert selm.pick(pools, scores) == [f"right {i}" for i in range(5)]
    # ties keep the beam's order
    assert selm.pick([["a", "b"]], [[0.5, 0.5]]) == ["a"]


def test_train_and_score_cli(tiny_encoder, tmp_path):
    srcs = [f"message number {i} was sent" for i in range(12)]
    refs = [f"Nachricht Nummer {i} wurde gesendet" for i in range(12)]
    data = write_jsonl(tmp_path / "train.jsonl", [{"src": s, "trg": t} for s, t in zip(srcs, refs)])
    cands = write_jsonl(
        tmp_path / "cands.jsonl",
        [
            {"id": i, "candidates": [f"Nummer {i}", refs[i], "ganz anders"], "scores": []}
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
            "--encoder", str(tiny_encoder), "--max-length", "32", "--batch-size", "3",
            "--max-steps", "4", "--eval-every", "2", "--warmup-steps", "0",
            "--lr", "1e-3", "--device", "cpu", "--no-progress",
            "--work-dir", str(tmp_path / "work"), "--output", str(out),
        ],
    )  # fmt: skip
    assert rc == 0
    res = json.loads((out / "train_result.json").read_text())
    assert res["steps"] == 4 and res["train_pools"] == 12
    assert res["dev_oracle"] == pytest.approx(100.0)
    assert res["dev_oracle"] >= res["best_dev_selection"]
    scores = tmp_path / "scores.dev.jsonl"
    rc = run_cli(
        sel.main,
        [
            "score", "--selector", str(out), "--data", f"dev={data}",
            "--candidates", f"dev={cands}", "--output", f"dev={scores}", "--pool-size", "2",
            "--device", "cpu",
        ],
    )  # fmt: skip
    assert rc == 0
    got = read_scores(scores, [["a", "b"]] * 12)
    assert len(got) == 12 and all(len(s) == 2 for s in got)


def test_train_cli_rejects_misaligned_candidates(tiny_encoder, tmp_path, capsys):
    data = write_jsonl(tmp_path / "d.jsonl", [{"src": "a", "trg": "b"}] * 3)
    cands = write_jsonl(
        tmp_path / "c.jsonl",
        [{"id": i, "candidates": ["x", "y"]} for i in (0, 2, 1)],  # out of order
    )
    rc = run_cli(
        sel.main,
        [
            "train", "--train-data", str(data), "--train-candidates", str(cands),
            "--dev-data", str(data), "--dev-candidates", str(cands),
            "--encoder", str(tiny_encoder), "--work-dir", str(tmp_path / "w"),
            "--output", str(tmp_path / "o"),
        ],
    )  # fmt: skip
    assert rc == 2
    err = capsys.readouterr().err
    assert "c.jsonl, line 2, field 'id'" in err and "expected id 1" in err
