"""A tiny but real ReGPT world for the model/loop tests: a phrase tokenizer trained on a few
State of the Union paragraphs, random 16-d phrase embeddings, an exact negatives pool and
train/dev/test Arrow splits. Built once per test session (a few seconds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

DIM = 16
DEPTH = 8


def sentences() -> list[str]:
    from relift.data import sotu

    speeches = dict(sotu.speech_files())
    sid = list(speeches)[-1]
    paras = [p["text"] for p in sotu.paragraphs(sid, speeches[sid])]
    return [" ".join(p.split()[:40]) for p in paras if len(p.split()) >= 8][:80]


def build(folder: Path) -> dict[str, Path]:
    import datasets

    from relift.regpt.negatives import search_numpy
    from relift.regpt.tokenizer import load_base_tokenizer, train_phrase_tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    texts = sentences()
    tok = train_phrase_tokenizer(load_base_tokenizer("mistral-common"), iter([texts]), 400)
    tok.save_pretrained(str(folder / "tokenizer"))
    v = len(tok)
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(v, DIM)).astype(np.float32)
    np.save(folder / "emb.npy", emb)
    normed = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    ids, scores = search_numpy(normed, DEPTH)
    np.save(folder / "neg_ids.npy", ids)
    np.save(folder / "neg_scores.npy", scores)
    splits = {"train": texts[:60], "dev": texts[60:70], "test": texts[70:]}
    for name, rows in splits.items():
        datasets.Dataset.from_dict(
            {
                "text": rows,
                "id": [str(i) for i in range(len(rows))],
                "text_length": [len(r.split()) for r in rows],
            }
        ).save_to_disk(str(folder / name))
    return {
        "tokenizer": folder / "tokenizer",
        "emb": folder / "emb.npy",
        "neg_ids": folder / "neg_ids.npy",
        "neg_scores": folder / "neg_scores.npy",
        "train": folder / "train",
        "dev": folder / "dev",
        "test": folder / "test",
        "root": folder,
    }


def common_args(w: dict[str, Path]) -> list[str]:
    return [
        "--phrase-embeddings",
        str(w["emb"]),
        "--negatives-ids",
        str(w["neg_ids"]),
        "--negatives-scores",
        str(w["neg_scores"]),
        "--train",
        str(w["train"]),
    ]


TINY_MODEL = [
    "--hidden",
    "32",
    "--layers",
    "2",
    "--heads",
    "2",
    "--intermediate",
    "64",
    "--max-positions",
    "128",
]
