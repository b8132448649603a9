"""Mine the hard-negative pool: the ``depth`` nearest phrases of every phrase (itself included).

Inner product over the L2-normalised phrase embeddings, i.e. cosine. Writes

* ``negatives.tsv`` in the original format: ``qid<TAB>pid<TAB>rank<TAB>score``, ``depth``
  consecutive lines per qid (rank 1..depth), qids in order;
* a binary sidecar, ``negatives_ids.npy`` (int32 [V, depth]) and ``negatives_scores.npy``
  (float32 [V, depth]), that training memory-maps instead of parsing the TSV.

Backends (``--backend auto`` picks): ``torch`` (exact, chunked matmul + topk; fp16 on CUDA),
``faiss`` (exact ``IndexFlatIP``), ``numpy`` (exact, chunked brute force; the reference), and
``hnsw`` (approximate faiss HNSW, for tables of many millions of phrases).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from relift.io import LOG, InputError, atomic_path, require_file, run_cli
from relift.regpt.settings import NegativesSettings
from relift.settings import add_settings, settings_from_args


def search_numpy(x: np.ndarray, k: int, chunk: int = 1024):
    ids = np.empty((len(x), k), dtype=np.int32)
    scores = np.empty((len(x), k), dtype=np.float32)
    for s in range(0, len(x), chunk):
        sim = x[s : s + chunk] @ x.T
        part = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        ps = np.take_along_axis(sim, part, 1)
        order = np.lexsort((part, -ps), axis=1)  # score desc, then id asc for ties
        ids[s : s + chunk] = np.take_along_axis(part, order, 1)
        scores[s : s + chunk] = np.take_along_axis(ps, order, 1)
    return ids, scores


def search_torch(x: np.ndarray, k: int, device: str = "cpu", chunk: int = 4096):
    import torch

    dev = torch.device(device)
    dtype = torch.float16 if dev.type == "cuda" else torch.float32
    table = torch.from_numpy(x).to(dev, dtype)
    ids = np.empty((len(x), k), dtype=np.int32)
    scores = np.empty((len(x), k), dtype=np.float32)
    with torch.inference_mode():
        for s in range(0, len(x), chunk):
            sim = table[s : s + chunk] @ table.T
            val, idx = torch.topk(sim, k, dim=1, sorted=True)
            ids[s : s + chunk] = idx.cpu().numpy()
            scores[s : s + chunk] = val.float().cpu().numpy()
    return ids, scores


def search_faiss(x: np.ndarray, k: int, hnsw: bool = False, hnsw_m: int = 32, ef_search: int = 128):
    import faiss

    if hnsw:
        index = faiss.IndexHNSWFlat(x.shape[1], hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = max(ef_search, k)
    else:
        index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    scores, ids = index.search(x, k)
    return ids.astype(np.int32), scores.astype(np.float32)


def self_first(x: np.ndarray, ids: np.ndarray, scores: np.ndarray) -> float:
    """Put every phrase at rank 1 of its own row, in place.

    Its cosine to itself (1.0) is the maximum, so it belongs there; it can land lower only through
    exact ties with duplicate vectors (an uncased encoder sees ``" The"`` and ``"the"`` as the same
    input) or rounding. Returns the fraction of rows where the search already had the phrase at
    rank 1 or tied with rank 1 (within 1e-4), a check of the search itself.
    """
    n, k = ids.shape
    rows = np.flatnonzero(ids[:, 0] != np.arange(n))
    self_score = np.einsum("ij,ij->i", x[rows], x[rows]) if len(rows) else np.zeros(0)
    tied = int((scores[rows, 0] - self_score <= 1e-4).sum())
    for r, q in enumerate(rows):
        pos = np.flatnonzero(ids[q] == q)
        end = pos[0] if len(pos) else k - 1  # drop the phrase's later copy, or the last entry
        ids[q, 1 : end + 1] = ids[q, :end].copy()
        scores[q, 1 : end + 1] = scores[q, :end].copy()
        ids[q, 0], scores[q, 0] = q, self_score[r]
    return (n - len(rows) + tied) / n


def pick_backend(backend: str) -> str:
    if backend != "auto":
        return backend
    import torch

    if torch.cuda.is_available():
        return "torch"
    try:
        import faiss  # noqa: F401

        return "faiss"
    except ImportError:
        return "torch"


def search(x: np.ndarray, k: int, backend: str = "auto"):
    """Raw top-k inner-product search of every row of ``x`` against all rows."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if k > len(x):
        raise InputError(
            f"negatives depth {k} is larger than the phrase table ({len(x)} phrases)", field="depth"
        )
    if k < 1:
        raise InputError(f"negatives depth must be >= 1, got {k}", field="depth")
    backend = pick_backend(backend)
    if backend == "numpy":
        return search_numpy(x, k)
    if backend == "torch":
        import torch

        return search_torch(x, k, "cuda" if torch.cuda.is_available() else "cpu")
    if backend in ("faiss", "hnsw"):
        return search_faiss(x, k, hnsw=backend == "hnsw")
    raise InputError(f"unknown negatives backend {backend!r}")


