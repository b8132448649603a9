"""Checkpoints of the training loop: ``checkpoints/step-N/`` written under a temporary name and
renamed (a killed run never leaves a half-written checkpoint that looks complete), the last
``keep_last`` kept, the best weights in ``checkpoints/best/``.

Rotation is done here rather than by Accelerate's ``ProjectConfiguration(total_limit=…)``:
Accelerate writes ``checkpoint_N`` in place and prunes before the new one is complete, so a
run killed while saving could be left with a torn latest checkpoint and no complete one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import torch

from relift.io import LOG, atomic_dir

STATE_NAME = "trainer_state.json"
BEST = "best"


def list_checkpoints(ckpt_dir: Path) -> list[tuple[int, Path]]:
    """The complete checkpoints (with their ``trainer_state.json``), oldest first."""
    out = []
    if ckpt_dir.is_dir():
        for p in ckpt_dir.iterdir():
            m = re.fullmatch(r"step-(\d+)", p.name)
            if m and p.is_dir() and (p / STATE_NAME).exists():
                out.append((int(m.group(1)), p))
    return sorted(out)


def read_state(path: Path) -> dict:
    return json.loads((path / STATE_NAME).read_text())


def prune_checkpoints(ckpt_dir: Path, keep: int) -> None:
    """Keep the last ``keep`` checkpoints; remove the temporary folders of a killed run."""
    for _, p in list_checkpoints(ckpt_dir)[:-keep]:
        shutil.rmtree(p, ignore_errors=True)
    for p in ckpt_dir.glob(".step-*.tmp"):
        shutil.rmtree(p, ignore_errors=True)


def discard_checkpoints(ckpt_dir: Path) -> None:
    """Delete the checkpoints of a foreign run (another config or other inputs), best included."""
    for _, p in list_checkpoints(ckpt_dir):
        shutil.rmtree(p, ignore_errors=True)
    shutil.rmtree(ckpt_dir / BEST, ignore_errors=True)


def remove_checkpoints(ckpt_dir: Path) -> None:
    """Delete a finished run's checkpoints: renamed first (one atomic step, so that a run killed
    midway never resumes from a half-deleted checkpoint), then removed."""
    if not ckpt_dir.is_dir():
        return
    trash = ckpt_dir.with_name(f".{ckpt_dir.name}.trash")
    shutil.rmtree(trash, ignore_errors=True)
    ckpt_dir.rename(trash)
    size = sum(f.stat().st_size for f in trash.rglob("*") if f.is_file())
    shutil.rmtree(trash, ignore_errors=True)
    LOG.info("removed the checkpoints of the finished run (%.1f MB) from %s", size / 1e6, ckpt_dir)


def save_checkpoint(acc, ckpt_dir: Path, step: int, state: dict, keep: int) -> None:
    """Accelerate's state (all processes) plus ``state`` as ``trainer_state.json`` (main process)
    into ``.step-N.tmp``, renamed to ``step-N``; then the rotation."""
    tmp = ckpt_dir / f".step-{step}.tmp"
    if acc.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    acc.wait_for_everyone()
    acc.save_state(str(tmp))
    acc.wait_for_everyone()
    if acc.is_main_process:
        (tmp / STATE_NAME).write_text(json.dumps(state, indent=2) + "\n")
        final = ckpt_dir / f"step-{step}"
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        prune_checkpoints(ckpt_dir, keep)
    acc.wait_for_everyone()


def save_best(ckpt_dir: Path, weights: dict[str, torch.Tensor], info: dict) -> None:
    """The best weights so far (``model.safetensors``) and ``best.json``, atomically."""
    from safetensors.torch import save_file

    with atomic_dir(ckpt_dir / BEST) as tmp:
        save_file(
            {k: t.detach().cpu().contiguous() for k, t in weights.items()},
            str(tmp / "model.safetensors"),
        )
        (tmp / "best.json").write_text(json.dumps(info, indent=2) + "\n")


def load_best(ckpt_dir: Path) -> dict[str, torch.Tensor] | None:
    path = ckpt_dir / BEST / "model.safetensors"
    if not path.exists():
        return None
    from safetensors.torch import load_file

    return load_file(str(path))
