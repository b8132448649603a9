"""The memory recipe: how a memory enters the generator, the same way everywhere.

A generator folder's ``selfmem.json`` holds the recipe's inference part (:class:`GeneratorSpec`
fields ``memory_min_match`` and ``memory_marker``), and :func:`memory_view` applies it to every
memory the generator reads: at training, in the dev evaluation, in the candidates, the
diagnostics and the self-memory loop. Each memory comes with its fuzzy-match score
(:mod:`relift.selfmem.match`; in the loop, the retrieval's score of the example):

* ``memory_min_match``: below it the memory is withheld (an empty memory), as Neural Fuzzy Repair
  adds a fuzzy match only above a threshold;
* ``memory_marker``: a bucket marker (``<fm0>`` .. ``<fm3>``, the comparison's match bands)
  before the memory, as OpenNMT's fuzzy-match transform marks its matches;
* ``memory_source``: the memory's own source before its target (``memory source </s> memory
  target``), so that the generator can see where the memory's source differs from its input.
  A retrieved memory's source is its training example's source (``memory/<split>.source.txt``);
  a memory the generator wrote itself (the loop, a reference or a noised target) translates the
  input, so its source is the input's own source.

The training part (:func:`mix_training_memory`) replaces shares of the training memories:
withheld (empty), a random training target (a mismatched memory, Hoang et al. 2022), the
retrieved hit closest to the target, or a noised copy of the target ("trust training"). Each
replaced memory gets the score it would have: the fuzzy match of the source with the
replacement's source (random, closest hit), or of the target with its noised copy.
"""

from __future__ import annotations

from relift.io import InputError
from relift.selfmem.match import BANDS, band_of, fuzzy_match

MARKERS = tuple(f"<fm{i}>" for i in range(len(BANDS)))
SHARES = ("withheld", "random", "closest", "noised_target")
# between a memory's source and its target (the tokenizer's end-of-sequence token)
SOURCE_SEP = "</s>"


def marker(score: float) -> str:
    """The bucket marker of a match score (the buckets are the comparison's bands)."""
    return MARKERS[band_of(score)]


def memory_view(
    memories: list[str],
    scores: list[float] | None,
    min_match: float,
    with_marker: bool,
    sources: list[str] | None = None,
    with_source: bool = False,
) -> list[str]:
    """The memories as the generator reads them (see the module docstring); ``sources`` are
    the memories' own sources, needed with ``with_source``."""
    if not min_match and not with_marker and not with_source:
        return list(memories)
    if (min_match or with_marker) and scores is None:
        raise InputError(
            "this generator's memory recipe (memory_min_match / memory_marker) needs the "
            "memories' fuzzy-match scores (--match)"
        )
    if scores is not None and len(scores) != len(memories):
        raise InputError(f"{len(scores)} match scores for {len(memories)} memories")
    if with_source:
        if sources is None:
            raise InputError(
                "this generator reads each memory with its own source (memory_source): it "
                "needs the memories' sources (--memory-sources)"
            )
        if len(sources) != len(memories):
            raise InputError(f"{len(sources)} memory sources for {len(memories)} memories")
    out = []
    for i, m in enumerate(memories):
        s = scores[i] if scores is not None else 1.0
        if not m or s < min_match:
            out.append("")
            continue
        if with_source:
            m = f"{sources[i]} {SOURCE_SEP} {m}"
        out.append(f"{marker(s)} {m}" if with_marker else m)
    return out


def _words(text: str) -> set[str]:
    return set(text.lower().split())


def word_dice(a: str, b: str) -> float:
    """Dice overlap of the lower-cased word sets of two texts (0..1)."""
    wa, wb = _words(a), _words(b)
    return 2 * len(wa & wb) / (len(wa) + len(wb)) if wa or wb else 0.0


def noised_copy(text: str, rng, vocab: list[str], p_drop: float = 0.1, p_swap: float = 0.15):
    """The target as an imperfect memory: each word dropped with ``p_drop`` or replaced by a
    random training-target word with ``p_swap``."""
    out = []
    for w in text.split():
        u = rng.random()
        if u < p_drop:
            continue
        out.append(vocab[rng.integers(len(vocab))] if u < p_drop + p_swap else w)
    return " ".join(out)


def mix_training_memory(
    split,
    memories: list[str],
    scores: list[float] | None,
    hits: list[list[int]] | None,
    shares: dict[str, float],
    seed: int,
    sources: list[str] | None = None,
) -> tuple[list[str], list[float] | None, list[str] | None, dict]:
    """Training memories, their scores and their own sources (``sources``: the BM25 memories'
    sources, or None) with ``shares`` (keys: :data:`SHARES`) replaced, fixed per example; the
    rest keep their BM25 top-1 memory. Returns memories, scores, sources and the count of each
    kind."""
    import numpy as np

    unknown = set(shares) - set(SHARES)
    if unknown:
        raise InputError(f"unknown memory shares: {sorted(unknown)}")
    total = sum(shares.values())
    if total > 1 + 1e-9:
        raise InputError(
            f"memory shares add up to {total:.2f} > 1 ("
            + ", ".join(f"memory_{k}_share" for k, v in shares.items() if v)
            + ")"
        )
    if shares.get("closest") and hits is None:
        raise InputError("memory_closest_share needs the training hits (--train-hits)")
    n = len(split)
    rng = np.random.default_rng([seed, 7])
    vocab = sorted({w for t in split.targets for w in t.split()})
    mem, sc = list(memories), (list(scores) if scores is not None else None)
    msrc = list(sources) if sources is not None else None
    counts = {"bm25": 0} | {k: 0 for k in SHARES}
    u = rng.random(n)
    for i in range(n):
        lo, kind = 0.0, "bm25"
        for k in SHARES:
            if lo <= u[i] < lo + shares.get(k, 0.0):
                kind = k
                break
            lo += shares.get(k, 0.0)
        new, src = None, None
        if kind == "withheld":
            new = ""
        elif kind == "random":
            j = int(rng.integers(n - 1))
            j += j >= i  # never the example itself
            new, src = split.targets[j], split.sources[j]
        elif kind == "closest" and hits[i]:
            j = max(hits[i], key=lambda h: word_dice(split.targets[h], split.targets[i]))
            new, src = split.targets[j], split.sources[j]
        elif kind == "noised_target":
            new, src = noised_copy(split.targets[i], rng, vocab), split.sources[i]
        else:
            kind = "bm25"
        counts[kind] += 1
        if new is None:
            continue
        mem[i] = new
        if msrc is not None:
            msrc[i] = src or ""
        if sc is not None:
            if kind == "noised_target":
                sc[i] = fuzzy_match(split.targets[i], new)
            elif src is not None:
                sc[i] = fuzzy_match(split.sources[i], src)
            else:
                sc[i] = 0.0
    return mem, sc, msrc, counts
