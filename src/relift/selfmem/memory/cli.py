"""Selfmem's retrieval memory (``python -m relift.selfmem.memory``): for every example, the
target side of its nearest neighbour.

The SOURCE side of the training split (its first ``--max-words`` whitespace tokens, 600 as in the
paper) is indexed; every example of every split queries the index with its own source, and the
TARGET side of the best hit becomes that example's memory. On the training split the example
itself never counts as its own hit: the top ``k + 1`` hits are asked for and the query's own index
is removed (otherwise the memory would be the reference).

Outputs, per split, in ``--out-dir``:

* ``{split}.txt``: one memory per line, aligned with the split's JSONL lines (an example without
  any hit gets an empty line);
* ``{split}.hits.jsonl``: ``{"ids": [...], "scores": [...]}`` per example, the top-k training
  example indices (0-based, in file order) and their BM25 scores, best first.

Two backends, one interface, the same output:

* ``bm25s`` (embedded default): bm25s with ``method="lucene"`` (Lucene's BM25: idf
  ``log(1 + (N - df + 0.5) / (df + 0.5))``, k1 1.2, b 0.75), its numba backend when numba is
  installed, over the tokens of :func:`analyze`.
* ``elasticsearch``: the official Python client against a cluster whose URL and credentials come
  ONLY from the environment (``RELIFT_ES_URL``; ``RELIFT_ES_API_KEY`` or ``RELIFT_ES_USER`` +
  ``RELIFT_ES_PASSWORD``; optional ``RELIFT_ES_CA_CERTS``). They are never logged or written.
  The index gets one shard (global IDF statistics, like bm25s), a named BM25 similarity with the
  same k1/b and a named analyzer (``standard`` tokenizer + ``lowercase``), which :func:`analyze`
  mirrors so that both backends agree. Documents go in with ``_bulk`` (per-item errors are
  checked), then ``_refresh``; queries go out as ``match`` queries in ``_msearch`` batches.
  Transient failures (connection errors, timeouts, HTTP 429/502/503/504) are retried with
  exponential backoff.

Settings (:class:`relift.selfmem.memory.settings.MemorySettings`: config.yaml's
``selfmem.memory``) come as ``--settings JSON`` and/or one flag each; with ``--task NAME`` the
Elasticsearch index is ``<es_index_prefix>-<name>`` (``--es-index`` names it outright).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from relift.io import InputError, run_cli
from relift.selfmem.data import Split, load_split
from relift.selfmem.memory import build_memories, make_backend
from relift.selfmem.memory.settings import MemorySettings
from relift.settings import add_settings, settings_from_args


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m relift.selfmem.memory",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--train", required=True, type=Path, help="training split (JSONL); its sources are indexed"
    )
    ap.add_argument(
        "--query",
        action="append",
        default=[],
        metavar="SPLIT=PATH",
        help="a split to retrieve memories for (repeatable), e.g. dev=dev.jsonl; the "
        "--train file itself excludes every example from its own hits "
        "(default: train=<--train>)",
    )
    ap.add_argument("--src-field", default="src")
    ap.add_argument("--trg-field", default="trg")
    ap.add_argument("--out-dir", required=True, type=Path)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--task", default="", help="task name: the Elasticsearch index's suffix")
    ap.add_argument("--es-index", default="", help="index name (default: <prefix>-<task>)")
    ap.add_argument(
        "--es-backoff", type=float, default=1.0, help="first retry delay in seconds (doubles)"
    )
    ap.add_argument("--es-timeout", type=float, default=60.0, help="request timeout in seconds")
    ap.add_argument(
        "--es-keep-index", action="store_true", help="do not delete the index at the end"
    )
    add_settings(ap, MemorySettings)
    return ap


def query_splits(train_path: Path, queries: list[str], src_field: str, trg_field: str):
    """(the training split, {name: split} of the --query splits; train itself by default)."""
    train = load_split(train_path, src_field, trg_field)
    splits: dict[str, Split] = {}
    for spec in queries or [f"train={train_path}"]:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise InputError(f"--query expects SPLIT=PATH, got {spec!r}")
        if name in splits:
            raise InputError(f"--query names split {name!r} twice")
        same = Path(path).resolve() == train_path.resolve()
        if name == "train" and not same:
            raise InputError(
                f"--query train={path} differs from --train {train_path}; the training split "
                "is the indexed one"
            )
        splits[name] = train if same else load_split(path, src_field, trg_field)
    return train, splits


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    st = settings_from_args(args, MemorySettings)
    train, splits = query_splits(args.train, args.query, args.src_field, args.trg_field)
    index = args.es_index or f"{st.es_index_prefix}-{(args.task or 'memory').lower()}"
    backend = make_backend(
        st.backend,
        st.k1,
        st.b,
        args.threads,
        index,
        st.es_batch_size,
        st.es_max_retries,
        args.es_backoff,
        args.es_timeout,
        args.es_keep_index,
        st.bm25s_engine,
    )
    try:
        build_memories(backend, train, splits, args.out_dir, st.top_k, st.max_words)
    finally:
        backend.close()


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
