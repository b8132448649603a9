"""The retrieval memory of Selfmem: for every example, the target side of its nearest neighbour.

The SOURCE side of the training split (its first ``max_words`` whitespace tokens, 600 as in the
paper) is indexed; every example of every split queries the index with its own source, and the
TARGET side of the best hit becomes that example's memory. On the training split the example
itself never counts as its own hit: the top ``k + 1`` hits are asked for and the query's own index
is removed (otherwise the memory would be the reference).

A backend (:class:`Backend`) indexes documents and answers top-k queries; both backends score
with BM25 (k1, b) over the tokens of :func:`analyze`, so they agree:

* ``bm25s`` (:mod:`relift.selfmem.memory.bm25s`, the embedded default): in-process bm25s;
* ``elasticsearch`` (:mod:`relift.selfmem.memory.elasticsearch`): a cluster named only in the
  environment.

Adding a backend is one module with a class of this protocol, one branch of
:func:`make_backend` (and ``BACKENDS``) and the schema's enum value. The CLI is
``python -m relift.selfmem.memory`` (:mod:`relift.selfmem.memory.cli`).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from relift.io import LOG, InputError, atomic_path, write_jsonl_atomic
from relift.selfmem.data import Split, one_line

BACKENDS = ("bm25s", "elasticsearch")
MAX_TOKEN_LENGTH = 255  # Lucene's StandardTokenizer splits longer tokens

# Lucene's StandardTokenizer follows Unicode word boundaries (UAX #29). This approximation keeps
# its main rules: letters and digits form words; a '.', ':', "'" or '’' between two letters and a
# '.', ',', ';', "'" or '’' between two digits do not break a word; '_' joins (ExtendNumLet);
# CJK ideographs and kana are single-character tokens; everything else separates words.
_IDEO = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_WORD = re.compile(
    rf"[{_IDEO}]"
    rf"|(?:(?![{_IDEO}])\w)+"
    rf"(?:(?:(?<=[^\W\d_])[.:'’](?=[^\W\d_])|(?<=\d)[.,;'’](?=\d))(?:(?![{_IDEO}])\w)+)*"
)


def analyze(text: str) -> list[str]:
    """The analyzer shared by both backends: StandardTokenizer-like words, lowercased."""
    out = []
    for m in _WORD.finditer(text):
        tok = m.group(0)
        if not tok.strip("_"):
            continue  # a run of underscores alone is not a word
        tok = tok.lower()
        for i in range(0, len(tok), MAX_TOKEN_LENGTH):
            out.append(tok[i : i + MAX_TOKEN_LENGTH])
    return out


def truncate_words(text: str, max_words: int) -> str:
    """The first ``max_words`` whitespace tokens of ``text`` (0 = no limit)."""
    if max_words <= 0:
        return text
    words = text.split()
    return " ".join(words[:max_words]) if len(words) > max_words else text


Hits = list[tuple[int, float]]


class BackendError(InputError):
    """The retrieval backend failed (unreachable cluster, rejected documents, ...)."""


class Backend(Protocol):
    """A retrieval backend: index the training sources once, then answer top-k queries."""

    name: str

    def index(self, docs: Sequence[str]) -> None:
        """Index ``docs``; document ``i`` is hit id ``i``."""

    def search(self, queries: Sequence[str], k: int) -> list[Hits]:
        """The top-``k`` ``(id, score)`` hits of every query, best first (ties: lower id)."""

    def close(self) -> None:
        """Release the backend (delete a remote index unless asked to keep it)."""


# --------------------------------------------------------------------------- memory
def retrieve_memory(
    backend: Backend, train: Split, queries: Split, k: int, exclude_self: bool, max_words: int = 600
) -> tuple[list[str], list[Hits]]:
    """Memories (target side of the best hit) and the top-k hits of every query example.

    With ``exclude_self`` (the training split queried against itself) the hit whose index equals
    the query's own index is dropped; ``k + 1`` hits are asked for so that k remain.
    """
    texts = [truncate_words(s, max_words) for s in queries.sources]
    raw = backend.search(texts, k + 1 if exclude_self else k)
    memories, hits = [], []
    for i, h in enumerate(raw):
        if exclude_self:
            h = [x for x in h if x[0] != i]
        h = h[:k]
        hits.append(h)
        memories.append(one_line(train.targets[h[0][0]]) if h else "")
    return memories, hits


def make_backend(
    name: str,
    k1: float,
    b: float,
    threads: int = 1,
    es_index: str = "relift-selfmem-memory",
    es_batch_size: int = 500,
    es_max_retries: int = 5,
    es_backoff: float = 1.0,
    es_timeout: float = 60.0,
    es_keep_index: bool = False,
    bm25s_engine: str = "auto",
):
    if name == "bm25s":
        from relift.selfmem.memory.bm25s import BM25sBackend

        return BM25sBackend(k1=k1, b=b, threads=threads, engine=bm25s_engine)
    if name == "elasticsearch":
        from relift.selfmem.memory.elasticsearch import ElasticsearchBackend

        return ElasticsearchBackend(
            es_index,
            k1=k1,
            b=b,
            batch_size=es_batch_size,
            max_retries=es_max_retries,
            backoff=es_backoff,
            timeout=es_timeout,
            keep_index=es_keep_index,
        )
    raise InputError(
        f"unknown memory backend {name!r}; expected one of {', '.join(BACKENDS)}", field="backend"
    )


def build_memories(
    backend: Backend,
    train: Split,
    splits: dict[str, Split],
    out_dir: str | os.PathLike,
    k: int,
    max_words: int = 600,
) -> dict[str, dict]:
    """Index ``train`` and write ``{split}.txt`` and ``{split}.hits.jsonl`` for every split.

    A split that *is* ``train`` (the same object) excludes every example from its own hits.
    """
    if k < 1:
        raise InputError(f"top_k must be at least 1, got {k}", field="top_k")
    out_dir = Path(out_dir)
    t0 = time.time()
    backend.index([truncate_words(s, max_words) for s in train.sources])
    LOG.info("%s: indexed %d training sources in %.1fs", backend.name, len(train), time.time() - t0)
    stats = {}
    for name, split in splits.items():
        t1 = time.time()
        memories, hits = retrieve_memory(
            backend, train, split, k, exclude_self=split is train, max_words=max_words
        )
        with atomic_path(out_dir / f"{name}.txt") as tmp:
            tmp.write_text("".join(m + "\n" for m in memories), encoding="utf-8")
        write_jsonl_atomic(
            out_dir / f"{name}.hits.jsonl",
            ({"ids": [i for i, _ in h], "scores": [round(s, 6) for _, s in h]} for h in hits),
        )
        empty = sum(1 for m in memories if not m)
        stats[name] = {
            "examples": len(split),
            "no_hit": empty,
            "seconds": round(time.time() - t1, 2),
        }
        LOG.info(
            "%s: %d memories (%d without any hit) in %.1fs",
            name,
            len(split),
            empty,
            time.time() - t1,
        )
    return stats
