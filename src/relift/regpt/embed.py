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
from relift.regpt.settings import EmbeddingSettings
from relift.settings import add_settings, settings_from_args


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m relift.regpt.embed",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--phrases", required=True, type=Path)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch default)")
    ap.add_argument("--output", required=True, type=Path)
    ap.add_argument("--output-normalized", required=True, type=Path)
    add_settings(ap, EmbeddingSettings)
    args = ap.parse_args(argv)
    st = settings_from_args(args, EmbeddingSettings)
    if args.threads:
        torch.set_num_threads(args.threads)
    phrases = load_phrases(require_file(args.phrases, "phrases file"))
    device = pick_device(args.device)
    rng = np.random.default_rng(0)
    sample = list(phrases[rng.choice(len(phrases), size=min(256, len(phrases)), replace=False)])
    dtype, why = choose_dtype(st.encoder, device, sample, st.dtype, batch_size=st.batch_size)
    LOG.info("encoder %s on %s in %s (%s)", st.encoder, device, dtype, why)
    tok, model = load_encoder(st.encoder, device, dtype)
    t0 = time.perf_counter()
    emb = encode(
        phrases, tok, model, batch_size=st.batch_size, max_length=st.max_length, progress=True
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
