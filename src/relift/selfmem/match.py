"""The fuzzy match of a memory: how close its source is to the example's source.

The classical translation-memory score: the difflib ratio of the two sources' lower-cased words
(2 x matching words / all words, 0..1). Every example's BM25 memory has one
(``memory/<split>.match.txt``, one score per line, written by ``python -m relift.selfmem.match``),
and the same score serves three purposes:

* the generator's memory recipe (:mod:`relift.selfmem.generator.recipe`): a threshold below which
  the memory is withheld and a bucket marker before the memory;
* the fuzzy-match switch baseline (the memory's target when the match is high enough);
* the comparison's match bands (:data:`BANDS`), where every row reports BLEU per band.

With ``--sources`` the same command writes ``memory/<split>.source.txt`` instead: the source of
each example's top-1 memory, one per line (empty without a hit), which a generator with the
``memory_source`` recipe reads before the memory's target.
"""

from __future__ import annotations

import argparse
import difflib
import os
from pathlib import Path

from relift.io import LOG, InputError, read_lines, run_cli, write_text_atomic

# the comparison's bands of the memory's fuzzy match: [lo, hi) (the last one includes 1.0)
BANDS = ((0.0, 0.5), (0.5, 0.7), (0.7, 0.9), (0.9, 1.0))


def fuzzy_match(a: str, b: str) -> float:
    """Word-level fuzzy match of two sources (difflib ratio: 2·matches / total words, 0..1)."""
    wa, wb = a.lower().split(), b.lower().split()
    if not wa and not wb:
        return 1.0
    return difflib.SequenceMatcher(None, wa, wb, autojunk=False).ratio()


def band_label(lo: float, hi: float) -> str:
    return f"[{lo:g}, {hi:g}]" if hi >= 1.0 else f"[{lo:g}, {hi:g})"


def band_of(score: float) -> int:
    """Index of the band of ``score`` in :data:`BANDS`."""
    for i, (_, hi) in enumerate(BANDS[:-1]):
        if score < hi:
            return i
    return len(BANDS) - 1


def memory_match_scores(
    sources: list[str], hits: list[list[int]], train_sources: list[str]
) -> list[float]:
    """Fuzzy match of each source with the source of its top-1 retrieved training example."""
    return [fuzzy_match(s, train_sources[h[0]]) if h else 0.0 for s, h in zip(sources, hits)]


def memory_sources(hits: list[list[int]], train_sources: list[str]) -> list[str]:
    """The source of each example's top-1 retrieved training example ("" without a hit)."""
    from relift.selfmem.data import one_line

    return [one_line(train_sources[h[0]]) if h else "" for h in hits]


def read_sources(path: str | os.PathLike, expected: int) -> list[str]:
    """``memory/<split>.source.txt``: one memory source per line (empty lines kept)."""
    return read_lines(path, "memory sources", expected=expected)


def read_scores(path: str | os.PathLike, expected: int | None = None) -> list[float]:
    """One match score per line; errors name the file and line."""
    out = []
    for i, line in enumerate(read_lines(path, "match scores"), 1):
        try:
            v = float(line)
        except ValueError:
            raise InputError(f"not a number: {line!r}", path=path, line=i) from None
        if not 0.0 <= v <= 1.0:
            raise InputError(f"match score {v} outside [0, 1]", path=path, line=i)
        out.append(v)
    if expected is not None and len(out) != expected:
        raise InputError(f"{len(out)} match scores for {expected} examples", path=path)
    return out


def main(argv: list[str] | None = None) -> None:
    """Write ``<split>.match.txt``: each example's fuzzy match with its top-1 memory (or with
    ``--sources``, ``<split>.source.txt``: the top-1 memory's source)."""
    from relift.selfmem.data import load_split, read_hit_ids

    ap = argparse.ArgumentParser(prog="python -m relift.selfmem.match", description=__doc__)
    ap.add_argument("--train", required=True, type=Path, help="training split (JSONL)")
    ap.add_argument("--data", required=True, type=Path, help="the split of the hits (JSONL)")
    ap.add_argument("--hits", required=True, type=Path, help="its <split>.hits.jsonl")
    ap.add_argument("--src-field", default="src")
    ap.add_argument("--trg-field", default="trg")
    ap.add_argument(
        "--sources",
        action="store_true",
        help="write the top-1 memories' sources (memory/<split>.source.txt) instead of scores",
    )
    ap.add_argument("--output", required=True, type=Path)
    args = ap.parse_args(argv)
    train = load_split(args.train, args.src_field, args.trg_field)
    split = load_split(args.data, args.src_field, args.trg_field)
    hits = read_hit_ids(args.hits, len(split))
    if args.sources:
        sources = memory_sources(hits, train.sources)
        write_text_atomic(args.output, "".join(f"{s}\n" for s in sources))
        LOG.info("%s: %d memory sources", args.output, len(sources))
        return
    scores = memory_match_scores(split.sources, hits, train.sources)
    write_text_atomic(args.output, "".join(f"{s:.4f}\n" for s in scores))
    counts = [0] * len(BANDS)
    for s in scores:
        counts[band_of(s)] += 1
    LOG.info(
        "%s: %s",
        args.output,
        ", ".join(f"{band_label(*b)} {n}" for b, n in zip(BANDS, counts, strict=True)),
    )


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
