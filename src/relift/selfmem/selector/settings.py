"""Settings of the memory selector's CLIs, declared once (see :mod:`relift.settings`).

:class:`SelectorSettings` mirrors config.yaml's ``selfmem.selector`` section (a field's default is
the embedded default's value; tests/test_defaults.py compares them) and
:class:`ScratchEncoderSettings` its ``scratch`` sub-section with the depth and length the
from-scratch encoder shares with the selector. A rule passes the section as one ``--settings``
JSON value, without :data:`WORKFLOW_KEYS` (the keys the workflow reads itself). A new selector
setting therefore touches config.yaml, the schema (workflow/schemas/config.schema.yaml) and
this file.

The section's keys that belong to the shared training loop (``lr``, ``warmup_steps``,
``max_steps``, ``eval_every``, ``patience``) are fields of :class:`relift.train.TrainConfig`;
:data:`SELECTOR_TRAIN_DEFAULTS` holds the loop's values for the selector (config.yaml's, and the
recipe's fixed choices that the section does not name).
"""

from __future__ import annotations

from dataclasses import dataclass

from relift.settings import setting

POOLINGS = ("mean", "cls")


@dataclass
class SelectorSettings:
    """``selfmem.selector``: the cross-encoder, its training pools and its scoring."""

    encoder: str = setting(
        "minilm",
        "encoder it starts from: minilm (bundled all-MiniLM-L6-v2), a folder or a hub name "
        "(the workflow's `scratch` is the folder of the from-scratch encoder job)",
    )
    layers: int = setting(2, "encoder layers kept (0 = all)")
    pooling: str = setting(
        "mean", "encoder states fed to the head: mean (mean-pooled) or cls", choices=POOLINGS
    )
    max_length: int = setting(128, "tokens of a (source, candidate) pair, truncated longest-first")
    train_examples: int = setting(400, "training pools: the first N training inputs (0 = all)")
    temperature: float = setting(0.5, "τ of the target distribution softmax(minmax(Δ) / τ)")
    batch_size: int = setting(8, "candidate pools per update")
    dev_max_examples: int = setting(200, "dev inputs of the selection-quality evaluation (0 = all)")
    score_batch_size: int = setting(64, "(source, candidate) pairs per scoring batch")


# the training loop's settings of the selector (config.yaml's values; those the section does not
# name are the recipe's fixed choices: AdamW with weight decay 0.01, cosine decay to 0.1 lr)
SELECTOR_TRAIN_DEFAULTS = {
    "lr": 2e-4,
    "warmup_steps": 5,
    "max_steps": 60,
    "eval_every": 30,
    "patience": 0,
    "optimizer": "adamw",
    "scheduler": "cosine",
    "weight_decay": 0.01,
    "min_lr_ratio": 0.1,
    "log_every": 10,
}
# loop settings the selector's CLI derives (a checkpoint at every evaluation, the best by dev
# selection quality) or that a run does not set (micro_batch_size: DeepSpeed's)
LOOP_SET_HERE = ("save_every", "best_metric", "best_mode", "micro_batch_size")


@dataclass
class ScratchEncoderSettings:
    """``selfmem.selector.scratch`` with the selector's ``layers`` and ``max_length``: the
    randomly initialised encoder of ``encoder: scratch``."""

    hidden: int = setting(256, "hidden size (a multiple of heads)")
    heads: int = setting(4, "attention heads")
    intermediate: int = setting(1024, "FFN size")
    layers: int = setting(2, "encoder layers built (>= 1)")
    max_length: int = setting(128, "positions built: the selector's tokens per pair")


# keys of selfmem.selector that the workflow reads itself: the scratch encoder's sizes (its own
# job), the beam of the training candidates (the candidates job) and a job's GPUs
WORKFLOW_KEYS = ("scratch", "train_num_beams", "train_num_return_sequences", "gpus")
