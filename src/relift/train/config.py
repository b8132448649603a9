"""The training loop's settings: :class:`TrainConfig`, its CLI flags and its part of the resume
fingerprint (:mod:`relift.train.fingerprint`).

Each field is declared once with :func:`relift.settings.setting` (default and help text);
:func:`add_train_args` generates the flags (``--lr``, ``--max-steps``, ...) and ``--settings JSON``
from it, and :func:`config_from_args` reads them back.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

from relift.io import InputError
from relift.settings import add_settings, setting, settings_from_args
from relift.train.fingerprint import settings_values

LOG_POINTS = 40  # training-loss points of a run whose log_every is 0 (the default)
OPTIMIZERS = ("adamw", "lamb")
SCHEDULERS = ("cosine", "linear", "inverse_sqrt", "constant")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")


@dataclass
class TrainConfig:
    max_steps: int = setting(100, "optimizer updates")
    lr: float = setting(1e-3, "peak learning rate")
    optimizer: str = setting("adamw", "adamw or lamb", choices=OPTIMIZERS)
    weight_decay: float = setting(0.0, "decoupled weight decay (not on biases/norms)")
    betas: tuple[float, float] = setting((0.9, 0.999), "two floats")
    eps: float = setting(1e-8, "optimizer epsilon")
    scheduler: str = setting(
        "cosine", "cosine, linear (to min_lr_ratio), inverse_sqrt or constant", choices=SCHEDULERS
    )
    warmup_steps: int = setting(0, "linear warmup steps")
    # cosine floor (eta_min = 0.1 lr in the original)
    min_lr_ratio: float = setting(0.1, "cosine floor as a fraction of lr")
    cosine_steps: int = setting(0, "cosine period (0 = max steps)")
    grad_clip: float = setting(1.0, "max grad norm (0 = off)")
    grad_accum: int = setting(1, "micro-batches per update")
    precision: str = setting(
        "auto", "auto (bf16 on CUDA, fp32 on CPU), fp32, bf16, fp16", choices=PRECISIONS
    )
    device: str = setting("auto", "auto (CUDA when present), cpu or cuda", choices=DEVICES)
    gradient_checkpointing: bool = setting(False, "recompute activations in backward")
    seed: int = setting(0, "random seed")
    threads: int = setting(0, "CPU threads (0 = torch default)")
    log_every: int = setting(0, f"log every N steps (0 = about {LOG_POINTS} points over the run)")
    save_every: int = setting(0, "checkpoint every N steps (0 = at the end only)")
    keep_last: int = setting(2, "checkpoints kept")
    eval_every: int = setting(0, "evaluate every N steps (0 = at the end)")
    best_metric: str = setting("", "eval metric for best-checkpoint tracking")
    best_mode: str = setting("min", "min or max", choices=("min", "max"))
    patience: int = setting(0, "evals without improvement before stopping (0 = off)")
    export_best: bool = setting(
        True, "export the best (not the last) weights when tracking a metric"
    )
    deepspeed_config: str = setting("", "DeepSpeed JSON config (e.g. ZeRO-2); empty = off")
    # DeepSpeed's train_micro_batch_size_per_gpu ("auto"); no flag: the CLI sets it
    micro_batch_size: int = setting(0, "(set by the CLI)")
    stop_after: int = setting(0, "testing: exit with code 75 after the checkpoint of step N")
    progress: bool = setting(True, "show a progress bar")
    # False: remove out_dir/checkpoints once export_fn has written the output (resume works
    # while the run is unfinished; a finished run keeps only its metrics and its export)
    keep_checkpoints: bool = setting(
        True,
        "keep the resumable checkpoints once the output is exported "
        "(--no-keep-checkpoints removes them)",
    )

    def validate(self) -> None:
        checks = [
            (self.max_steps >= 1, "max_steps must be >= 1"),
            (self.lr > 0, "lr must be > 0"),
            (self.optimizer in OPTIMIZERS, f"unknown optimizer {self.optimizer!r}"),
            (self.scheduler in SCHEDULERS, f"unknown scheduler {self.scheduler!r}"),
            (self.precision in PRECISIONS, f"unknown precision {self.precision!r}"),
            (self.device in DEVICES, f"unknown device {self.device!r}"),
            (self.grad_accum >= 1, "grad_accum must be >= 1"),
            (self.warmup_steps >= 0, "warmup_steps must be >= 0"),
            (0 <= self.min_lr_ratio <= 1, "min_lr_ratio must be in [0, 1]"),
            (
                self.best_mode in ("min", "max"),
                f"best_mode must be min or max, not {self.best_mode!r}",
            ),
            (self.keep_last >= 1, "keep_last must be >= 1"),
            (self.log_every >= 0, f"log_every must be >= 0 (0 = about {LOG_POINTS} points)"),
        ]
        for ok, msg in checks:
            if not ok:
                raise InputError(msg)

    def fingerprint(self) -> dict[str, str]:
        """The settings a checkpoint must match to be resumed (all but the
        :data:`relift.train.fingerprint.RUN_ONLY` ones)."""
        return settings_values(self)


_DEFAULTS_DEST = "_train_defaults"
NO_FLAG = ("micro_batch_size",)  # set by the CLI from its batch size


def add_train_args(ap: argparse.ArgumentParser, **defaults) -> None:
    """Add the loop's flags (``--lr``, ``--max-steps``, ...) and ``--settings JSON`` to a CLI;
    ``defaults``: the values of the CLI's config section that differ from the dataclass defaults
    (a settings module's ``*_DEFAULTS``, checked against config.yaml by tests/test_defaults.py)."""
    add_settings(ap, TrainConfig, defaults=defaults, skip=NO_FLAG)
    ap.set_defaults(**{_DEFAULTS_DEST: defaults})


def config_from_args(args: argparse.Namespace, *classes, defaults: dict | None = None, **overrides):
    """The :class:`TrainConfig` of parsed ``args`` (dataclass default < CLI default < ``--settings``
    < flag < ``overrides``), validated.

    ``classes``: the CLI's other settings classes (added with :func:`relift.settings.add_settings`,
    sharing its ``--settings`` JSON); then ``(config, *their instances)`` is returned. Every
    setting with a flag is also written back into ``args`` (before ``overrides``), so that code
    reading ``args.seed`` sees the resolved value. ``defaults`` replaces those given to
    :func:`add_train_args` (a CLI whose section is known only after parsing)."""
    if defaults is None:
        defaults = getattr(args, _DEFAULTS_DEST, None)
    found = settings_from_args(args, TrainConfig, *classes, defaults=defaults)
    found = found if classes else (found,)
    for inst in found:
        for f in dataclasses.fields(inst):
            if f.name not in NO_FLAG:
                setattr(args, f.name, getattr(inst, f.name))
    cfg = dataclasses.replace(found[0], **overrides)
    cfg.validate()
    return (cfg, *found[1:]) if classes else cfg
