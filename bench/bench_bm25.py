"""BM25 memory retrieval: queries/s of relift's embedded backend against rank-bm25, same run.

    python bench/bench_bm25.py [--train results/data/tm/train.jsonl] [--queries 2000] [--k 10]

Index: the SOURCE side of the training split (the embedded default's translation memory when it
has been built, else the State of the Union sentences). Queries: sources of the same split (as
the train-split memory is built). relift's backend is bm25s (Lucene BM25, k1 1.2, b 0.75, the
numba engine when installed, else numpy); the baseline is rank_bm25.BM25Okapi on the same
analyzer's tokens (top-k via argsort of the full score vector, which is what rank-bm25 offers).
Target on 2 cores: >= 10,000 queries/s for the embedded default's index. The two backends'
top-1 hits are compared as a sanity check (they use different BM25 variants, so a few differ).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from relift.selfmem import memory
from relift.selfmem.memory import bm25s as bm25s_backend


def load_sources(path: Path) -> list[str]:
    if path.exists():
        return [
            json.loads(line)["src"]
            for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
    from relift.data import sotu

    text = " ".join(t for _, t in sotu.speech_files()[-40:])
    return [s.strip() for s in text.split(".") if len(s.split()) > 3]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--train", type=Path, default=Path("results/data/tm/train.jsonl"))
    ap.add_argument("--queries", type=int, default=2000, help="queries timed (relift: all of them)")
    ap.add_argument("--baseline-queries", type=int, default=200, help="queries timed for rank-bm25")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    docs = load_sources(args.train)
    rng = np.random.default_rng(0)
    qidx = rng.choice(len(docs), size=min(args.queries, len(docs)), replace=False)
    queries = [docs[i] for i in qidx]
    print(
        f"index: {len(docs):,} sources from {args.train if args.train.exists() else 'sotu'}; k={args.k}"
    )

    rows = {}
    for engine in ("numba", "numpy"):
        try:
            backend = bm25s_backend.BM25sBackend(threads=args.threads, engine=engine)
        except Exception as err:  # noqa: BLE001 - numba may be missing
            print(f"bm25s/{engine}: unavailable ({err})")
            continue
        t0 = time.perf_counter()
        backend.index(docs)
        t_index = time.perf_counter() - t0
        backend.search(queries[:50], args.k)  # JIT warm-up
        t0 = time.perf_counter()
        hits = backend.search(queries, args.k)
        dt = time.perf_counter() - t0
        rows[f"bm25s/{engine}"] = (len(queries) / dt, t_index, [h[0][0] if h else -1 for h in hits])

    from rank_bm25 import BM25Okapi

    tokens = [memory.analyze(d) for d in docs]
    t0 = time.perf_counter()
    rb = BM25Okapi(tokens, k1=1.2, b=0.75)
    t_index = time.perf_counter() - t0
    nb = min(args.baseline_queries, len(queries))
    t0 = time.perf_counter()
    top1 = []
    for q in queries[:nb]:
        scores = rb.get_scores(memory.analyze(q))
        top1.append(int(np.argsort(-scores, kind="stable")[: args.k][0]))
    dt = time.perf_counter() - t0
    base = nb / dt
    print(
        f"{'backend':16s} {'queries/s':>12s} {'index s':>8s} {'vs rank-bm25':>13s} {'top-1 agree':>12s}"
    )
    print(f"{'rank-bm25':16s} {base:12,.0f} {t_index:8.2f} {1.0:12.1f}x {'':>12s}")
    for name, (qps, t_idx, hits) in rows.items():
        agree = np.mean([a == b for a, b in zip(hits[:nb], top1, strict=True)])
        print(f"{name:16s} {qps:12,.0f} {t_idx:8.2f} {qps / base:12.1f}x {agree:12.1%}")
    best = max((v[0] for v in rows.values()), default=0)
    print(
        f"target >= 10,000 queries/s on 2 cores: {'met' if best >= 10_000 else 'NOT met'} ({best:,.0f})"
    )


if __name__ == "__main__":
    main()
