"""BM25 memory for Selfmem: retrieve, for every example, the target side of its nearest neighbour.

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
import logging
import os
import random
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from relift.io import LOG, InputError, atomic_path, run_cli, write_jsonl_atomic
from relift.selfmem.data import Split, load_split, one_line

BACKENDS = ("bm25s", "elasticsearch")
ANALYZER = "relift_text"
SIMILARITY = "relift_bm25"
FIELD = "text"
ENV_URL, ENV_USER, ENV_PASSWORD, ENV_API_KEY, ENV_CA = (
    "RELIFT_ES_URL",
    "RELIFT_ES_USER",
    "RELIFT_ES_PASSWORD",
    "RELIFT_ES_API_KEY",
    "RELIFT_ES_CA_CERTS",
)
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


# --------------------------------------------------------------------------- bm25s
class BM25sBackend:
    """In-process Lucene-variant BM25 (bm25s)."""

    name = "bm25s"

    def __init__(self, k1: float = 1.2, b: float = 0.75, threads: int = 1, engine: str = "auto"):
        import bm25s

        if engine == "auto":
            try:
                import numba  # noqa: F401

                engine = "numba"
            except ImportError:
                engine = "numpy"
        if engine == "numba":
            try:
                import numba

                numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
            except Exception as err:  # pragma: no cover - depends on the numba build
                LOG.warning("numba thread setup failed (%s); continuing", err)
        self.engine = engine
        self.threads = threads
        self.model = bm25s.BM25(k1=k1, b=b, method="lucene", backend=engine)
        self.n_docs = 0

    def index(self, docs: Sequence[str]) -> None:
        self.n_docs = len(docs)
        self.model.index([analyze(d) for d in docs], show_progress=False)

    def search(self, queries: Sequence[str], k: int) -> list[Hits]:
        k_eff = min(k, self.n_docs)
        toks = [analyze(q) for q in queries]
        vocab = self.model.vocab_dict
        todo = [i for i, t in enumerate(toks) if any(w in vocab for w in t)]
        out: list[Hits] = [[] for _ in queries]
        if not todo or k_eff == 0:
            return out
        # ask for one more than needed so that ties at the cut can be broken by index
        k_ask = min(k_eff + 1, self.n_docs)
        kw = {} if self.engine == "numba" else {"n_threads": self.threads}
        docs, scores = self.model.retrieve(
            [[w for w in toks[i] if w in vocab] for i in todo], k=k_ask, show_progress=False, **kw
        )
        for row, i in enumerate(todo):
            hits = [
                (int(d), float(s)) for d, s in zip(docs[row], scores[row], strict=True) if s > 0
            ]
            hits.sort(key=lambda h: (-h[1], h[0]))
            out[i] = hits[:k_eff]
        return out

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- elasticsearch
def _redact(text: str) -> str:
    """Remove the cluster URL and every credential from an error message."""
    for var in (ENV_URL, ENV_PASSWORD, ENV_API_KEY, ENV_USER):
        val = os.environ.get(var)
        if val and len(val) >= 3:
            text = text.replace(val, f"<{var}>")
    url = os.environ.get(ENV_URL, "")
    m = re.match(r"^[a-z]+://(?:[^@/]*@)?([^/:?#]+)", url)
    if m and m.group(1):
        text = text.replace(m.group(1), "<host>")
    return re.sub(r"[a-zA-Z][a-zA-Z0-9+.-]*://\S+", "<url>", text)


def es_client_from_env(timeout: float = 60.0):
    """An ``elasticsearch.Elasticsearch`` client configured from the environment only."""
    from elasticsearch import Elasticsearch

    url = os.environ.get(ENV_URL, "").strip()
    if not url:
        raise InputError(
            f"the elasticsearch backend needs the cluster URL in the environment variable "
            f"{ENV_URL} (credentials in {ENV_API_KEY}, or {ENV_USER} and {ENV_PASSWORD})"
        )
    kwargs: dict = {}
    api_key = os.environ.get(ENV_API_KEY)
    user = os.environ.get(ENV_USER)
    if api_key:
        kwargs["api_key"] = api_key
    elif user:
        kwargs["basic_auth"] = (user, os.environ.get(ENV_PASSWORD, ""))
    elif os.environ.get(ENV_PASSWORD):
        raise InputError(f"{ENV_PASSWORD} is set but {ENV_USER} is not")
    if os.environ.get(ENV_CA):
        kwargs["ca_certs"] = os.environ[ENV_CA]
    # the transport logs every request with its URL: keep it quiet (errors are reported redacted)
    for name in ("elastic_transport", "elasticsearch"):
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)
    logging.getLogger("urllib3.connectionpool").setLevel(
        logging.WARNING
    )  # its DEBUG names the host
    try:
        # retries are done here, with backoff (the client's own retries have none)
        return Elasticsearch(
            url, request_timeout=timeout, max_retries=0, retry_on_timeout=False, **kwargs
        )
    except Exception as err:
        raise BackendError(
            f"cannot configure the Elasticsearch client from {ENV_URL}: "
            f"{type(err).__name__}: {_redact(str(err))}"
        ) from None


def index_body(k1: float, b: float) -> dict:
    """Settings and mappings of the memory index (BM25 similarity, standard+lowercase analyzer)."""
    return {
        "settings": {
            "number_of_shards": 1,
            "number_of_replicas": 0,
            "similarity": {SIMILARITY: {"type": "BM25", "k1": k1, "b": b}},
            "analysis": {
                "analyzer": {
                    ANALYZER: {"type": "custom", "tokenizer": "standard", "filter": ["lowercase"]}
                }
            },
        },
        "mappings": {
            "dynamic": "strict",
            "properties": {FIELD: {"type": "text", "analyzer": ANALYZER, "similarity": SIMILARITY}},
        },
    }


RETRY_STATUS = (429, 502, 503, 504)


class ElasticsearchBackend:
    """BM25 through an Elasticsearch cluster (the original Selfmem setup)."""

    name = "elasticsearch"

    def __init__(
        self,
        index_name: str,
        k1: float = 1.2,
        b: float = 0.75,
        batch_size: int = 500,
        max_retries: int = 5,
        backoff: float = 1.0,
        timeout: float = 60.0,
        keep_index: bool = False,
        client=None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", index_name) or len(index_name) > 255:
            raise InputError(
                f"invalid Elasticsearch index name {index_name!r} (lowercase letters, digits, "
                "'.', '_', '-')",
                field="es_index",
            )
        self.client = client if client is not None else es_client_from_env(timeout)
        self.index_name, self.k1, self.b = index_name, k1, b
        self.batch_size, self.max_retries, self.backoff = (
            max(1, batch_size),
            max(0, max_retries),
            backoff,
        )
        self.keep_index, self.sleep = keep_index, sleep
        self.created = False

    def _call(self, what: str, fn: Callable, **kwargs):
        from elasticsearch import (
            ApiError,
            ConnectionError,
            ConnectionTimeout,
            UnsupportedProductError,
        )

        for attempt in range(self.max_retries + 1):
            retryable = False
            try:
                return fn(**kwargs)
            except UnsupportedProductError:
                raise BackendError(
                    f"Elasticsearch {what}: the server at {ENV_URL} is not Elasticsearch "
                    "(no 'X-Elastic-Product: Elasticsearch' header)"
                ) from None
            except (ConnectionError, ConnectionTimeout) as err:
                retryable = True
                why = f"cannot reach the cluster named by {ENV_URL} ({type(err).__name__}: {_redact(str(err))})"
            except ApiError as err:
                status = getattr(err.meta, "status", None)
                retryable = status in RETRY_STATUS
                why = f"HTTP {status}: {_redact(_api_reason(err))}"
                if status in (401, 403):
                    why += f" (check {ENV_API_KEY} or {ENV_USER}/{ENV_PASSWORD})"
            if not retryable or attempt == self.max_retries:
                tries = f" after {attempt + 1} attempts" if attempt else ""
                raise BackendError(f"Elasticsearch {what} failed{tries}: {why}")
            delay = min(30.0, self.backoff * 2**attempt) * (0.5 + random.random() / 2)
            LOG.warning(
                "Elasticsearch %s failed (%s); retry %d/%d in %.1fs",
                what,
                why,
                attempt + 1,
                self.max_retries,
                delay,
            )
            self.sleep(delay)
        raise AssertionError("unreachable")

    def index(self, docs: Sequence[str]) -> None:
        name = self.index_name
        if self._call("index check", self.client.indices.exists, index=name):
            self._call("index delete", self.client.indices.delete, index=name)
        self._call(
            "index create", self.client.indices.create, index=name, **index_body(self.k1, self.b)
        )
        self.created = True
        for start in range(0, len(docs), self.batch_size):
            ops: list[dict] = []
            for i in range(start, min(start + self.batch_size, len(docs))):
                ops.append({"index": {"_index": name, "_id": str(i)}})
                ops.append({FIELD: docs[i]})
            resp = self._call("_bulk", self.client.bulk, operations=ops)
            check_bulk_response(resp, expected=len(ops) // 2)
        self._call("_refresh", self.client.indices.refresh, index=name)
        LOG.info("indexed %d documents into Elasticsearch index %s", len(docs), name)

    def search(self, queries: Sequence[str], k: int) -> list[Hits]:
        out: list[Hits] = []
        for start in range(0, len(queries), self.batch_size):
            batch = queries[start : start + self.batch_size]
            searches: list[dict] = []
            for q in batch:
                searches.append({"index": self.index_name})
                searches.append(
                    {
                        "query": {"match": {FIELD: {"query": q}}},
                        "size": k,
                        "_source": False,
                        "track_total_hits": False,
                    }
                )
            resp = self._call("_msearch", self.client.msearch, searches=searches)
            responses = resp.get("responses") or []
            if len(responses) != len(batch):
                raise BackendError(
                    f"Elasticsearch _msearch returned {len(responses)} responses for "
                    f"{len(batch)} queries"
                )
            for j, r in enumerate(responses):
                if "error" in r:
                    raise BackendError(
                        f"Elasticsearch query {start + j} failed: {_redact(_reason(r['error']))}"
                    )
                hits = [(int(h["_id"]), float(h["_score"])) for h in r["hits"]["hits"]]
                hits.sort(key=lambda h: (-h[1], h[0]))
                out.append(hits)
        return out

    def close(self) -> None:
        try:
            if self.created and not self.keep_index:
                self._call("index delete", self.client.indices.delete, index=self.index_name)
        finally:
            self.client.close()


def _reason(error) -> str:
    if isinstance(error, dict):
        root = (error.get("root_cause") or [{}])[0]
        return f"{error.get('type', root.get('type', '?'))}: {error.get('reason', root.get('reason', ''))}"
    return str(error)


def _api_reason(err) -> str:
    body = getattr(err, "body", None)
    if isinstance(body, dict) and "error" in body:
        return _reason(body["error"])
    return str(getattr(err, "message", err))


def check_bulk_response(resp, expected: int) -> None:
    """Raise a clear error naming the documents a ``_bulk`` request failed to index."""
    items = resp.get("items") or []
    failed = []
    for item in items:
        ((_, res),) = item.items()
        if res.get("error") is not None or int(res.get("status", 200)) >= 300:
            failed.append(
                (res.get("_id", "?"), res.get("status"), _reason(res.get("error", "unknown")))
            )
    if failed:
        shown = "; ".join(f"document {i} (HTTP {s}: {r})" for i, s, r in failed[:5])
        more = f" and {len(failed) - 5} more" if len(failed) > 5 else ""
        raise BackendError(
            f"Elasticsearch _bulk rejected {len(failed)} of {len(items)} documents: "
            f"{_redact(shown)}{more}"
        )
    if resp.get("errors"):
        raise BackendError("Elasticsearch _bulk reported errors but no failed item")
    if len(items) != expected:
        raise BackendError(
            f"Elasticsearch _bulk answered {len(items)} items for {expected} documents"
        )


# --------------------------------------------------------------------------- memory
def retrieve_memory(
    backend, train: Split, queries: Split, k: int, exclude_self: bool, max_words: int = 600
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
        return BM25sBackend(k1=k1, b=b, threads=threads, engine=bm25s_engine)
    if name == "elasticsearch":
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
        f"unknown BM25 backend {name!r}; expected one of {', '.join(BACKENDS)}", field="backend"
    )


def build_memories(
    backend,
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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m relift.selfmem.bm25",
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
    args = ap.parse_args(argv)

    train = load_split(args.train, args.src_field, args.trg_field)
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
    backend = make_backend(
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
    try:
        build_memories(backend, train, splits, args.out_dir, args.top_k, args.max_words)
    finally:
        backend.close()


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
