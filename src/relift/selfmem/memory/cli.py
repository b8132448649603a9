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
"""

from __future__ import annotations

import argparse
from pathlib import Path

from relift.io import InputError, run_cli
from relift.selfmem.data import Split, load_split
from relift.selfmem.memory import BACKENDS, build_memories, make_backend


def build_parser() -> argparse.ArgumentParser:
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
    ap.add_argument("--backend", choices=BACKENDS, default="bm25s")
    ap.add_argument(
        "--top-k", type=int, default=10, help="hits kept per example (default: %(default)s)"
    )
    ap.add_argument(
        "--max-words",
        type=int,
        default=600,
        help="whitespace tokens of a source that are indexed/queried (0 = all; default: %(default)s)",
    )
    ap.add_argument("--k1", type=float, default=1.2)
    ap.add_argument("--b", type=float, default=0.75)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--bm25s-engine",
        choices=("auto", "numba", "numpy"),
        default="auto",
        help="bm25s backend: numba when installed (fast; a few seconds of JIT warm-up), numpy",
    )
    ap.add_argument(
        "--es-index", default="relift-selfmem-memory", help="index name (elasticsearch backend)"
    )
    ap.add_argument(
        "--es-batch-size", type=int, default=500, help="documents per _bulk / queries per _msearch"
    )
    ap.add_argument("--es-max-retries", type=int, default=5)
    ap.add_argument(
        "--es-backoff", type=float, default=1.0, help="first retry delay in seconds (doubles)"
    )
    ap.add_argument("--es-timeout", type=float, default=60.0, help="request timeout in seconds")
    ap.add_argument(
        "--es-keep-index", action="store_true", help="do not delete the index at the end"
    )
    return ap


def _query_splits(args: argparse.Namespace, train: Split) -> dict[str, Split]:
    """The splits named by ``--query`` (default: the training split), each loaded once; the
    training split is the one already loaded."""
    splits: dict[str, Split] = {}
    for spec in args.query or [f"train={args.train}"]:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise InputError(f"--query expects SPLIT=PATH, got {spec!r}")
        if name in splits:
            raise InputError(f"--query names split {name!r} twice")
        same = Path(path).resolve() == args.train.resolve()
        if name == "train" and not same:
            raise InputError(
                f"--query train={path} differs from --train {args.train}; the training split "
                "is the indexed one"
            )
        splits[name] = train if same else load_split(path, args.src_field, args.trg_field)
    return splits


def _backend_of(args: argparse.Namespace):
    """The retrieval backend the flags ask for."""
    return make_backend(
        args.backend,
        args.k1,
        args.b,
        args.threads,
        args.es_index,
        args.es_batch_size,
        args.es_max_retries,
        args.es_backoff,
        args.es_timeout,
        args.es_keep_index,
        args.bm25s_engine,
    )


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    train = load_split(args.train, args.src_field, args.trg_field)
    splits = _query_splits(args, train)
    backend = _backend_of(args)
    try:
        build_memories(backend, train, splits, args.out_dir, args.top_k, args.max_words)
    finally:
        backend.close()


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
