"""Full-table evaluation on a model whose answer is known by construction.

The phrase embeddings are the identity (phrase i = unit vector i), every decoder layer's output
projections are zero (the residual stream passes the input through), and ``proj_out`` maps the
unit vector of phrase i onto the unit vector of ``succ(i)``: the model scores ``succ(i)`` with a
margin ``m`` and every other phrase with 0. So the full-table top-1 after phrase i must be
``succ(i)``, and the exact log-likelihood is known in closed form. A bug in the streaming
log-sum-exp (a chunk skipped or counted twice, an off-by-one gold index, a rank against the wrong
chunk), in the target shift or in the windowing fails these tests.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from relift.regpt import data as D
from relift.regpt.decoding import generate
from relift.regpt.model import ReGPT, llama_config
from relift.regpt.scoring import eval_regpt, streaming_logsumexp

V = 29  # phrases (a prime: the chunked table never divides evenly)
H = 32  # hidden size (>= V; RoPE wants an even head size)
MARGIN = 6.0


def succ(i: int) -> int:
    return (7 * i + 3) % V


def known_model(phrase_bias: bool = False) -> ReGPT:
    cfg = llama_config(
        hidden=H, layers=2, heads=1, intermediate=8, max_positions=64, rms_norm_eps=1e-12
    )
    model = ReGPT(cfg, torch.eye(V), phrase_bias=phrase_bias)
    with torch.no_grad():
        for layer in model.decoder.layers:  # every block adds zero to the residual stream
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.proj_in.weight.copy_(torch.eye(H, V))
        model.proj_in.bias.zero_()
        # after the final RMSNorm the state of phrase i is sqrt(H) * unit vector i
        perm = torch.zeros(V, H)
        for i in range(V):
            perm[succ(i), i] = MARGIN / math.sqrt(H)
        model.proj_out.weight.copy_(perm)
        model.proj_out.bias.zero_()
    return model.eval()


def chain(start: int, n: int) -> list[int]:
    out = [start]
    while len(out) < n:
        out.append(succ(out[-1]))
    return out


def test_full_table_top1_is_the_known_next_phrase():
    model = known_model()
    # two texts (streams of succ-chains) cut into windows; EOS (2) targets are dropped
    streams = [np.array(chain(succ(1), 40)[:-1]), np.array(chain(succ(1), 9)[:-1])]
    wins = D.windows(streams, 8)  # several windows: the cut carries the previous phrase
    for w in wins:  # every target is succ(input)
        assert all(succ(int(a)) == int(b) for a, b in zip(w[:-1], w[1:]))
    tot = eval_regpt(model, wins, batch_size=3, table_chunk=4)
    n = sum(int((w[1:] != D.EOS).sum()) for w in wins)
    assert tot["tokens"] == n and n > 0
    assert tot["hit1"] == n  # the top-1 of the FULL table is the known next phrase every time
    want = math.log(math.exp(MARGIN) + V - 1) - MARGIN
    assert tot["nll"] == pytest.approx(n * want, rel=1e-5)

    # each position, directly: the top-1 over all V phrases
    x = torch.tensor([chain(5, 12)])
    top1 = model.score_all(model(x)).argmax(-1)[0].tolist()
    assert top1 == [succ(i) for i in x[0].tolist()]


def test_wrong_next_phrases_are_ranked_exactly():
    model = known_model()
    rng = np.random.default_rng(0)
    ids = rng.integers(3, V, size=(1, 30))
    q = model(torch.from_numpy(ids[:, :-1]))[0]
    gold = torch.from_numpy(ids[0, 1:])
    nll, rank = streaming_logsumexp(q, model.phrase_table, gold, table_chunk=4)
    right = torch.tensor([succ(int(a)) == int(b) for a, b in zip(ids[0, :-1], ids[0, 1:])])
    # the gold phrase is top-1 exactly where it is succ(previous); else exactly one beats it
    assert rank.tolist() == [0 if r else 1 for r in right.tolist()]
    z = math.log(math.exp(MARGIN) + V - 1)
    want = torch.where(right, torch.tensor(z - MARGIN), torch.tensor(z))
    assert torch.allclose(nll, want.float(), atol=1e-4)


def test_phrase_bias_moves_the_top1_and_the_evaluation_follows():
    model = known_model(phrase_bias=True)
    with torch.no_grad():
        model.phrase_bias[11] = 2 * MARGIN  # phrase 11 now beats succ(i) everywhere
    assert model.phrase_table.shape == (V, V + 1)
    x = torch.tensor([chain(5, 10)])
    assert set(model.score_all(model(x)).argmax(-1)[0].tolist()) == {11}
    wins = D.windows([np.array(chain(succ(1), 20))], 8)
    tot = eval_regpt(model, wins, batch_size=2, table_chunk=5)
    assert tot["hit1"] == sum(int((w[1:] == 11).sum()) for w in wins)
    # greedy generation follows the same scores
    out, _ = generate(model, [[1, 5]], max_new=3, banned=())
    assert out[0] == [11, 11, 11]
