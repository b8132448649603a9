"""The ``bm25s`` memory backend (embedded default): bm25s with ``method="lucene"`` (Lucene's BM25:
idf ``log(1 + (N - df + 0.5) / (df + 0.5))``, k1 1.2, b 0.75), its numba backend when numba is
installed, over the tokens of :func:`relift.selfmem.memory.analyze`.
"""

from __future__ import annotations

from collections.abc import Sequence

from relift.io import LOG
from relift.selfmem.memory import Hits, analyze


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
