"""Memory of the next iteration: Top-B memory beam search and augmented memory (torch-free).

Top-B memory beam search (``beam_b`` = B; B = 1 is the paper): every input keeps B memories
(slots). Each slot's memory produced a pool of candidates; each slot spawns its top-B children by
score, and the B best of the (at most) B x B children survive, ranked by the child's own score --
the SELECTOR's score of (source, child) (raw logit: comparable across pools since the
cross-encoder scores each pair on its own) or, for the clearly labelled oracle variant, sentence
BLEU against the reference. :func:`select_topb` never sees a reference: the scores arrive
precomputed (``cand_scores.<split>.jsonl``). Children whose resulting memory text is identical
are merged (the first in rank order is kept) so that the B survivors differ whenever the pools
allow it; when fewer than B distinct children exist, duplicates (then the best child) fill the
beam, so every input always keeps exactly B memories, best first. The hypothesis comes from the
best surviving memory (slot 0, ``memory.<split>.txt``).

Augmented memory (``memory_mode: augment``): ``memory_k = memory_{k-1} + separator +
selected_k`` instead of ``selected_k``, truncated to ``budget`` generator-tokenizer tokens by
keeping the MOST RECENT part (the tail: the newest selection survives whole, the oldest part of
the memory -- at the start, the BM25 memory -- is cut first; a cut inside a word moves on to the
next word boundary). Keeping the tail also matters for the joint generator, whose
``source </s> memory`` truncation would otherwise cut the newest part.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from relift.io import InputError
from relift.selfmem.loop.formats import Beam

MODES = ("replace", "augment")


# --------------------------------------------------------------------------- augment
class TokenCounter:
    """Token offsets of a text under the generator's tokenizer (no special tokens)."""

    def __init__(self, offsets_fn: Callable[[str], list[tuple[int, int]]]):
        self.offsets = offsets_fn

    def count(self, text: str) -> int:
        return len(self.offsets(text))

    @classmethod
    def whitespace(cls) -> TokenCounter:
        return cls(lambda t: [m.span() for m in re.finditer(r"\S+", t)])

    @classmethod
    def from_generator(cls, path: str | os.PathLike) -> TokenCounter:
        """The tokenizer saved in a generator (or tokenizer) folder: ``tokenizer.json`` through
        the light ``tokenizers`` library when present, else transformers' AutoTokenizer."""
        path = Path(path)
        if (path / "tokenizer.json").exists():
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(str(path / "tokenizer.json"))
            return cls(lambda t: tok.encode(t, add_special_tokens=False).offsets)
        from relift.selfmem.generator.tokenizer import load_tokenizer

        hf = load_tokenizer(path)
        return cls(
            lambda t: hf(t, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        )


def truncate_to_budget(text: str, budget: int, counter: TokenCounter) -> str:
    """The most recent part (tail) of ``text`` that fits in ``budget`` tokens (0 = no limit);
    a cut inside a word moves on to the next word boundary."""
    if budget <= 0:
        return text
    offs = counter.offsets(text)
    drop = len(offs) - budget
    while drop > 0:  # re-tokenisation at the cut can merge differently: check again
        start = max(1, offs[drop][0])
        while start < len(text) and not text[start - 1].isspace():
            start += 1  # inside a word: skip to the next boundary
        text = text[start:].lstrip()
        offs = counter.offsets(text)
        drop = len(offs) - budget
    return text


def combine_memory(
    previous: str,
    selected: str,
    mode: str,
    separator: str = " ",
    budget: int = 0,
    counter: TokenCounter | None = None,
) -> str:
    """``replace``: the selected candidate; ``augment``: previous + separator + selected,
    truncated to ``budget`` tokens (tail kept)."""
    if mode == "replace":
        return selected
    if mode != "augment":
        raise InputError(f"unknown memory_mode {mode!r}; expected one of {', '.join(MODES)}")
    if not selected.strip():
        text = previous  # an empty selection adds nothing
    elif not previous.strip():
        text = selected
    else:
        text = f"{previous}{separator}{selected}"
    if budget > 0:
        if counter is None:
            raise InputError("augmented memory with a token budget needs the generator tokenizer")
        text = truncate_to_budget(text, budget, counter)
    return text


# --------------------------------------------------------------------------- Top-B selection
def select_topb(
    parents: Sequence[Sequence[Beam]],
    pools: Sequence[Sequence[Sequence[str]]],
    scores: Sequence[Sequence[Sequence[float]]],
    beam_b: int,
    combine: Callable[[str, str], str] = lambda prev, sel: sel,
) -> list[list[Beam]]:
    """One step of the memory beam: ``parents[i][s]`` is slot s of input i, ``pools[i][s]`` the
    candidates generated from it and ``scores[i][s]`` their selection scores. Every slot spawns
    its top-B children; the B best children of input i survive (exactly B, best first).

    Ties are broken by slot order, then by the generator's candidate order (beam rank). The
    function sees only scores: it cannot read a reference."""
    if beam_b < 1:
        raise InputError(f"beam_b must be >= 1, got {beam_b}")
    if not len(parents) == len(pools) == len(scores):
        raise InputError(
            f"{len(parents)} inputs with beams, {len(pools)} with pools, {len(scores)} with scores"
        )
    out: list[list[Beam]] = []
    for i, (par, pool, sc) in enumerate(zip(parents, pools, scores, strict=True)):
        if not len(par) == len(pool) == len(sc):
            raise InputError(
                f"input {i}: {len(par)} memory slots, {len(pool)} candidate pools, "
                f"{len(sc)} score lists"
            )
        children = []  # (score, slot, rank, memory, candidate)
        for s, (parent, cands, cs) in enumerate(zip(par, pool, sc, strict=True)):
            if len(cands) != len(cs):
                raise InputError(
                    f"input {i}, slot {s}: {len(cands)} candidates but {len(cs)} scores"
                )
            top = sorted(range(len(cands)), key=lambda j: (-cs[j], j))[:beam_b]
            for j in top:
                children.append((cs[j], s, j, combine(parent.memory, cands[j]), cands[j]))
        if not children:
            raise InputError(f"input {i} has no candidates")
        children.sort(key=lambda c: (-c[0], c[1], c[2]))
        seen, kept, dups = set(), [], []
        for c in children:
            (dups if c[3] in seen else kept).append(c)
            seen.add(c[3])
        kept = (kept + dups)[:beam_b]  # distinct memories first
        while len(kept) < beam_b:  # fewer children than B: repeat the best one
            kept.append(kept[0])
        kept.sort(key=lambda c: (-c[0], c[1], c[2]))  # best first
        out.append([Beam(memory=m, selected=c, score=float(v), parent=s) for v, s, _, m, c in kept])
    return out
