"""The ``elasticsearch`` memory backend: the official Python client against a cluster whose URL and
credentials come ONLY from the environment (``RELIFT_ES_URL``; ``RELIFT_ES_API_KEY`` or
``RELIFT_ES_USER`` + ``RELIFT_ES_PASSWORD``; optional ``RELIFT_ES_CA_CERTS``). They are never logged
or written.

The index gets one shard (global IDF statistics, like bm25s), a named BM25 similarity with the same
k1/b and a named analyzer (``standard`` tokenizer + ``lowercase``), which
:func:`relift.selfmem.memory.analyze` mirrors so that both backends agree. Documents go in with
``_bulk`` (per-item errors are checked), then ``_refresh``; queries go out as ``match`` queries in
``_msearch`` batches. Transient failures (connection errors, timeouts, HTTP 429/502/503/504) are
retried with exponential backoff.
"""

from __future__ import annotations

import logging
import os
import random
import re
import time
from collections.abc import Callable, Sequence

from relift.io import LOG, InputError
from relift.selfmem.memory import BackendError, Hits

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
ENV_VARS = (ENV_URL, ENV_USER, ENV_PASSWORD, ENV_API_KEY, ENV_CA)  # where credentials come from


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
