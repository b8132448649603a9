"""ReGPT model, losses, candidate sets, evaluation, generation and the CLIs on a tiny world."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from regpt_tiny import TINY_MODEL, common_args

from relift.regpt import data as D
from relift.regpt import losses as LS
from relift.regpt.decoding import filter_logits, generate
from relift.regpt.model import ReGPT, llama_config, load_phrase_table
from relift.regpt.scoring import (
    bits_per_byte,
    eval_regpt,
    logits_nll,
    streaming_logsumexp,
    summarize,
)


@pytest.fixture(scope="module")
def tok(world):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(world["tokenizer"]))


def tiny_model(world, seed=0):
    torch.manual_seed(seed)
    return ReGPT.build(
        world["emb"], hidden=32, layers=2, heads=2, intermediate=64, max_positions=128
    )


# ------------------------------------------------------------------ loss
def test_info_nce_equals_hand_computation():
    q = torch.tensor([[1.0, 0.0], [0.5, -1.0]])
    table = torch.tensor([[1.0, 2.0], [0.0, 1.0], [-1.0, 0.5], [2.0, 0.0]])
    cand = torch.tensor([1, 2, 3])  # in-batch: both queries against phrases 1, 2, 3
    gold_idx = torch.tensor([2, 0])  # gold phrases 3 and 1
    # hand: scores q0 = [0, -1, 2], q1 = [-1, -1, 1]
    l0 = -(2 - math.log(math.exp(0) + math.exp(-1) + math.exp(2)))
    l1 = -(-1 - math.log(math.exp(-1) + math.exp(-1) + math.exp(1)))
    got = LS.inbatch_loss(q, table, cand, gold_idx)
    assert got.item() == pytest.approx((l0 + l1) / 2, abs=1e-6)
    # temperature 0.5 doubles every score
    l0t = -(4 - math.log(math.exp(0) + math.exp(-2) + math.exp(4)))
    l1t = -(-2 - math.log(math.exp(-2) + math.exp(-2) + math.exp(2)))
    assert LS.inbatch_loss(q, table, cand, gold_idx, 0.5).item() == pytest.approx(
        (l0t + l1t) / 2, abs=1e-6
    )
    # hard: per-row candidates, gold first
    hc = torch.tensor([[3, 0], [1, 2]])
    h0 = -(2 - math.log(math.exp(2) + math.exp(1)))
    h1 = -(-1 - math.log(math.exp(-1) + math.exp(-0.5 - 0.5)))
    assert LS.hard_loss(q, table, hc).item() == pytest.approx((h0 + h1) / 2, abs=1e-6)


def test_target_mask_drops_pad_and_eos():
    labels = torch.tensor([[5, 2, -100], [7, 8, 2]])
    assert LS.target_mask(labels, (2,)).tolist() == [[True, False, False], [True, True, False]]


# ------------------------------------------------------------------ candidate sets
V, DEPTH = 20, 6
POOL = np.array(
    [[i, (i + 1) % V, (i + 2) % V, (i + 3) % V, i, (i + 5) % V] for i in range(V)], dtype=np.int32
)  # column 4 holds the phrase itself again (must be replaced)
SCORES = np.tile(np.array([1.0, 0.95, 0.8, 0.7, 0.5, 0.4], dtype=np.float32), (V, 1))


def expected_hard(gold, d, thr, seed):
    """Re-derive the draw with an identically seeded generator."""
    g = torch.Generator().manual_seed(seed)
    cols = 1 + torch.randperm(DEPTH - 1, generator=g)[:d]
    neg = torch.from_numpy(POOL[gold.numpy()][:, cols.numpy()]).long()
    sc = torch.from_numpy(SCORES[gold.numpy()][:, cols.numpy()])
    bad = (sc > thr) | (neg == gold[:, None])
    rnd = torch.randint(0, V - 1, neg.shape, generator=g)
    rnd = rnd + (rnd >= gold[:, None]).long()
    return cols, torch.where(bad, rnd, neg), bad


def test_hard_candidates_exact_with_false_negative_guard():
    gold = torch.tensor([3, 7, 7, 19])
    for seed in range(6):
        cand = LS.hard_candidates(
            gold, POOL, SCORES, 5, 0.9, V, torch.Generator().manual_seed(seed)
        )
        cols, exp_neg, bad = expected_hard(gold, 5, 0.9, seed)
        assert cand.shape == (4, 6)
        assert cand[:, 0].tolist() == gold.tolist()
        assert torch.equal(cand[:, 1:], exp_neg)
        assert sorted(cols.tolist()) == [1, 2, 3, 4, 5]  # d = depth-1: every column, once
        # column 1 (cosine 0.95 > 0.9) and column 4 (the phrase itself) are always replaced
        c = cols.tolist()
        assert bad[:, c.index(1)].all() and bad[:, c.index(4)].all()
        assert not bad[:, c.index(2)].any() and not bad[:, c.index(3)].any()
        assert (cand[:, 1:] != gold[:, None]).all()  # never the gold phrase
        assert ((cand >= 0) & (cand < V)).all()
        # the same pool columns for every position of the batch
        keep = ~bad
        for j in range(5):
            rows = keep[:, j]
            assert torch.equal(
                cand[rows, 1 + j], torch.from_numpy(POOL[gold[rows].numpy(), c[j]]).long()
            )
    # tensors work like memory-mapped arrays
    a = LS.hard_candidates(
        gold,
        torch.from_numpy(POOL),
        torch.from_numpy(SCORES),
        3,
        0.9,
        V,
        torch.Generator().manual_seed(1),
    )
    b = LS.hard_candidates(gold, POOL, SCORES, 3, 0.9, V, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    with pytest.raises(ValueError):
        LS.hard_candidates(gold, POOL, SCORES, 6, 0.9, V, torch.Generator())


def test_inbatch_candidates_exact():
    gold = torch.tensor([4, 9, 4, 0])
    for seed in range(4):
        cand, gidx = LS.inbatch_candidates(
            gold, POOL, SCORES, 2, 0.9, V, torch.Generator().manual_seed(seed)
        )
        _, neg, _ = expected_hard(gold, 2, 0.9, seed)
        want = sorted(set(gold.tolist()) | set(neg.reshape(-1).tolist()))
        assert cand.tolist() == want  # deduplicated, every gold and every negative
        assert torch.equal(cand[gidx], gold)
        assert gidx[0] == gidx[2]


def test_regpt_loss_matches_manual(world):
    model = tiny_model(world)
    pool = np.load(world["neg_ids"])
    scores = np.load(world["neg_scores"])
    batch = D.collate([np.array([1, 5, 9, 12, 2]), np.array([1, 7, 3])])
    for stage in ("inbatch", "hard"):
        fn = LS.ReGPTLoss(stage, pool, scores, model.num_phrases, negatives=3, seed=5)
        loss, stats = fn(model, batch, step=11)
        assert stats["tokens"] == 5  # 4 + 2 targets, the </s> target dropped
        q = model(batch["input_ids"], attention_mask=batch["attention_mask"])
        keep = LS.target_mask(batch["labels"], (2,))
        gold = batch["labels"][keep]
        g = torch.Generator().manual_seed(5 * 1_000_003 + 11)
        if stage == "hard":
            cand = LS.hard_candidates(gold, pool, scores, 3, 0.9, model.num_phrases, g)
            s = torch.einsum("nd,nkd->nk", q[keep], model.phrase_table[cand])
            want = torch.nn.functional.cross_entropy(s, torch.zeros(len(gold), dtype=torch.long))
        else:
            cand, gi = LS.inbatch_candidates(gold, pool, scores, 3, 0.9, model.num_phrases, g)
            s = q[keep] @ model.phrase_table[cand].T
            want = torch.nn.functional.cross_entropy(s, gi)
        assert loss.item() == pytest.approx(want.item(), rel=1e-5)


# ------------------------------------------------------------------ model
def test_model_inputs_and_scores(world):
    model = tiny_model(world)
    E = torch.from_numpy(np.load(world["emb"]))
    assert torch.equal(model.phrase_table, E)
    assert "phrase_table" not in model.state_dict()
    ids = torch.tensor([[1, 4, 8]])
    x = model.embed(ids)
    assert torch.allclose(x, E[ids] @ model.proj_in.weight.T + model.proj_in.bias)
    q = model(ids)
    assert q.shape == (1, 3, E.shape[1])
    assert torch.allclose(model.score_all(q), q @ E.T)
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert n_trainable == model.num_parameters()  # E is a buffer, never a parameter


def test_save_load_same_outputs(world, tmp_path, tok):
    model = tiny_model(world).eval()
    model.save_pretrained(tmp_path / "m", tokenizer=tok)
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["model_type"] == "relift-regpt" and cfg["num_phrases"] == len(tok)
    assert cfg["phrase_dim"] == 16 and cfg["phrase_embeddings"] == str(world["emb"])
    assert cfg["llama"]["num_hidden_layers"] == 2
    from safetensors.torch import load_file

    keys = set(load_file(str(tmp_path / "m" / "model.safetensors")))
    assert "phrase_table" not in keys and {"proj_in.weight", "proj_out.bias"} <= keys
    assert (tmp_path / "m" / "tokenizer.json").exists()
    back = ReGPT.from_pretrained(tmp_path / "m", phrase_embeddings=world["emb"])
    ids = torch.tensor([[1, 5, 6, 7], [1, 9, 2, 3]])
    with torch.no_grad():
        assert torch.equal(model(ids), back(ids))
    # the recorded path is the default; a table of the wrong shape is refused
    assert torch.equal(ReGPT.from_pretrained(tmp_path / "m").phrase_table, model.phrase_table)
    np.save(tmp_path / "bad.npy", np.zeros((5, 16), dtype=np.float32))
    from relift.io import InputError

    with pytest.raises(InputError, match="shape"):
        ReGPT.from_pretrained(tmp_path / "m", phrase_embeddings=tmp_path / "bad.npy")


def test_gradient_checkpointing_same_gradients(world):
    grads = []
    for ckpt in (False, True):
        model = tiny_model(world).train()
        if ckpt:
            model.gradient_checkpointing_enable()
        q = model(torch.tensor([[1, 4, 8, 9]]))
        q.pow(2).sum().backward()
        grads.append(model.proj_in.weight.grad.clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_kv_cached_generation_equals_full_recomputation(world):
    model = tiny_model(world, seed=3)
    prompts = [[1, 5, 9, 14], [1, 7], [1, 20, 21, 22, 23, 24]]  # ragged: left padding
    a, sa = generate(model, prompts, max_new=10, use_cache=True)
    b, sb = generate(model, prompts, max_new=10, use_cache=False)
    assert a == b and sa == sb
    assert all(0 not in x and 1 not in x for x in a)
    # each row equals decoding that prompt alone (padding does not leak)
    for p, row in zip(prompts, a):
        assert generate(model, [p], max_new=10)[0][0] == row
    s1, _ = generate(model, prompts, 8, "sample", top_k=20, top_p=0.9, seed=4, use_cache=True)
    s2, _ = generate(model, prompts, 8, "sample", top_k=20, top_p=0.9, seed=4, use_cache=False)
    assert s1 == s2


def test_generation_stops_at_eos(world):
    model = tiny_model(world)
    with torch.no_grad():  # make </s> the best phrase for every query
        model.proj_out.weight.zero_()
        model.proj_out.bias.copy_(model.phrase_table[2] * 100)
    out, stop = generate(model, [[1, 5], [1, 6, 7]], max_new=5)
    assert out == [[], []] and stop == ["eos", "eos"]


def test_top_k_top_p_filter():
    s = torch.tensor([[3.0, 1.0, 2.0, 0.0]])
    assert torch.isinf(filter_logits(s, top_k=2)).tolist() == [[False, True, False, True]]
    p = s.softmax(-1)[0]  # 0.64, 0.09, 0.24, 0.03
    assert p[0] < 0.7
    kept = ~torch.isinf(filter_logits(s, top_p=0.7))
    assert kept.tolist() == [[True, False, True, False]]


# ------------------------------------------------------------------ evaluation
def test_streaming_logsumexp_equals_brute_force():
    torch.manual_seed(0)
    table = torch.randn(37, 5)
    q = torch.randn(11, 5) * 3
    gold = torch.randint(0, 37, (11,))
    nll, rank = streaming_logsumexp(q, table, gold, table_chunk=4)
    full = torch.log_softmax(q @ table.T, -1)
    assert torch.allclose(nll, -full[torch.arange(11), gold], atol=1e-5)
    nll2, _ = logits_nll(q @ table.T, gold)
    assert torch.allclose(nll2, nll, atol=1e-5)
    # ranks on integer scores (exact in float32): phrases scoring strictly above the gold one
    ti, qi = torch.randint(-3, 4, (37, 5)).float(), torch.randint(-3, 4, (11, 5)).float()
    sc = qi @ ti.T
    _, rank = streaming_logsumexp(qi, ti, gold, table_chunk=4)
    assert rank.tolist() == (sc > sc[torch.arange(11), gold][:, None]).sum(1).tolist()
    assert torch.equal(logits_nll(sc, gold)[1], rank)


def test_eval_regpt_full_softmax_equals_brute_force(world, tok):
    model = tiny_model(world)
    texts = D.load_texts(world["test"])[:4]
    wins = D.windows(D.tokenize(texts, tok), 12)
    tot = eval_regpt(model, wins, batch_size=3, table_chunk=7)
    nll, hit1, hit10, n = 0.0, 0, 0, 0
    with torch.no_grad():
        for w in wins:
            ids = torch.from_numpy(w[None, :-1])
            logp = torch.log_softmax(model(ids)[0] @ model.phrase_table.T, -1)
            for t, y in enumerate(w[1:]):
                nll -= float(logp[t, y])
                r = int((logp[t] > logp[t, y]).sum())
                hit1 += r < 1
                hit10 += r < 10
                n += 1
    assert tot["tokens"] == n == sum(len(x) for x in D.tokenize(texts, tok))
    assert tot["nll"] == pytest.approx(nll, rel=1e-5)
    assert (tot["hit1"], tot["hit10"]) == (hit1, hit10)
    n_bytes = sum(len(t.encode()) for t in texts)
    s = summarize(tot, n_bytes)
    assert s["bits_per_byte"] == pytest.approx(nll / math.log(2) / n_bytes, rel=1e-6)


def test_bits_per_byte_arithmetic():
    assert bits_per_byte(10 * math.log(2), 5) == pytest.approx(2.0)
    s = summarize({"nll": 8 * math.log(2), "hit1": 1, "hit10": 3, "tokens": 4, "unk": 0}, 16)
    assert s["bits_per_byte"] == pytest.approx(0.5) and s["acc@1"] == 0.25 and s["acc@10"] == 0.75
    assert s["nll_per_token"] == pytest.approx(2 * math.log(2)) and s["bytes_per_token"] == 4


def test_windows_cover_every_token_once():
    toks = [np.arange(10, 23), np.arange(30, 33)]
    wins = D.windows(toks, 5)
    assert [len(w) for w in wins] == [6, 6, 4, 4]
    targets = np.concatenate([w[1:] for w in wins])
    assert targets.tolist() == list(range(10, 23)) + list(range(30, 33))
    assert wins[0][0] == D.BOS and wins[1][0] == 14  # a cut window starts with the previous token
    b = D.collate(wins)
    assert b["input_ids"].shape == (4, 5)
    assert (b["labels"] != -100).sum() == 16
    assert b["attention_mask"].sum() == 16


# ------------------------------------------------------------------ the CLIs end to end
def test_clis_end_to_end(world, tmp_path):
    from relift.regpt import baseline, evaluate, report, train
    from relift.regpt import generate as gen

    w, out = world, tmp_path
    args = common_args(w) + [
        "--dev",
        str(w["dev"]),
        "--dev-chunks",
        "3",
        "--max-len",
        "32",
        "--batch-size",
        "4",
        "--threads",
        "1",
        "--no-progress",
        "--log-every",
        "1",
    ]
    train.main(
        [
            "--stage",
            "1",
            "--tokenizer",
            str(w["tokenizer"]),
            *TINY_MODEL,
            *args,
            "--max-steps",
            "3",
            "--work-dir",
            str(out / "s1.ckpt"),
            "--output",
            str(out / "s1"),
        ]
    )
    info1 = json.loads((out / "s1" / "train_info.json").read_text())
    assert info1["steps"] == 3 and info1["total_tokens"] == info1["tokens"] > 0
    assert (out / "s1" / "loss_curve.png").exists() and "dev_acc@1" in info1["last_eval"]
    train.main(
        [
            "--stage",
            "2",
            "--init",
            str(out / "s1"),
            *args,
            "--negatives",
            "4",
            "--max-steps",
            "2",
            "--work-dir",
            str(out / "s2.ckpt"),
            "--output",
            str(out / "s2"),
        ]
    )
    info2 = json.loads((out / "s2" / "train_info.json").read_text())
    assert info2["total_tokens"] == info1["tokens"] + info2["tokens"]
    baseline.main(
        [
            "--steps",
            "0",  # as many training tokens as ReGPT's two stages (config.yaml: a step count)
            "--match-tokens",
            str(out / "s2" / "train_info.json"),
            "--train",
            str(w["train"]),
            "--hidden",
            "32",
            "--layers",
            "2",
            "--heads",
            "2",
            "--intermediate",
            "64",
            "--max-positions",
            "128",
            "--max-len",
            "32",
            "--batch-size",
            "4",
            "--threads",
            "1",
            "--no-progress",
            "--work-dir",
            str(out / "b.ckpt"),
            "--output",
            str(out / "b"),
        ]
    )
    infob = json.loads((out / "b" / "train_info.json").read_text())
    assert infob["target_tokens"] == info2["total_tokens"]
    assert 0 <= infob["tokens"] - info2["total_tokens"] < 4 * 32  # overshoot < one batch
    for name in ("s1", "s2", "b"):
        extra = common_args(w)[:6] if name != "b" else []
        evaluate.main(
            [
                "--model",
                str(out / name),
                "--split",
                str(w["test"]),
                "--max-len",
                "32",
                *extra,
                "--output",
                str(out / f"{name}.json"),
            ]
        )
    ev = {n: json.loads((out / f"{n}.json").read_text()) for n in ("s1", "s2", "b")}
    assert ev["s1"]["bytes"] == ev["b"]["bytes"] and ev["s1"]["chunks"] == ev["b"]["chunks"]
    assert ev["s1"]["kind"] == "regpt" and ev["b"]["kind"] == "baseline"
    assert "inbatch_loss" in ev["s2"] and 0 <= ev["s2"]["acc@1"] <= ev["s2"]["acc@10"] <= 1
    gen.main(
        [
            "--model",
            str(out / "s2"),
            "--from-split",
            str(w["test"]),
            "--num-prompts",
            "3",
            "--prompt",
            "We will",
            "--max-new",
            "4",
            "--output",
            str(out / "g.jsonl"),
        ]
    )
    recs = [json.loads(x) for x in (out / "g.jsonl").read_text().splitlines()]
    assert len(recs) == 4 and all(len(r["phrase_ids"]) <= 4 for r in recs)
    report.main(
        [
            "--eval",
            f"stage1={out / 's1.json'}",
            "--eval",
            f"baseline={out / 'b.json'}",
            "--run",
            f"stage1={out / 's1'}",
            "--run",
            f"baseline={out / 'b'}",
            "--table",
            str(out / "t.csv"),
            "--curves",
            str(out / "c.png"),
        ]
    )
    lines = (out / "t.csv").read_text().splitlines()
    assert lines[0].startswith("model,kind,acc@1") and len(lines) == 3
    assert (out / "c.png").stat().st_size > 1000


@pytest.mark.slow  # > 5 s: make test runs it, make test-fast does not
def test_cli_errors_are_one_line(world, tmp_path):
    import subprocess
    import sys

    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "relift.regpt.train",
            "--stage",
            "2",
            *common_args(world),
            "--work-dir",
            str(tmp_path / "w"),
            "--output",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("relift: error:")
    assert "--init" in r.stderr and not (tmp_path / "o").exists()


def test_load_phrase_table_rejects_bad_input(tmp_path):
    from relift.io import InputError

    np.save(tmp_path / "v.npy", np.zeros(5, dtype=np.float32))
    with pytest.raises(InputError, match="matrix"):
        load_phrase_table(tmp_path / "v.npy")
    with pytest.raises(InputError, match="does not exist"):
        load_phrase_table(tmp_path / "missing.npy")
    with pytest.raises(InputError, match="divisible"):
        llama_config(30, 1, 4, 8, 16)
