"""A tiny local HTTP server speaking the subset of the Elasticsearch REST API that
relift.selfmem.memory's Elasticsearch backend uses, for offline tests with the official client.

Supported: ``GET /`` (cluster info), ``HEAD/PUT/DELETE /{index}``, ``POST /_bulk`` and
``/{index}/_bulk`` (NDJSON ``index``/``create``/``delete`` actions), ``POST /{index}/_refresh``,
``POST /_msearch`` and ``/{index}/_msearch`` (NDJSON), ``POST /{index}/_search``, with ``match``
queries scored by Lucene's BM25 (``idf = ln(1 + (N - df + 0.5) / (df + 0.5))``,
``tf / (tf + k1 * (1 - b + b * dl / avgdl))`` with Lucene's one-byte length norms), k1/b taken
from the index's similarity settings. Documents become searchable only after a refresh, as in
Elasticsearch. Every response carries ``X-Elastic-Product: Elasticsearch``.

Fault injection for tests: ``fail_bulk_ids`` (documents whose indexing fails with a per-item
error), ``unavailable`` (answer the next N requests with HTTP 503), ``require_auth`` (an
``Authorization`` header value that every request must carry), ``no_product_header``.
"""

from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

from relift.selfmem.memory import analyze

PRODUCT = "Elasticsearch"
CONTENT_TYPE = "application/vnd.elasticsearch+json;compatible-with=9"


# Lucene's SmallFloat int <-> byte4 (document length norms)
def _long_to_int4(i: int) -> int:
    num_bits = i.bit_length()
    if num_bits < 4:
        return i
    shift = num_bits - 4
    encoded = (i >> shift) & 0x07
    return encoded | ((shift + 1) << 3)


def _int4_to_long(i: int) -> int:
    bits = i & 0x07
    shift = (i >> 3) - 1
    return bits if shift == -1 else (bits | 0x08) << shift


_NUM_FREE = 255 - _long_to_int4(2**31 - 1)


def lucene_norm_length(length: int) -> int:
    """A field length as Lucene stores and decodes it (exact below 24, ~3 significant bits above)."""
    byte = length if length < _NUM_FREE else _NUM_FREE + _long_to_int4(length - _NUM_FREE)
    return byte if byte < _NUM_FREE else _NUM_FREE + _int4_to_long(byte - _NUM_FREE)


class _Index:
    def __init__(self, body: dict):
        settings = body.get("settings", {})
        settings = settings.get("index", settings)
        self.settings = settings
        self.mappings = body.get("mappings", {})
        sims = settings.get("similarity", {})
        props = self.mappings.get("properties", {})
        self.k1, self.b = 1.2, 0.75
        for field in props.values():
            sim = sims.get(field.get("similarity", ""), {})
            if sim.get("type") == "BM25":
                self.k1, self.b = float(sim.get("k1", 1.2)), float(sim.get("b", 0.75))
        analyzers = settings.get("analysis", {}).get("analyzer", {})
        for field in props.values():
            name = field.get("analyzer")
            if name is None or name == "standard":
                continue
            a = analyzers.get(name)
            if (
                a is None
                or a.get("tokenizer") != "standard"
                or a.get("filter", []) not in (["lowercase"], [])
            ):
                raise ValueError(
                    f"stub supports only standard+lowercase analyzers, got {name}: {a}"
                )
        self.pending: dict[str, dict] = {}
        self.docs: dict[str, dict] = {}  # searchable (refreshed), insertion ordered
        self.order: list[str] = []
        self._stats: dict = {}

    def refresh(self):
        for _id, src in self.pending.items():
            if _id not in self.docs:
                self.order.append(_id)
            self.docs[_id] = src
        self.pending.clear()
        self.order = [i for i in self.order if i in self.docs]
        self._stats = {}  # per field: postings, lengths, df (rebuilt lazily after a refresh)

    def _field_stats(self, field: str):
        if field not in self._stats:
            postings: dict[str, dict[int, int]] = {}
            lengths = {}
            for rank, i in enumerate(self.order):
                toks = analyze(self.docs[i].get(field, ""))
                if not toks:
                    continue  # Lucene's docCount counts documents that have the field
                lengths[rank] = len(toks)
                for t in toks:
                    postings.setdefault(t, {}).setdefault(rank, 0)
                    postings[t][rank] += 1
            self._stats[field] = (postings, lengths)
        return self._stats[field]

    def search(self, field: str, text: str, size: int) -> list[tuple[str, float]]:
        q = analyze(text)
        postings, lengths = self._field_stats(field)
        n = len(lengths)
        if not q or n == 0:
            return []
        avgdl = sum(lengths.values()) / n
        scores: dict[int, float] = {}
        for t in q:  # a repeated query term counts once per occurrence, as in Lucene
            docs = postings.get(t)
            if not docs:
                continue
            idf = math.log(1 + (n - len(docs) + 0.5) / (len(docs) + 0.5))
            for rank, tf in docs.items():
                norm = self.k1 * (1 - self.b + self.b * lucene_norm_length(lengths[rank]) / avgdl)
                scores[rank] = scores.get(rank, 0.0) + idf * tf / (tf + norm)
        best = sorted((-s, rank) for rank, s in scores.items() if s > 0)[:size]
        return [(self.order[rank], -s) for s, rank in best]


