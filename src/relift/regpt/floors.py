"""Count-based floors of a tokenization: unigram and bigram bits per byte of held-out text.

What does "the model learned something" mean for a given tokenization? At least that it beats
the n-gram models of the same units estimated on the same training text. For a tokenizer and a
held-out text this module gives

* the **unigram** floor: add-k smoothing, ``P(b) = (c(b) + k) / (N + k V)``;
* the **bigram** floor: interpolated Kneser–Ney with one absolute discount
  ``D = n1 / (n1 + 2 n2)`` (n1, n2 = bigram types seen once, twice) and an add-k smoothed
  continuation distribution ``P_cont(b) = (N1+(•b) + k) / (N1+(••) + k V)`` (so that a token never
  seen as a continuation keeps some mass)::

      P(b | a) = max(c(a b) - D, 0) / c(a) + D · N1+(a•) / c(a) · P_cont(b)    if c(a) > 0
               = P_cont(b)                                                       otherwise

Both are normalised distributions over the ``V`` ids of the tokenizer. Every chunk of text is the
stream ``[<s>] + ids(text)`` as in ``relift.regpt.data`` and evaluation: the targets are the ids of
the text (``<s>`` is a context, never a target; ``</s>`` is never a target), so the floors are
measured on exactly the tokens the models are scored on, and divided by the same UTF-8 bytes.
``k`` is picked on the dev text from :data:`K_GRID` (the value with the lowest dev bits per byte),
never on the test text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from relift.regpt import data as D

K_GRID = (0.001, 0.01, 0.1, 0.5, 1.0, 2.0, 5.0)
LN2 = math.log(2.0)


def streams(token_lists: Sequence[np.ndarray], bos: int = D.BOS) -> tuple[np.ndarray, np.ndarray]:
    """(contexts, targets) of every target of ``[bos] + ids`` per chunk, as two int64 arrays."""
    ctx, tgt = [], []
    for ids in token_lists:
        s = np.concatenate([[bos], np.asarray(ids, dtype=np.int64)]).astype(np.int64)
        ctx.append(s[:-1])
        tgt.append(s[1:])
    if not ctx:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(ctx), np.concatenate(tgt)


@dataclass
class NGramCounts:
    """Unigram and bigram counts of a training text (ids below ``vocab_size``)."""

    vocab_size: int
    unigram: np.ndarray  # [V] target counts
    pair_keys: np.ndarray  # sorted a * V + b of every seen bigram
    pair_counts: np.ndarray  # counts of pair_keys
    context: np.ndarray  # [V] c(a) = bigrams with context a
    followers: np.ndarray  # [V] N1+(a•) = distinct b after a
    continuation: np.ndarray  # [V] N1+(•b) = distinct a before b
    discount: float

    @classmethod
    def fit(cls, token_lists: Sequence[np.ndarray], vocab_size: int) -> NGramCounts:
        ctx, tgt = streams(token_lists)
        if len(tgt) and (tgt.max() >= vocab_size or ctx.max() >= vocab_size):
            raise ValueError(f"token id {max(tgt.max(), ctx.max())} >= vocab size {vocab_size}")
        v = vocab_size
        uni = np.bincount(tgt, minlength=v).astype(np.float64)
        keys, counts = np.unique(ctx * v + tgt, return_counts=True)
        a, b = keys // v, keys % v
        context = np.bincount(a, weights=counts, minlength=v)
        followers = np.bincount(a, minlength=v).astype(np.float64)
        continuation = np.bincount(b, minlength=v).astype(np.float64)
        n1, n2 = int((counts == 1).sum()), int((counts == 2).sum())
        disc = n1 / (n1 + 2 * n2) if n1 + n2 else 0.5
        return cls(v, uni, keys, counts.astype(np.float64), context, followers, continuation, disc)

    # ------------------------------------------------------------------ probabilities
    def unigram_logprob(self, targets: np.ndarray, k: float) -> np.ndarray:
        """Natural log of the add-k unigram probability of each target."""
        total = self.unigram.sum()
        return np.log((self.unigram[targets] + k) / (total + k * self.vocab_size))

    def continuation_prob(self, targets: np.ndarray, k: float) -> np.ndarray:
        total = self.continuation.sum()
        return (self.continuation[targets] + k) / (total + k * self.vocab_size)

    def pair_count(self, ctx: np.ndarray, targets: np.ndarray) -> np.ndarray:
        q = ctx * self.vocab_size + targets
        pos = np.searchsorted(self.pair_keys, q)
        pos = np.minimum(pos, max(0, len(self.pair_keys) - 1))
        found = len(self.pair_keys) > 0
        hit = (self.pair_keys[pos] == q) if found else np.zeros(len(q), bool)
        return np.where(hit, self.pair_counts[pos] if found else 0.0, 0.0)

    def bigram_logprob(self, ctx: np.ndarray, targets: np.ndarray, k: float) -> np.ndarray:
        """Natural log of the interpolated Kneser–Ney bigram probability of each target."""
        cont = self.continuation_prob(targets, k)
        ca = self.context[ctx]
        seen = ca > 0
        safe = np.where(seen, ca, 1.0)
        c = self.pair_count(ctx, targets)
        d = self.discount
        p = np.maximum(c - d, 0.0) / safe + d * self.followers[ctx] / safe * cont
        return np.log(np.where(seen, p, cont))


def bits_per_byte_of(
    counts: NGramCounts, token_lists: Sequence[np.ndarray], n_bytes: int, order: int, k: float
) -> float:
    ctx, tgt = streams(token_lists)
    if order == 1:
        lp = counts.unigram_logprob(tgt, k)
    elif order == 2:
        lp = counts.bigram_logprob(ctx, tgt, k)
    else:
        raise ValueError(f"order must be 1 or 2, got {order}")
    return float(-lp.sum() / LN2 / max(1, n_bytes))


def best_k(
    counts: NGramCounts, dev_lists: Sequence[np.ndarray], dev_bytes: int, order: int
) -> float:
    """The ``k`` of :data:`K_GRID` with the lowest dev bits per byte."""
    return min(K_GRID, key=lambda k: bits_per_byte_of(counts, dev_lists, dev_bytes, order, k))


def floors(
    tokenizer,
    train_texts: Sequence[str],
    dev_texts: Sequence[str],
    test_texts: Sequence[str],
) -> dict:
    """Unigram and bigram bits per byte of ``test_texts`` under ``tokenizer`` (see module doc)."""
    v = len(tokenizer)
    counts = NGramCounts.fit(D.tokenize(train_texts, tokenizer), v)
    dev = D.tokenize(dev_texts, tokenizer)
    test = D.tokenize(test_texts, tokenizer)
    dev_bytes = sum(len(t.encode("utf-8")) for t in dev_texts)
    test_bytes = sum(len(t.encode("utf-8")) for t in test_texts)
    out = {"vocab_size": v, "train_tokens": int(counts.unigram.sum())}
    for order, name in ((1, "unigram"), (2, "bigram")):
        k = best_k(counts, dev, dev_bytes, order)
        out[f"{name}_k"] = k
        out[f"{name}_bits_per_byte"] = bits_per_byte_of(counts, test, test_bytes, order, k)
    out["bigram_discount"] = counts.discount
    return out
