"""File formats of the Selfmem loop: candidate pools, their scores, memory beams, text lines,
and the ``SPLIT=PATH`` file arguments of the loop's and the selector's CLIs.

Files of one iteration (``results/selfmem/<task>/<arch>/<variant>/iter<k>/``):

* ``beams.<split>.jsonl``: ``{"id": i, "beams": [{"memory", "selected", "score", "parent"}, ...]}``
  (B entries, best first; iteration 0 holds one, the BM25 memory),
* ``memory.<split>.txt``: the best memory per input (one line each),
* ``beam<b>/candidates.<split>.jsonl``: part 1's candidate format ``{"id", "candidates",
  "scores"}`` generated from slot b's memory; ``beam<b>/cand_scores.<split>.jsonl``:
  ``{"id", "scores"}`` of the selector (or the oracle) for those candidates,
* ``hypotheses.<split>.txt``, ``scores.<split>.json`` (hypotheses vs references, as
  ``relift score``) and ``memory_scores.<split>.json`` (the memory itself vs references: the
  paper's memory BLEU).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from relift.io import InputError, atomic_path, read_jsonl, write_jsonl_atomic


def read_pools(
    path: str | os.PathLike, expected: int | None = None, pool_size: int = 0
) -> list[list[str]]:
    """Candidate pools of a candidates JSONL (part 1's format), one per input, in input order.

    Record ``n`` (0-based) must have ``"id": n``: a shuffled or partial file would silently give
    an input another input's candidates (the public fork's bug). ``pool_size`` keeps only the
    first (best) candidates of each pool (0 = all)."""
    pools = []
    for lineno, rec in read_jsonl(path):
        if rec.get("id") != len(pools):
            raise InputError(
                f"expected id {len(pools)} (records in input order), found {rec.get('id')!r}",
                path=path,
                line=lineno,
                field="id",
            )
        cands = rec.get("candidates")
        if not isinstance(cands, list) or not cands or not all(isinstance(c, str) for c in cands):
            raise InputError(
                "expected a non-empty list of strings", path=path, line=lineno, field="candidates"
            )
        pools.append(cands[:pool_size] if pool_size else cands)
    if expected is not None and len(pools) != expected:
        raise InputError(
            f"{len(pools)} candidate pools but the split has {expected} inputs", path=path
        )
    return pools


def write_pools(path: str | os.PathLike, pools: Sequence[Sequence[str]], scores=None) -> None:
    write_jsonl_atomic(
        path,
        (
            {
                "id": i,
                "candidates": list(p),
                "scores": list(scores[i]) if scores is not None else [],
            }
            for i, p in enumerate(pools)
        ),
    )


def read_scores(path: str | os.PathLike, pools: Sequence[Sequence[str]]) -> list[list[float]]:
    """Scores aligned with ``pools``: record n has id n and one number per candidate."""
    out: list[list[float]] = []
    for lineno, rec in read_jsonl(path):
        i = len(out)
        if rec.get("id") != i:
            raise InputError(
                f"expected id {i}, found {rec.get('id')!r}", path=path, line=lineno, field="id"
            )
        if i >= len(pools):
            raise InputError(f"more score records than the {len(pools)} pools", path=path)
        s = rec.get("scores")
        if not isinstance(s, list) or len(s) != len(pools[i]):
            raise InputError(
                f"expected {len(pools[i])} scores (one per candidate of input {i})",
                path=path,
                line=lineno,
                field="scores",
            )
        out.append([float(x) for x in s])
    if len(out) != len(pools):
        raise InputError(f"{len(out)} score records for {len(pools)} pools", path=path)
    return out


def write_scores(path: str | os.PathLike, scores: Sequence[Sequence[float]]) -> None:
    write_jsonl_atomic(
        path, ({"id": i, "scores": [round(x, 6) for x in s]} for i, s in enumerate(scores))
    )


@dataclass
class Beam:
    """One surviving memory of an input."""

    memory: str
    selected: str = ""  # the candidate chosen at this iteration ("" at iteration 0)
    score: float | None = None  # its selector (or oracle) score
    parent: int | None = None  # slot of the previous iteration it came from


def read_beams(path: str | os.PathLike, expected: int | None = None) -> list[list[Beam]]:
    out: list[list[Beam]] = []
    for lineno, rec in read_jsonl(path):
        if rec.get("id") != len(out):
            raise InputError(
                f"expected id {len(out)}, found {rec.get('id')!r}", path=path, line=lineno
            )
        beams = rec.get("beams")
        if not isinstance(beams, list) or not beams:
            raise InputError("expected a non-empty list", path=path, line=lineno, field="beams")
        try:
            out.append([Beam(**b) for b in beams])
        except TypeError as err:
            raise InputError(f"bad beam entry ({err})", path=path, line=lineno) from None
    if expected is not None and len(out) != expected:
        raise InputError(f"{len(out)} inputs but {expected} expected", path=path)
    return out


def write_beams(path: str | os.PathLike, beams: Sequence[Sequence[Beam]]) -> None:
    write_jsonl_atomic(
        path,
        (
            {
                "id": i,
                "beams": [
                    {
                        "memory": b.memory,
                        "selected": b.selected,
                        "score": None if b.score is None else round(b.score, 6),
                        "parent": b.parent,
                    }
                    for b in bs
                ],
            }
            for i, bs in enumerate(beams)
        ),
    )


def write_lines(path: str | os.PathLike, lines: Sequence[str]) -> None:
    from relift.selfmem.data import one_line

    with atomic_path(path) as tmp:
        tmp.write_text("".join(one_line(x) + "\n" for x in lines), encoding="utf-8")


# --------------------------------------------------------------------------- SPLIT=PATH arguments
def split_map(values: list[str] | None, flag: str) -> dict[str, str]:
    """``["dev=path", "test=path"]`` -> ``{"dev": "path", "test": "path"}``."""
    out: dict[str, str] = {}
    for v in values or []:
        name, sep, path = v.partition("=")
        if not sep or not name or not path:
            raise InputError(f"{flag} expects SPLIT=PATH, got {v!r}")
        if name in out:
            raise InputError(f"{flag} gives split {name!r} twice")
        out[name] = path
    return out


def same_splits(maps: dict[str, dict], required: Sequence[str]) -> list[str]:
    splits = None
    for flag, m in maps.items():
        if flag not in required and not m:
            continue
        if splits is None:
            splits = list(m)
        elif set(m) != set(splits):
            raise InputError(f"{flag} names splits {sorted(m)}, expected {sorted(splits)}")
    if not splits:
        raise InputError("no split given")
    return splits


def slot_files(values: list[str] | None, flag: str) -> dict[str, list[str]]:
    """``SPLIT=PATH`` given once per slot, in slot order."""
    out: dict[str, list[str]] = {}
    for v in values or []:
        name, sep, path = v.partition("=")
        if not sep or not name or not path:
            raise InputError(f"{flag} expects SPLIT=PATH, got {v!r}")
        out.setdefault(name, []).append(path)
    return out