class ESStub:
    """Run with ``with ESStub() as es: ... es.url ...``."""

    def __init__(
        self,
        fail_bulk_ids=(),
        unavailable: int = 0,
        require_auth: str | None = None,
        no_product_header: bool = False,
    ):
        self.indices: dict[str, _Index] = {}
        self.fail_bulk_ids = {str(i) for i in fail_bulk_ids}
        self.unavailable = unavailable
        self.require_auth = require_auth
        self.no_product_header = no_product_header
        self.requests: list[tuple[str, str, dict]] = []
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # quiet
                pass

            def _body(self) -> bytes:
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _send(self, status: int, obj=None):
                data = b"" if obj is None or self.command == "HEAD" else json.dumps(obj).encode()
                self.send_response(status)
                if not stub.no_product_header:
                    self.send_header("X-Elastic-Product", PRODUCT)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if data:
                    self.wfile.write(data)

            def _handle(self):
                body = self._body()
                url = urlsplit(self.path)
                parts = [unquote(p) for p in url.path.split("/") if p]
                with stub.lock:
                    stub.requests.append((self.command, url.path, dict(self.headers)))
                    if stub.unavailable > 0:
                        stub.unavailable -= 1
                        return self._send(
                            503, _err("unavailable_shards_exception", "stub is unavailable")
                        )
                    if stub.require_auth and self.headers.get("Authorization") != stub.require_auth:
                        return self._send(
                            401, _err("security_exception", "missing authentication credentials")
                        )
                    try:
                        status, obj = stub.dispatch(self.command, parts, body)
                    except _Fail as f:
                        status, obj = f.status, _err(f.kind, f.reason)
                return self._send(status, obj)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    # ------------------------------------------------------------------ API
    def dispatch(self, method: str, parts: list[str], body: bytes):
        if not parts:
            if method in ("GET", "HEAD"):
                return 200, {
                    "name": "relift-stub",
                    "cluster_name": "relift-stub",
                    "cluster_uuid": "stub",
                    "version": {
                        "number": "9.1.0",
                        "build_flavor": "default",
                        "lucene_version": "10.2.2",
                        "minimum_wire_compatibility_version": "8.19.0",
                        "minimum_index_compatibility_version": "8.0.0",
                    },
                    "tagline": "You Know, for Search",
                }
            raise _Fail(405, "illegal_argument_exception", f"{method} / not allowed")
        if parts[-1] == "_bulk" and method in ("POST", "PUT"):
            return 200, self.bulk(parts[0] if len(parts) == 2 else None, body)
        if parts[-1] == "_msearch" and method in ("POST", "GET"):
            return 200, self.msearch(parts[0] if len(parts) == 2 else None, body)
        if len(parts) == 2 and parts[1] == "_refresh" and method in ("POST", "GET"):
            self._index(parts[0]).refresh()
            return 200, {"_shards": {"total": 1, "successful": 1, "failed": 0}}
        if len(parts) == 2 and parts[1] == "_search" and method in ("POST", "GET"):
            return 200, self.search(parts[0], json.loads(body or b"{}"))
        if len(parts) == 1:
            name = parts[0]
            if method == "HEAD":
                return (200 if name in self.indices else 404), None
            if method == "PUT":
                if name in self.indices:
                    raise _Fail(
                        400, "resource_already_exists_exception", f"index [{name}] already exists"
                    )
                try:
                    self.indices[name] = _Index(json.loads(body or b"{}"))
                except ValueError as err:
                    raise _Fail(400, "illegal_argument_exception", str(err)) from None
                return 200, {"acknowledged": True, "shards_acknowledged": True, "index": name}
            if method == "DELETE":
                self._index(name)
                del self.indices[name]
                return 200, {"acknowledged": True}
            if method == "GET":
                idx = self._index(name)
                return 200, {name: {"settings": {"index": idx.settings}, "mappings": idx.mappings}}
        raise _Fail(
            400, "illegal_argument_exception", f"stub does not support {method} /{'/'.join(parts)}"
        )

    def _index(self, name: str) -> _Index:
        if name not in self.indices:
            raise _Fail(404, "index_not_found_exception", f"no such index [{name}]")
        return self.indices[name]

    def bulk(self, default_index: str | None, body: bytes) -> dict:
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        items, errors, i = [], False, 0
        while i < len(lines):
            ((action, meta),) = lines[i].items()
            name = meta.get("_index", default_index)
            _id = str(meta.get("_id"))
            i += 1
            src = None
            if action in ("index", "create"):
                src = lines[i]
                i += 1
            res = {"_index": name, "_id": _id}
            if name not in self.indices:
                res.update(
                    status=404,
                    error={
                        "type": "index_not_found_exception",
                        "reason": f"no such index [{name}]",
                    },
                )
            elif _id in self.fail_bulk_ids:
                res.update(
                    status=400,
                    error={
                        "type": "document_parsing_exception",
                        "reason": f"[1:9] failed to parse field [text] of document {_id}",
                    },
                )
            elif action == "delete":
                idx = self.indices[name]
                found = _id in idx.docs or _id in idx.pending
                idx.docs.pop(_id, None)
                idx.pending.pop(_id, None)
                res.update(status=200 if found else 404, result="deleted" if found else "not_found")
            else:
                self.indices[name].pending[_id] = src
                res.update(status=201, result="created", _version=1)
            errors = errors or "error" in res
            items.append({action: res})
        return {"took": 1, "errors": errors, "items": items}

    def _query(self, name: str, body: dict) -> dict:
        idx = self._index(name)
        size = int(body.get("size", 10))
        query = body.get("query", {"match_all": {}})
        if "match" not in query:
            raise _Fail(
                400, "parsing_exception", f"stub supports only match queries, got {list(query)}"
            )
        ((field, spec),) = query["match"].items()
        text = spec["query"] if isinstance(spec, dict) else spec
        hits = idx.search(field, text, size)
        return {
            "took": 1,
            "timed_out": False,
            "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
            "hits": {
                "max_score": hits[0][1] if hits else None,
                "hits": [{"_index": name, "_id": i, "_score": s} for i, s in hits],
            },
        }

    def search(self, name: str, body: dict) -> dict:
        return self._query(name, body)

    def msearch(self, default_index: str | None, body: bytes) -> dict:
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        responses = []
        for header, query in zip(lines[0::2], lines[1::2], strict=True):
            name = header.get("index", default_index)
            try:
                responses.append({**self._query(name, query), "status": 200})
            except _Fail as f:
                responses.append({**_err(f.kind, f.reason), "status": f.status})
        return {"took": 1, "responses": responses}


class _Fail(Exception):
    def __init__(self, status: int, kind: str, reason: str):
        super().__init__(reason)
        self.status, self.kind, self.reason = status, kind, reason


def _err(kind: str, reason: str) -> dict:
    return {
        "error": {"root_cause": [{"type": kind, "reason": reason}], "type": kind, "reason": reason}
    }
