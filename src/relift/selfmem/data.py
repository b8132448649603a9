"""Selfmem task data: JSONL splits with a source and a target field, and memory files.

A task is one JSONL file per split (``train``, ``dev``, ``test``); each line is an object with a
source and a target string, e.g. ``{"src": ..., "trg": ...}`` for translation or
``{"document": ..., "summary": ...}`` for summarisation. The field names are configurable.
Memory files are plain text, one memory per line, aligned with the JSONL lines.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from relift.io import InputError, read_jsonl, read_lines

SPLITS = ("train", "dev", "test")


@dataclass
class Split:
    """One split of a task: parallel lists of sources and targets (and the JSONL line numbers)."""

    path: Path
    sources: list[str]
    targets: list[str]
    lines: list[int]

    def __len__(self) -> int:
        return len(self.sources)


def one_line(text: str) -> str:
    """Text as one line (memory and hypothesis files hold one example per line)."""
    return " ".join(text.split()) if ("\n" in text or "\r" in text) else text


def load_split(
    path: str | os.PathLike,
    src_field: str = "src",
    trg_field: str = "trg",
    allow_empty: bool = False,
) -> Split:
    """Read a JSONL split; every line must hold ``src_field`` and ``trg_field`` as strings.

    Errors name the file, line and field. An empty split is an error unless ``allow_empty``.
    """
    path = Path(path)
    sources, targets, lines = [], [], []
    for lineno, rec in read_jsonl(path, (src_field, trg_field)):
        sources.append(rec[src_field])
        targets.append(rec[trg_field])
        lines.append(lineno)
    if not sources and not allow_empty:
        raise InputError(
            f"split holds no examples (expected JSON lines with fields "
            f"{src_field!r} and {trg_field!r})",
            path=path,
        )
    return Split(path, sources, targets, lines)


def load_memory(path: str | os.PathLike, split: Split) -> list[str]:
    """Memories aligned line by line with ``split``."""
    return read_lines(path, f"memory file for {split.path.name}", expected=len(split))


def read_hit_ids(path: str | os.PathLike, expected: int | None = None) -> list[list[int]]:
    """Retrieved training-example ids per example, from a ``<split>.hits.jsonl`` of the memory
    rule (``{"ids": [...], "scores": [...]}`` per line)."""
    from relift.io import read_jsonl

    out = []
    for lineno, rec in read_jsonl(path):
        ids = rec.get("ids")
        if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
            raise InputError(
                "expected a list of integer example ids", path=path, line=lineno, field="ids"
            )
        out.append(ids)
    if expected is not None and len(out) != expected:
        raise InputError(f"{len(out)} hit lists for {expected} examples", path=path)
    return out
