"""Settings of the retrieval memory's CLI, declared once (see :mod:`relift.settings`).

:class:`MemorySettings` mirrors config.yaml's ``selfmem.memory`` section: a field's name is a key
of the section and its default the embedded default's value (tests/test_defaults.py compares
them). A rule passes the section as one ``--settings`` JSON value.
"""

from __future__ import annotations

from dataclasses import dataclass

from relift.selfmem.memory import BACKENDS
from relift.settings import setting


@dataclass
class MemorySettings:
    """``selfmem.memory``: the BM25 retrieval memory and its backend."""

    backend: str = setting(
        "bm25s",
        "bm25s (in-process Lucene BM25) or elasticsearch (a cluster named in the environment)",
        choices=BACKENDS,
    )
    bm25s_engine: str = setting(
        "auto",
        "bm25s backend: auto (numba when installed: fast, a few seconds of JIT warm-up), numba "
        "or numpy",
        choices=("auto", "numba", "numpy"),
    )
    top_k: int = setting(10, "training hits kept per example (10 in the paper)")
    max_words: int = setting(
        600, "whitespace tokens of a source that are indexed and queried (0 = all)"
    )
    k1: float = setting(1.2, "BM25 k1")
    b: float = setting(0.75, "BM25 b")
    es_index_prefix: str = setting(
        "relift-selfmem",
        "Elasticsearch index name prefix: the index is <prefix>-<task> (--task; without it, "
        "<prefix>-memory), unless --es-index names it",
    )
    es_batch_size: int = setting(500, "documents per _bulk / queries per _msearch")
    es_max_retries: int = setting(5, "retries of transient Elasticsearch failures")
