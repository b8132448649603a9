"""Embed every phrase of ``phrases.npy`` with a mean-pooled encoder.

Writes ``phrases_embeddings.npy`` (raw, float32 [V, d]; ReGPT trains against these) and
``phrases_embeddings_normalized.npy`` (rows L2-normalised; used to mine negatives). Phrases are
batched by token length; the encoder runs on CUDA when present; with ``--dtype auto`` it runs in
bf16 on CUDA or on a CPU with native bf16 when that keeps cosine >= 0.999 to fp32 on a sample of
phrases, otherwise in fp32 (``relift.encoders.choose_dtype``; the reason is logged).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from relift.encoders import choose_dtype, encode, load_encoder, normalize, pick_device
from relift.io import LOG, atomic_path, require_file, run_cli
from relift.regpt.phrases import load_phrases


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m relift.regpt.embed",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--phrases", required=True, type=Path)
    ap.add_argument("--encoder", default="minilm", help="'minilm' (bundled), a folder or hub name")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--max-length", type=int, default=64, help="encoder tokens per phrase")
    ap.add_argument("--dtype", choices=("auto", "fp32", "bf16"), default="auto")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch default)")
    ap.add_argument("--output", required=True, type=Path)
    ap.add_argument("--output-normalized", required=True, type=Path)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    phrases = load_phrases(require_file(args.phrases, "phrases file"))
    device = pick_device(args.device)
    rng = np.random.default_rng(0)
    sample = list(phrases[rng.choice(len(phrases), size=min(256, len(phrases)), replace=False)])
    dtype, why = choose_dtype(args.encoder, device, sample, args.dtype, batch_size=args.batch_size)
    LOG.info("encoder %s on %s in %s (%s)", args.encoder, device, dtype, why)
    tok, model = load_encoder(args.encoder, device, dtype)
    t0 = time.perf_counter()
    emb = encode(
        phrases, tok, model, batch_size=args.batch_size, max_length=args.max_length, progress=True
    )
    dt = time.perf_counter() - t0
    if not np.isfinite(emb).all():
        raise RuntimeError("encoder produced non-finite embeddings")
    with atomic_path(args.output) as tmp_raw, atomic_path(args.output_normalized) as tmp_norm:
        np.save(tmp_raw, emb)
        np.save(tmp_norm, normalize(emb).astype(np.float32))
    LOG.info("%d phrases x %d dims in %.1fs (%.0f phrases/s)", *emb.shape, dt, len(emb) / dt)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