def write_tsv(path: Path, ids: np.ndarray, scores: np.ndarray, chunk: int = 4096) -> None:
    k = ids.shape[1]
    ranks = np.arange(1, k + 1)
    with open(path, "w", encoding="ascii") as fh:
        for s in range(0, len(ids), chunk):
            lines = []
            for q in range(s, min(s + chunk, len(ids))):
                lines.extend(
                    f"{q}\t{p}\t{r}\t{v:.6f}\n"
                    for p, r, v in zip(ids[q].tolist(), ranks, scores[q].tolist())
                )
            fh.writelines(lines)


def read_tsv(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Parse a ``negatives.tsv`` back into (ids, scores); validates the block structure."""
    rows = np.loadtxt(path, dtype=np.float64, delimiter="\t", ndmin=2)
    q = rows[:, 0].astype(np.int64)
    k = int((q == q[0]).sum())
    ids = rows[:, 1].astype(np.int32).reshape(-1, k)
    if not (rows[:, 2].reshape(-1, k) == np.arange(1, k + 1)).all():
        raise InputError("ranks are not 1..depth in every block", path=path)
    return ids, rows[:, 3].astype(np.float32).reshape(-1, k)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m relift.regpt.negatives",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--embeddings", required=True, type=Path, help="normalised phrase embeddings")
    ap.add_argument("--phrases", type=Path, help="phrases.npy, to check the row count")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--output", required=True, type=Path, help="negatives.tsv")
    ap.add_argument("--output-ids", required=True, type=Path)
    ap.add_argument("--output-scores", required=True, type=Path)
    add_settings(ap, NegativesSettings)
    return ap


def load_embeddings(path: Path, phrases: Path | None) -> np.ndarray:
    """The normalised embeddings (float32, contiguous), checked against phrases.npy's rows."""
    x = np.load(require_file(path, "embeddings file"), mmap_mode="r")
    if phrases is not None:
        n = len(np.load(require_file(phrases, "phrases file"), mmap_mode="r"))
        if n != len(x):
            raise InputError(
                f"embeddings have {len(x)} rows but phrases.npy has {n} phrases", path=path
            )
    return x


def write_pool(args, ids: np.ndarray, scores: np.ndarray) -> None:
    with (
        atomic_path(args.output_ids) as ti,
        atomic_path(args.output_scores) as ts,
        atomic_path(args.output) as tt,
    ):
        np.save(ti, ids)
        np.save(ts, scores)
        write_tsv(tt, ids, scores)


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    st = settings_from_args(args, NegativesSettings)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    x = load_embeddings(args.embeddings, args.phrases)
    backend = pick_backend(st.backend)
    t0 = time.perf_counter()
    x = np.ascontiguousarray(x, dtype=np.float32)
    ids, scores = search(x, st.depth, backend)
    dt = time.perf_counter() - t0
    self_rank1 = self_first(x, ids, scores)
    write_pool(args, ids, scores)
    LOG.info(
        "%s: %d queries x depth %d in %.1fs (%.0f q/s); the search put the phrase itself at "
        "rank 1 (or tied with it) for %.2f%% of phrases",
        backend,
        len(ids),
        st.depth,
        dt,
        len(ids) / dt,
        100 * self_rank1,
    )


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
