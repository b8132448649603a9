"""Unigram / bigram floors (relift.regpt.floors): hand computations and normalisation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from relift.regpt import floors as F

V = 6
# two chunks: [<s>=1] 3 4 3 and [<s>=1] 3 5
TRAIN = [np.array([3, 4, 3]), np.array([3, 5])]


def test_streams_put_bos_in_front_of_every_chunk():
    ctx, tgt = F.streams(TRAIN)
    assert ctx.tolist() == [1, 3, 4, 1, 3]
    assert tgt.tolist() == [3, 4, 3, 3, 5]


def test_unigram_add_k_by_hand():
    c = F.NGramCounts.fit(TRAIN, V)
    # targets: 3 x3, 4 x1, 5 x1 -> N = 5
    lp = c.unigram_logprob(np.array([3, 0]), k=0.5)
    assert lp[0] == pytest.approx(math.log((3 + 0.5) / (5 + 0.5 * V)))
    assert lp[1] == pytest.approx(math.log(0.5 / (5 + 0.5 * V)))
    assert np.exp(c.unigram_logprob(np.arange(V), 0.5)).sum() == pytest.approx(1.0)


def test_kneser_ney_bigram_by_hand():
    c = F.NGramCounts.fit(TRAIN, V)
    # bigrams: (1,3) x2, (3,4) x1, (4,3) x1, (3,5) x1 -> n1 = 3, n2 = 1, D = 3 / 5
    assert c.discount == pytest.approx(3 / 5)
    d, k = 3 / 5, 0.1
    # continuation: 3 follows {1, 4} -> 2, 4 follows {3} -> 1, 5 follows {3} -> 1; total 4
    cont = {b: ([0, 0, 0, 2, 1, 1][b] + k) / (4 + k * V) for b in range(V)}
    # context 3: c(3) = 2 (3->4, 3->5), two followers
    want = (1 - d) / 2 + d * 2 / 2 * cont[4]
    got = c.bigram_logprob(np.array([3]), np.array([4]), k)[0]
    assert got == pytest.approx(math.log(want))
    # unseen pair in a seen context: only the back-off mass
    got = c.bigram_logprob(np.array([3]), np.array([3]), k)[0]
    assert got == pytest.approx(math.log(d * 2 / 2 * cont[3]))
    # a context never seen: the continuation distribution
    got = c.bigram_logprob(np.array([5]), np.array([4]), k)[0]
    assert got == pytest.approx(math.log(cont[4]))


@pytest.mark.parametrize("k", [0.01, 1.0])
def test_bigram_distribution_sums_to_one_for_every_context(k):
    rng = np.random.default_rng(0)
    train = [rng.integers(3, 40, size=rng.integers(1, 30)) for _ in range(50)]
    c = F.NGramCounts.fit(train, 40)
    b = np.arange(40)
    for a in range(40):
        p = np.exp(c.bigram_logprob(np.full(40, a), b, k))
        assert p.sum() == pytest.approx(1.0, abs=1e-9)


def test_bits_per_byte_and_k_picked_on_dev():
    c = F.NGramCounts.fit(TRAIN, V)
    test = [np.array([3, 5])]
    want = -(c.unigram_logprob(np.array([3, 5]), 1.0).sum()) / math.log(2) / 7
    assert F.bits_per_byte_of(c, test, 7, 1, 1.0) == pytest.approx(want)
    k = F.best_k(c, test, 7, 2)
    assert k in F.K_GRID
    assert F.bits_per_byte_of(c, test, 7, 2, k) == min(
        F.bits_per_byte_of(c, test, 7, 2, kk) for kk in F.K_GRID
    )


def test_floors_with_a_real_tokenizer():
    from relift.regpt.tokenizer import load_base_tokenizer

    tok = load_base_tokenizer("mistral-common")
    train = ["the cat sat on the mat", "the dog sat on the log"] * 20
    dev = ["the cat sat on the log"]
    test = ["the dog sat on the mat"]
    out = F.floors(tok, train, dev, test)
    assert out["vocab_size"] == len(tok)
    # a bigram model of this repetitive text is far better than its unigram model
    assert 0 < out["bigram_bits_per_byte"] < out["unigram_bits_per_byte"]
