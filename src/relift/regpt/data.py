"""Token streams of the ReGPT splits, shared by ReGPT, the token-level baseline and evaluation.

Every chunk (row of a preprocessed split) becomes the stream ``[<s>] + ids(text)``; a stream
longer than ``max_len + 1`` is cut into consecutive windows whose inputs are ``max_len`` tokens
and whose targets are the next tokens, so every token of the text is a target exactly once,
whatever the tokenizer. ReGPT and the baseline therefore see (and are scored on) the same
chunks of text.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from relift.io import InputError
from relift.regpt.losses import IGNORE

BOS, EOS = 1, 2


def load_texts(split_dir: str | os.PathLike, limit: int = 0) -> list[str]:
    """Texts of a preprocessed split folder (``datasets.save_to_disk``), in stored order."""
    import datasets

    if not os.path.isdir(split_dir):
        raise InputError("split folder does not exist", path=split_dir)
    try:
        ds = datasets.load_from_disk(str(split_dir))
    except Exception as err:
        raise InputError(f"cannot load dataset folder ({err})", path=split_dir) from None
    if "text" not in ds.column_names:
        raise InputError(
            f"column missing (columns: {ds.column_names})", path=split_dir, field="text"
        )
    texts = list(ds["text"])
    return texts[:limit] if limit else texts


def tokenize(texts: Sequence[str], tokenizer, batch: int = 2000) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    for i in range(0, len(texts), batch):
        enc = tokenizer(list(texts[i : i + batch]), add_special_tokens=False)["input_ids"]
        out.extend(np.asarray(e, dtype=np.int32) for e in enc)
    return out


def windows(token_lists: Sequence[np.ndarray], max_len: int, bos: int = BOS) -> list[np.ndarray]:
    """Streams ``[bos] + ids`` cut into windows of ``max_len + 1`` tokens overlapping by one."""
    out = []
    for ids in token_lists:
        stream = np.concatenate([[bos], ids]).astype(np.int64)
        for s in range(0, max(1, len(stream) - 1), max_len):
            w = stream[s : s + max_len + 1]
            if len(w) >= 2:
                out.append(w)
    return out


def collate(
    wins: Sequence[np.ndarray], pad_id: int = 0, pad_to: int = 1
) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (``-100`` on padding); the
    length is rounded up to a multiple of ``pad_to`` (fewer distinct shapes for the kernels)."""
    n = max(len(w) for w in wins) - 1
    n += (-n) % pad_to
    ids = torch.full((len(wins), n), pad_id, dtype=torch.long)
    labels = torch.full((len(wins), n), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(wins), n), dtype=torch.long)
    for i, w in enumerate(wins):
        t = torch.from_numpy(np.asarray(w, dtype=np.int64))
        k = len(t) - 1
        ids[i, :k] = t[:-1]
        labels[i, :k] = t[1:]
        mask[i, :k] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def count_targets(wins: Sequence[np.ndarray]) -> int:
    return int(sum(len(w) - 1 for w in wins))


def bytes_per_target(texts: Sequence[str], wins: Sequence[np.ndarray]) -> float:
    """UTF-8 bytes of ``texts`` per target token of their windows (every token is a target once):
    turns a count of training tokens into bytes of training text, comparable across tokenizers."""
    return sum(len(t.encode("utf-8")) for t in texts) / max(1, count_targets(wins))
