"""Throughput of the phrase-table steps against baselines measured in the same run.

    python bench/bench_phrase_table.py [--phrases results/regpt/phrases.npy] [--n 4000] [--nq 20000]

* embeddings: phrases/s of relift's encoder step (length batching, de-duplication of identical
  encoder inputs, bf16 only where it is faster and keeps cosine >= 0.999) against a plain fp32
  transformers loop (input order, padded batches, mean pooling). Target on 2 cores: >= 1,500
  phrases/s with MiniLM.
* negatives: queries/s of relift's exact top-101 search (backend auto and each backend) against
  faiss.IndexFlatIP and numpy brute force. Target: auto at least as fast as IndexFlatIP.
Ratios are printed against baselines measured in this run; no absolute timing is asserted.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from relift.encoders import choose_dtype, encode, load_encoder, mean_pool, normalize, pick_device
from relift.regpt import negatives as neg


def sample_phrases(path: Path, n: int) -> list[str]:
    if path.exists():
        phrases = np.load(path)
    else:  # no artifacts yet: 1-3 word n-grams of the State of the Union
        from relift.data import sotu

        words = " ".join(t for _, t in sotu.speech_files()[-5:]).split()
        phrases = np.array(
            sorted({" " + " ".join(words[i : i + 1 + i % 3]) for i in range(len(words))})
        )
    rng = np.random.default_rng(0)
    return list(phrases[rng.choice(len(phrases), size=min(n, len(phrases)), replace=False)])


@torch.inference_mode()
def plain_loop(texts, tok, model, batch_size=128):
    out = []
    for s in range(0, len(texts), batch_size):
        enc = tok(
            texts[s : s + batch_size],
            padding=True,
            truncation=True,
            max_length=64,
            return_tensors="pt",
        )
        out.append(mean_pool(model(**enc).last_hidden_state, enc["attention_mask"]).numpy())
    return np.concatenate(out)


def timed(fn, *a, repeat: int = 1, **k):
    """(result, best wall time of `repeat` runs): the machine may be shared."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = fn(*a, **k)
        best = min(best, time.perf_counter() - t0)
    return r, best


def bench_embeddings(texts):
    dev = pick_device("auto")
    tok, fp32 = load_encoder("minilm", dev, torch.float32)
    plain_loop(texts[:64], tok, fp32)
    base, t_base = timed(plain_loop, texts, tok, fp32, repeat=2)
    dtype, why = choose_dtype("minilm", dev, texts[:256])
    tok, model = load_encoder("minilm", dev, dtype)
    encode(texts[:64], tok, model)
    ours, t_ours = timed(encode, texts, tok, model, batch_size=128, repeat=2)
    cos = float((normalize(base) * normalize(ours)).sum(1).min())
    n = len(texts)
    print(
        f"embeddings ({n} phrases, {dev}, {torch.get_num_threads()} threads; relift chose {dtype}: {why})"
    )
    print(f"  plain fp32 transformers loop : {n / t_base:8.0f} phrases/s")
    print(
        f"  relift encode                : {n / t_ours:8.0f} phrases/s   ratio {t_base / t_ours:.2f}x"
        f"   (worst cosine to plain fp32 {cos:.5f}; target >= 1,500 phrases/s)"
    )


def flat_ip(x, k):
    """The baseline: a bare faiss.IndexFlatIP over the table, searched with every row."""
    import faiss

    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    scores, ids = index.search(x, k)
    return ids, scores


def bench_negatives(x, k=101):
    n = len(x)
    print(f"negatives ({n} x {x.shape[1]} normalised vectors, exact top-{k})")
    (ref_ids, _), t_flat = timed(flat_ip, x, k, repeat=5)
    print(f"  faiss IndexFlatIP            : {n / t_flat:8.0f} q/s")
    (_, _), t_np = timed(neg.search_numpy, x, k, repeat=5)
    print(
        f"  numpy brute force            : {n / t_np:8.0f} q/s   ratio to IndexFlatIP {t_flat / t_np:.2f}x"
    )
    for backend in ("torch", "auto"):
        (ids, _), t = timed(neg.search, x, k, backend, repeat=5)
        agree = float((ids == ref_ids).mean())
        name = f"relift {backend} ({neg.pick_backend(backend)})"
        print(
            f"  {name:<29}: {n / t:8.0f} q/s   ratio to IndexFlatIP {t_flat / t:.2f}x, "
            f"to numpy {t_np / t:.2f}x   (ids equal to IndexFlatIP: {agree:.4f})"
        )


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--phrases", type=Path, default=Path("results/regpt/phrases.npy"))
    ap.add_argument(
        "--embeddings", type=Path, default=Path("results/regpt/phrases_embeddings_normalized.npy")
    )
    ap.add_argument("--n", type=int, default=4000, help="phrases to embed")
    ap.add_argument("--nq", type=int, default=20000, help="table size for the negatives search")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("RELIFT_THREADS", 2)))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    try:
        import faiss

        faiss.omp_set_num_threads(args.threads)
    except ImportError:
        pass
    texts = sample_phrases(args.phrases, args.n)
    bench_embeddings(texts)
    if args.embeddings.exists():
        x = np.load(args.embeddings)[: args.nq]
    else:
        x = np.random.default_rng(0).standard_normal((args.nq, 384)).astype(np.float32)
    bench_negatives(np.ascontiguousarray(normalize(x), dtype=np.float32))


if __name__ == "__main__":
    main()
