"""The resume fingerprint of a training run: everything that decides its result.

A checkpoint is resumed only when the run that wrote it had the same fingerprint (see
:func:`relift.train.loop.train`): the loop's own settings (:meth:`TrainConfig.fingerprint`) and
what a trainer passes with :func:`run_fingerprint`: its other settings (dataclasses, or a dict of
argument values such as the input paths), the size and mtime of its input files, and a hash of
the code it runs (the trainer's module and every relift module it imports, as
:mod:`relift.codedeps` finds them). Keys in :data:`RUN_ONLY` change how a run is logged, kept or
tested, never what it computes, and are left out.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# settings that change how a run is logged, tested, placed or kept, not what it computes: a
# checkpoint written under other values of these is still resumed
RUN_ONLY = (
    "stop_after",
    "progress",
    "log_every",
    "threads",
    "save_every",
    "keep_last",
    "keep_checkpoints",
    "device",
    "output",
    "work_dir",
)


def settings_values(*settings: Any) -> dict[str, str]:
    """The values of ``settings`` (dataclass instances or dicts) as strings, keys sorted, the
    :data:`RUN_ONLY` ones and private ones (``_x``) left out."""
    out: dict[str, str] = {}
    for s in settings:
        items = dataclasses.asdict(s) if dataclasses.is_dataclass(s) else dict(s)
        for k, v in sorted(items.items()):
            if k not in RUN_ONLY and not k.startswith("_"):
                out[k] = str(v)
    return out


def stamp(path: str | os.PathLike) -> list[list]:
    """``[path, size, mtime]`` of a file, or of every file under a folder (none if missing)."""
    p = Path(path)
    files = sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else [p]
    return [[str(f), f.stat().st_size, int(f.stat().st_mtime)] for f in files if f.exists()]


def code_hash(*modules: str) -> str:
    """Hash of the files of ``modules`` and of every relift module they import."""
    from relift.codedeps import SRC, module_files

    root = SRC / "relift"
    h = hashlib.sha256()
    for rel in sorted({f for m in modules for f in module_files(m)}):
        h.update(rel.encode() + b"\0" + (root / rel).read_bytes())
    return h.hexdigest()[:16]


def run_fingerprint(
    *settings: Any, inputs: Iterable = (), code: Iterable[str] = (), **extra: Any
) -> dict:
    """A trainer's part of the fingerprint: its settings (dataclasses or dicts; the loop adds
    its own TrainConfig), the stamps of its ``inputs`` (files or folders; ``None`` skipped), the
    hash of its ``code`` (module names) and any ``extra`` JSON values."""
    fp: dict[str, Any] = {"settings": settings_values(*settings)}
    fp["inputs"] = [stamp(p) for p in inputs if p]
    code = tuple(code)
    if code:
        fp["code"] = code_hash(*code)
    fp.update(extra)
    return fp
