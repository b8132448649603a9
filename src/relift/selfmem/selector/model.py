"""The Selfmem selector model: a cross-encoder over (source, candidate) pairs, its folder and its
scoring of candidate pools (training and the CLI: :mod:`relift.selfmem.selector.cli`).

Model: a Hugging Face encoder (``AutoModel``) reads the text pair ``source [SEP] candidate``; the
mean-pooled (``mean``) or first-token (``cls``) state goes through a linear head to one score per
pair. Selector folder: ``encoder/`` (the encoder and its tokenizer, ``save_pretrained``),
``head.safetensors``, ``selector.json`` (pooling, max_length, ...) and ``train_result.json``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from relift.io import LOG, InputError, save_tokenizer
from relift.selfmem.selector.settings import POOLINGS

SPEC_FILE = "selector.json"


class Selector(nn.Module):
    """Encoder + linear head: one score per (source, candidate) pair."""

    def __init__(self, encoder: nn.Module, pooling: str = "mean"):
        super().__init__()
        if pooling not in POOLINGS:
            raise InputError(f"unknown pooling {pooling!r}; expected mean or cls", field="pooling")
        self.encoder, self.pooling = encoder, pooling
        self.head = nn.Linear(encoder.config.hidden_size, 1)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        kw = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        h = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **kw).last_hidden_state
        if self.pooling == "cls":
            pooled = h[:, 0]
        else:
            m = attention_mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return self.head(pooled).squeeze(-1)


def _truncate_layers(encoder: nn.Module, layers: int) -> None:
    if layers <= 0:
        return
    stack = getattr(getattr(encoder, "encoder", None), "layer", None)
    if not isinstance(stack, nn.ModuleList):
        raise InputError(
            f"--layers works with BERT/RoBERTa-style encoders (encoder.layer); "
            f"{type(encoder).__name__} has none",
            field="layers",
        )
    if layers < len(stack):
        encoder.encoder.layer = stack[:layers]
        encoder.config.num_hidden_layers = layers


def build_selector(name: str, pooling: str = "mean", layers: int = 0):
    """(tokenizer, Selector) initialised from an encoder (``minilm``, a folder or a hub name)."""
    from transformers import AutoModel, AutoTokenizer

    from relift.encoders import resolve_encoder

    path = resolve_encoder(name)
    try:
        tok = AutoTokenizer.from_pretrained(path)
        enc = AutoModel.from_pretrained(path)
    except OSError as err:
        raise InputError(f"cannot load selector encoder {name!r}: {err}") from None
    _truncate_layers(enc, layers)
    return tok, Selector(enc, pooling)


def save_selector(model: Selector, tok, folder: Path, spec: dict) -> None:
    from safetensors.torch import save_file

    model.encoder.save_pretrained(str(folder / "encoder"))
    save_tokenizer(tok, folder / "encoder")
    save_file(
        {k: v.detach().cpu().contiguous() for k, v in model.head.state_dict().items()},
        str(folder / "head.safetensors"),
    )
    (folder / SPEC_FILE).write_text(json.dumps(spec, indent=2) + "\n")


def load_selector(folder: str | Path, device="cpu"):
    """(tokenizer, Selector in eval mode, spec) from a selector folder."""
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    folder = Path(folder)
    if not (folder / SPEC_FILE).exists():
        raise InputError(f"not a selector folder (no {SPEC_FILE})", path=folder)
    spec = json.loads((folder / SPEC_FILE).read_text())
    tok = AutoTokenizer.from_pretrained(str(folder / "encoder"))
    model = Selector(AutoModel.from_pretrained(str(folder / "encoder")), spec["pooling"])
    model.head.load_state_dict(load_file(str(folder / "head.safetensors")))
    return tok, model.to(device).eval(), spec


def encode_pairs(tok, sources: Sequence[str], candidates: Sequence[str], max_length: int) -> dict:
    enc = tok(
        list(sources),
        list(candidates),
        truncation="longest_first",
        max_length=max_length,
        padding=True,
        return_tensors="pt",
    )
    return {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}


@torch.inference_mode()
def score_pools(
    model: Selector,
    tok,
    sources: Sequence[str],
    pools: Sequence[Sequence[str]],
    max_length: int = 128,
    batch_size: int = 64,
    log_every: int = 0,
) -> list[list[float]]:
    """Selector score of every candidate of every pool (``out[i][j]`` for ``pools[i][j]``).

    Pairs are batched by token length; each score is written back to its own (input, candidate)
    slot."""
    if len(sources) != len(pools):
        raise InputError(f"{len(sources)} sources but {len(pools)} pools")
    device = next(model.parameters()).device
    pairs = [(i, j) for i, p in enumerate(pools) for j in range(len(p))]
    lengths = [len(sources[i]) + len(pools[i][j]) for i, j in pairs]
    order = sorted(range(len(pairs)), key=lambda n: lengths[n])
    out = [[0.0] * len(p) for p in pools]
    t0 = time.time()
    for b, s in enumerate(range(0, len(order), batch_size)):
        chunk = [pairs[n] for n in order[s : s + batch_size]]
        enc = encode_pairs(
            tok, [sources[i] for i, _ in chunk], [pools[i][j] for i, j in chunk], max_length
        )
        scores = model(**{k: v.to(device) for k, v in enc.items()}).float().cpu().tolist()
        for (i, j), v in zip(chunk, scores, strict=True):
            out[i][j] = v
        if log_every and (b + 1) % log_every == 0:
            done = s + len(chunk)
            LOG.info("%d/%d pairs scored (%.0f/s)", done, len(pairs), done / (time.time() - t0))
    return out


def pick(pools: Sequence[Sequence[str]], scores: Sequence[Sequence[float]]) -> list[str]:
    """The best-scoring candidate of each pool (ties: the earlier, i.e. the beam's order)."""
    return [
        p[max(range(len(p)), key=lambda j: (s[j], -j))] for p, s in zip(pools, scores, strict=True)
    ]
