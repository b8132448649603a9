"""One training loop for every model of relift (ReGPT stages 1 and 2, the token-level baseline,
the Selfmem generator and selector).

API
---
::

    from relift.train import BucketedBatches, TrainConfig, train, seed_everything

    seed_everything(cfg.seed)                       # before building the model: same init
    model = build_model(...)
    batches = BucketedBatches(lengths, batch_size, seed=cfg.seed, collate=make_batch)
    result = train(model, loss_fn, batches, cfg, out_dir,
                   eval_fn=None, export_fn=None)

* ``loss_fn(model, batch, step) -> (loss, stats)``: ``model`` is the prepared (possibly
  DDP/DeepSpeed-wrapped) model: call it for the forward pass; reach its attributes through
  :func:`unwrap`. ``batch`` is whatever ``collate`` returned, with its tensors moved to the
  device. ``stats`` is a dict of numbers; ``stats["tokens"]`` (targets in the batch) drives the
  tokens/s figure. Draw any randomness from a generator seeded with ``step`` (see
  ``relift.regpt.losses.ReGPTLoss``) so a resumed run draws the same.
* ``train_batches``: any object with ``len()`` (micro-batches per epoch) and
  ``get(epoch, index)`` returning one collated micro-batch. It must be a pure function of
  (seed, epoch, index): the loop asks for micro-batch ``g = (step * grad_accum + k) *
  world_size + rank`` as ``get(g // len, g % len)``, which is what makes a resumed run consume
  exactly the data an uninterrupted one would. :class:`BucketedBatches` does this with
  length-bucketed shuffling (little padding).
* ``eval_fn(model, step) -> dict[str, float]``: runs on the main process with the unwrapped
  model in eval mode (no grad); its numbers are logged as ``kind: eval``, together with the
  ``tokens`` consumed and the ``train_seconds`` spent so far (evaluation time excluded). With
  ``cfg.best_metric`` set, the best value (``cfg.best_mode`` min/max) is tracked, the best
  weights are kept in ``out_dir/checkpoints/best/``, and after ``cfg.patience`` evaluations
  without improvement training stops early. With ``cfg.export_best`` the best weights are
  loaded back before export (Selfmem: best by dev BLEU).
* ``export_fn(model, result)``: called once at the end on the main process with the unwrapped
  model (fp32 weights) and the :class:`TrainResult`; write your final artifact there, atomically.

Outputs under ``out_dir``: ``metrics.jsonl`` (one JSON record per log/eval event),
``metrics.csv`` (the same, long format ``step,kind,name,value``), ``tb/`` (TensorBoard),
``checkpoints/step-N/`` (Accelerate state: model, optimizer, scheduler, RNG states of
python/numpy/torch, plus ``trainer_state.json`` with step, data position and best-tracking state;
written to a temporary folder and renamed, the last ``cfg.keep_last`` kept) and
``checkpoints/best/``. Rerunning with the same ``out_dir`` resumes from the latest complete
checkpoint; on CPU with a fixed seed the final weights equal those of an uninterrupted run.

Precision: ``auto`` = bf16 autocast on CUDA, fp32 on CPU (``bf16`` forces autocast on CPU too:
slow on CPUs without native bf16). Optimizers: ``lamb`` (as the original ReGPT) and ``adamw``.
Schedulers: ``cosine`` (linear warmup, then cosine to ``min_lr_ratio``·lr over
``cosine_steps``, flat afterwards), ``linear`` (warmup, then linear decay to
``min_lr_ratio``·lr), ``inverse_sqrt`` (warmup, then ∝ 1/√step), ``constant``
(warmup, then flat). ``deepspeed_config``: a DeepSpeed JSON (e.g. ZeRO-2) used through
Accelerate's DeepSpeedPlugin; ``"auto"`` values are filled from this config. Note that ZeRO
flattens parameters into partitions, so Lamb's per-tensor trust ratio becomes per-partition
under ZeRO (as it was in the original's launch).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import random
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from relift.io import LOG, InputError, atomic_dir

STATE_NAME = "trainer_state.json"
STOP_EXIT_CODE = 75  # --stop-after: "interrupted on purpose" (EX_TEMPFAIL)


# --------------------------------------------------------------------------- config
LOG_POINTS = 40  # training-loss points of a run whose log_every is 0 (the default)


def _log_window(saved: dict | None = None) -> dict:
    """Running sums of the steps since the last log record (kept in checkpoints)."""
    return {"loss": 0.0, "n": 0, "tokens": 0, "time": 0.0, **(saved or {})}


@dataclass
class TrainConfig:
    max_steps: int = 100  # optimizer updates
    lr: float = 1e-3
    optimizer: str = "adamw"  # adamw | lamb
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    scheduler: str = "cosine"  # cosine | linear | inverse_sqrt | constant
    warmup_steps: int = 0
    min_lr_ratio: float = 0.1  # cosine floor (eta_min = 0.1 lr in the original)
    cosine_steps: int = 0  # cosine period T_max; 0 = max_steps
    grad_clip: float = 1.0  # max gradient norm; 0 = off
    grad_accum: int = 1
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    device: str = "auto"  # auto (CUDA when present) | cpu | cuda
    gradient_checkpointing: bool = False
    seed: int = 0
    threads: int = 0  # torch CPU threads; 0 = leave as is
    log_every: int = 0  # 0 = about LOG_POINTS points over the run
    save_every: int = 0  # checkpoint every N steps (0 = only at the end)
    keep_last: int = 2
    eval_every: int = 0  # 0 = only at the end (when eval_fn is given)
    best_metric: str = ""  # eval metric to track ("" = none)
    best_mode: str = "min"  # min | max
    patience: int = 0  # evals without improvement before stopping (0 = never stop early)
    export_best: bool = True
    deepspeed_config: str = ""  # DeepSpeed JSON path ("" = plain Accelerate)
    micro_batch_size: int = 0  # for DeepSpeed's train_micro_batch_size_per_gpu ("auto")
    stop_after: int = 0  # testing: exit (code 75) right after the checkpoint of this step
    progress: bool = True
    # False: remove out_dir/checkpoints once export_fn has written the output (resume works
    # while the run is unfinished; a finished run keeps only its metrics and its export)
    keep_checkpoints: bool = True

    def validate(self) -> None:
        checks = [
            (self.max_steps >= 1, "max_steps must be >= 1"),
            (self.lr > 0, "lr must be > 0"),
            (self.optimizer in ("adamw", "lamb"), f"unknown optimizer {self.optimizer!r}"),
            (
                self.scheduler in ("cosine", "linear", "inverse_sqrt", "constant"),
                f"unknown scheduler {self.scheduler!r}",
            ),
            (
                self.precision in ("auto", "fp32", "bf16", "fp16"),
                f"unknown precision {self.precision!r}",
            ),
            (self.device in ("auto", "cpu", "cuda"), f"unknown device {self.device!r}"),
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


def add_train_args(ap: argparse.ArgumentParser, **defaults) -> None:
    """Add the loop's flags (``--lr``, ``--max-steps``, ...) to a CLI; ``defaults`` overrides."""
    g = ap.add_argument_group("training loop (relift.train.loop)")
    d = {**asdict(TrainConfig()), **defaults}
    help_ = {
        "max_steps": "optimizer updates",
        "lr": "peak learning rate",
        "optimizer": "adamw or lamb",
        "weight_decay": "decoupled weight decay (not on biases/norms)",
        "betas": "two floats",
        "eps": "optimizer epsilon",
        "scheduler": "cosine, linear (to min_lr_ratio), inverse_sqrt or constant",
        "warmup_steps": "linear warmup steps",
        "min_lr_ratio": "cosine floor as a fraction of lr",
        "cosine_steps": "cosine period (0 = max steps)",
        "grad_clip": "max grad norm (0 = off)",
        "grad_accum": "micro-batches per update",
        "precision": "auto (bf16 on CUDA, fp32 on CPU), fp32, bf16, fp16",
        "device": "auto (CUDA when present), cpu or cuda",
        "gradient_checkpointing": "recompute activations in backward",
        "seed": "random seed",
        "threads": "CPU threads (0 = torch default)",
        "log_every": f"log every N steps (0 = about {LOG_POINTS} points over the run)",
        "save_every": "checkpoint every N steps (0 = at the end only)",
        "keep_last": "checkpoints kept",
        "eval_every": "evaluate every N steps (0 = at the end)",
        "best_metric": "eval metric for best-checkpoint tracking",
        "best_mode": "min or max",
        "patience": "evals without improvement before stopping (0 = off)",
        "export_best": "export the best (not the last) weights when tracking a metric",
        "deepspeed_config": "DeepSpeed JSON config (e.g. ZeRO-2); empty = off",
        "micro_batch_size": "(set by the CLI)",
        "stop_after": "testing: exit with code 75 after the checkpoint of step N",
        "progress": "show a progress bar",
        "keep_checkpoints": "keep the resumable checkpoints once the output is exported "
        "(--no-keep-checkpoints removes them)",
    }
    for f in fields(TrainConfig):
        if f.name == "micro_batch_size":
            continue
        flag = "--" + f.name.replace("_", "-")
        default = d[f.name]
        if isinstance(default, bool):
            g.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=default, help=help_.get(f.name)
            )
        elif isinstance(default, tuple):
            g.add_argument(flag, type=float, nargs=2, default=default, help=help_.get(f.name))
        else:
            kw: dict[str, Any] = {"type": type(default), "default": default}
            if f.name in ("optimizer", "scheduler", "precision", "best_mode", "device"):
                kw["choices"] = {
                    "optimizer": ("adamw", "lamb"),
                    "scheduler": ("cosine", "linear", "inverse_sqrt", "constant"),
                    "precision": ("auto", "fp32", "bf16", "fp16"),
                    "best_mode": ("min", "max"),
                    "device": ("auto", "cpu", "cuda"),
                }[f.name]
            g.add_argument(flag, help=f"{help_.get(f.name, '')} (default: %(default)s)", **kw)


def config_from_args(args: argparse.Namespace, **overrides) -> TrainConfig:
    vals = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    if "betas" in vals:
        vals["betas"] = tuple(vals["betas"])
    cfg = TrainConfig(**{**vals, **overrides})
    cfg.validate()
    return cfg


# --------------------------------------------------------------------------- helpers
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (1 << 32))
    torch.manual_seed(seed)


def unwrap(model):
    """The plain module under DDP / DeepSpeed / compile wrappers."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if inner is None:
            return model
        model = inner


def to_device(obj, device):
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


class BucketedBatches:
    """Deterministic, length-bucketed micro-batches: ``get(epoch, index)``.

    Per epoch: a permutation of the examples seeded by (seed, epoch); consecutive runs of
    ``bucket * batch_size`` examples are sorted by length and cut into batches (little padding);
    the batch order is shuffled again. ``collate(list_of_example_indices)`` builds a batch."""

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        seed: int,
        collate: Callable[[list[int]], Any],
        bucket: int = 50,
        drop_last: bool = False,
        max_tokens: int = 0,
    ):
        if batch_size < 1:
            raise InputError(f"batch size must be >= 1, got {batch_size}")
        if max_tokens < 0:
            raise InputError(f"max_tokens must be >= 0, got {max_tokens}")
        if len(lengths) == 0:
            raise InputError("no training examples")
        self.lengths = np.asarray(lengths)
        self.batch_size, self.seed, self.collate = batch_size, seed, collate
        self.bucket, self.drop_last, self.max_tokens = bucket, drop_last, max_tokens
        self._cache: tuple[int, list[np.ndarray]] | None = None
        n = len(self.lengths)
        self._len = n // batch_size if drop_last else -(-n // batch_size)
        if max_tokens:  # token budgets: as many batches per epoch as epoch 0 has
            self._len = len(self._plan(0))
        if self._len == 0:
            raise InputError(f"{n} examples do not fill one batch of {batch_size}")

    def __len__(self) -> int:
        return self._len

    def _cut(self, part: np.ndarray) -> list[np.ndarray]:
        """Length-sorted examples -> batches: ``batch_size`` each, or (``max_tokens``) as many as
        keep (examples x longest length) within the token budget (at least one)."""
        if not self.max_tokens:
            return [part[i : i + self.batch_size] for i in range(0, len(part), self.batch_size)]
        out, start = [], 0
        for i in range(1, len(part) + 1):
            if i == len(part) or (i + 1 - start) * self.lengths[part[i]] > self.max_tokens:
                out.append(part[start:i])
                start = i
        return out

    def _plan(self, epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch])
        perm = rng.permutation(len(self.lengths))
        span = self.bucket * self.batch_size
        if self.max_tokens:  # spans of about `bucket` token-budget batches
            mean = max(1.0, float(self.lengths.mean()))
            span = max(1, int(self.bucket * self.max_tokens / mean))
        batches = []
        for s in range(0, len(perm), span):
            part = perm[s : s + span]
            batches.extend(self._cut(part[np.argsort(self.lengths[part], kind="stable")]))
        if self.drop_last and not self.max_tokens:
            batches = [b for b in batches if len(b) == self.batch_size]
        order = rng.permutation(len(batches))
        return [batches[i] for i in order]

    def epoch_plan(self, epoch: int) -> list[np.ndarray]:
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        plan = self._plan(epoch)
        if len(plan) < self._len:  # token budgets: a shorter epoch repeats its first batches
            plan = plan + plan[: self._len - len(plan)]
        plan = plan[: self._len]
        self._cache = (epoch, plan)
        return plan

    def get(self, epoch: int, index: int):
        return self.collate(self.epoch_plan(epoch)[index].tolist())


# --------------------------------------------------------------------------- optimizers
class Lamb(torch.optim.Optimizer):
    """LAMB (You et al., 2020): Adam moments with bias correction, a decoupled weight decay
    inside the update, and a per-tensor trust ratio ``‖w‖ / ‖update‖`` (1 when either is 0)."""

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas=(0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
    ):
        if lr <= 0 or eps <= 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError("invalid Lamb hyperparameters")
        super().__init__(
            params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay}
        )

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            b1, b2 = group["betas"]
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            for p in params:
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, dtype=torch.float32)
                    state["exp_avg_sq"] = torch.zeros_like(p, dtype=torch.float32)
                state["step"] += 1
            t = self.state[params[0]]["step"]
            grads = [p.grad.float() for p in params]
            m = [self.state[p]["exp_avg"] for p in params]
            v = [self.state[p]["exp_avg_sq"] for p in params]
            # moments (one fused pass per list), then the bias-corrected Adam direction
            torch._foreach_lerp_(m, grads, 1 - b1)
            torch._foreach_mul_(v, b2)
            torch._foreach_addcmul_(v, grads, grads, value=1 - b2)
            den = torch._foreach_sqrt(v)
            torch._foreach_div_(den, math.sqrt(1 - b2**t))
            torch._foreach_add_(den, group["eps"])
            upd = torch._foreach_div(m, den)
            torch._foreach_div_(upd, 1 - b1**t)
            w = [p.float() for p in params]
            if group["weight_decay"]:
                torch._foreach_add_(upd, w, alpha=group["weight_decay"])
            # per-tensor trust ratio ||w|| / ||update|| (1 where either norm is 0)
            w_norm = torch.stack(torch._foreach_norm(w))
            u_norm = torch.stack(torch._foreach_norm(upd))
            trust = torch.where(
                (w_norm > 0) & (u_norm > 0), w_norm / u_norm, torch.ones_like(w_norm)
            )
            torch._foreach_mul_(upd, list((-group["lr"] * trust).unbind()))
            for p, u in zip(params, upd):
                p.add_(u.to(p.dtype))
        return loss


def param_groups(model: torch.nn.Module, weight_decay: float):
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg.weight_decay)
    if cfg.optimizer == "lamb":
        return Lamb(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(
        groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay
    )


def lr_factor(step: int, kind: str, warmup: int, total: int, min_ratio: float) -> float:
    """Multiplier of the peak lr for the update with 0-based index ``step``."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if kind == "constant":
        return 1.0
    if kind == "inverse_sqrt":
        return math.sqrt(max(1, warmup) / (step + 1))
    if kind == "linear":
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_ratio + (1 - min_ratio) * (1 - progress)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def make_scheduler(optimizer, cfg: TrainConfig):
    total = cfg.cosine_steps or cfg.max_steps

    def fn(step: int) -> float:
        return lr_factor(step, cfg.scheduler, cfg.warmup_steps, total, cfg.min_lr_ratio)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)


# --------------------------------------------------------------------------- checkpoints
def list_checkpoints(ckpt_dir: Path) -> list[tuple[int, Path]]:
    out = []
    if ckpt_dir.is_dir():
        for p in ckpt_dir.iterdir():
            m = re.fullmatch(r"step-(\d+)", p.name)
            if m and p.is_dir() and (p / STATE_NAME).exists():
                out.append((int(m.group(1)), p))
    return sorted(out)


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


def _prune(ckpt_dir: Path, keep: int) -> None:
    for _, p in list_checkpoints(ckpt_dir)[:-keep]:
        shutil.rmtree(p, ignore_errors=True)
    for p in ckpt_dir.glob(".step-*.tmp"):  # left over by a killed run
        shutil.rmtree(p, ignore_errors=True)


@dataclass
class TrainResult:
    step: int = 0
    tokens: int = 0
    best_step: int = -1
    best_value: float | None = None
    stopped_early: bool = False
    resumed_from: int = 0
    train_seconds: float = 0.0
    last_metrics: dict = field(default_factory=dict)


class _Metrics:
    """metrics.jsonl + metrics.csv (long format) + TensorBoard, truncated to ``step`` on resume."""

    def __init__(self, out_dir: Path, resume_step: int, enabled: bool):
        self.enabled = enabled
        self.jsonl, self.csv = out_dir / "metrics.jsonl", out_dir / "metrics.csv"
        self.tb = None
        if not enabled:
            return
        keep = []
        if resume_step and self.jsonl.exists():
            for line in self.jsonl.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a torn last line of a killed run
                if rec.get("step", 0) <= resume_step:
                    keep.append(rec)
        self.jsonl.write_text("".join(json.dumps(r) + "\n" for r in keep))
        with open(self.csv, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["step", "kind", "name", "value"])
            for r in keep:
                self._csv_rows(w, r)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(
                str(out_dir / "tb"), purge_step=resume_step + 1 if resume_step else None
            )
        except Exception as err:  # tensorboard missing: the files still get written
            LOG.warning("no TensorBoard logging (%s)", err)

    @staticmethod
    def _csv_rows(w, rec: dict) -> None:
        for k, v in rec.items():
            if k not in ("step", "kind") and isinstance(v, (int, float)):
                w.writerow([rec["step"], rec["kind"], k, v])

    def log(self, rec: dict) -> None:
        if not self.enabled:
            return
        with open(self.jsonl, "a") as fh:
            fh.write(json.dumps(rec) + "\n")
        with open(self.csv, "a", newline="") as fh:
            self._csv_rows(csv.writer(fh), rec)
        if self.tb is not None:
            for k, v in rec.items():
                if k not in ("step", "kind") and isinstance(v, (int, float)):
                    self.tb.add_scalar(f"{rec['kind']}/{k}", v, rec["step"])
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def resolve_precision(precision: str) -> str:
    if precision == "auto":
        return "bf16" if torch.cuda.is_available() else "no"
    return {"fp32": "no"}.get(precision, precision)


def _deepspeed_plugin(cfg: TrainConfig, mixed: str, out_dir: Path):
    from accelerate import DeepSpeedPlugin

    path = Path(cfg.deepspeed_config)
    try:
        ds = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"cannot read DeepSpeed config ({err})", path=path) from None
    fill = {
        "train_micro_batch_size_per_gpu": cfg.micro_batch_size or 1,
        "gradient_accumulation_steps": cfg.grad_accum,
        "gradient_clipping": cfg.grad_clip or 0.0,
    }
    for k, v in fill.items():
        if ds.get(k, "auto") == "auto":
            ds[k] = v
    ds.pop("train_batch_size", None) if ds.get("train_batch_size") == "auto" else None
    for key, on in (("bf16", mixed == "bf16"), ("fp16", mixed == "fp16")):
        if key in ds and ds[key].get("enabled") == "auto":
            ds[key]["enabled"] = on
    if cfg.optimizer == "lamb" and "optimizer" not in ds:
        ds.setdefault("zero_allow_untested_optimizer", True)
    (out_dir / "deepspeed_config.json").write_text(json.dumps(ds, indent=2) + "\n")
    if "WORLD_SIZE" not in os.environ:  # a single process without a launcher
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        os.environ.update(
            RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
        )
    return DeepSpeedPlugin(hf_ds_config=ds), ds


# --------------------------------------------------------------------------- the loop
VOLATILE = (
    "stop_after",
    "progress",
    "log_every",
    "threads",
    "save_every",
    "keep_last",
    "keep_checkpoints",
)


def run_fingerprint(cfg: TrainConfig, extra: dict | None) -> dict:
    """What a checkpoint must match to be resumed: the config (less logging/testing knobs) and
    the caller's ``fingerprint`` (data, model, inputs)."""
    c = {k: v for k, v in asdict(cfg).items() if k not in VOLATILE}
    return json.loads(json.dumps({"config": c, "extra": extra or {}}, default=str))


def train(
    model: torch.nn.Module,
    loss_fn: Callable,
    train_batches,
    cfg: TrainConfig,
    out_dir: str | os.PathLike,
    eval_fn: Callable | None = None,
    export_fn: Callable | None = None,
    fingerprint: dict | None = None,
) -> TrainResult:
    """Train ``model`` for ``cfg.max_steps`` updates (see the module docstring).

    ``fingerprint``: JSON-able description of the run (data, model, inputs). A checkpoint
    written under a different fingerprint or config is not resumed: the checkpoints are
    discarded and training starts afresh."""
    from accelerate import Accelerator, DistributedDataParallelKwargs
    from accelerate.utils import broadcast_object_list

    cfg.validate()
    log_every = cfg.log_every or max(1, cfg.max_steps // LOG_POINTS)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_dir = out_dir / "checkpoints"
    shutil.rmtree(out_dir / ".checkpoints.trash", ignore_errors=True)  # a killed removal
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    mixed = resolve_precision(
        cfg.precision if cfg.device != "cpu" else {"auto": "fp32"}.get(cfg.precision, cfg.precision)
    )
    kwargs: dict[str, Any] = {}
    ds_config = None
    if cfg.deepspeed_config:
        kwargs["deepspeed_plugin"], ds_config = _deepspeed_plugin(cfg, mixed, out_dir)
    if int(os.environ.get("WORLD_SIZE", "1")) == 1 and ds_config is None:
        # one process: a run in the same interpreter (tests, notebooks) may ask for another
        # precision than the last one; Accelerate keeps the first otherwise and refuses
        from accelerate.state import AcceleratorState

        AcceleratorState._reset_state()
    acc = Accelerator(
        mixed_precision=mixed,
        gradient_accumulation_steps=cfg.grad_accum,
        step_scheduler_with_optimizer=False,
        cpu=cfg.device == "cpu",
        kwargs_handlers=[DistributedDataParallelKwargs(broadcast_buffers=False)],
        **kwargs,
    )
    main = acc.is_main_process
    if cfg.gradient_checkpointing:
        inner = unwrap(model)
        enable = getattr(inner, "activation_checkpointing_enable", None) or getattr(
            inner, "gradient_checkpointing_enable", None
        )
        if enable is None:
            LOG.warning("model has no gradient checkpointing; training without it")
        else:
            enable()
            if hasattr(getattr(inner, "config", None), "use_cache"):
                inner.config.use_cache = False
    if ds_config is not None and "optimizer" in ds_config:
        from accelerate.utils import DummyOptim

        optimizer = DummyOptim(param_groups(model, cfg.weight_decay), lr=cfg.lr)
    else:
        optimizer = make_optimizer(model, cfg)
    if ds_config is not None and "scheduler" in ds_config:
        from accelerate.utils import DummyScheduler

        scheduler = DummyScheduler(
            optimizer, total_num_steps=cfg.max_steps, warmup_num_steps=cfg.warmup_steps
        )
    else:
        scheduler = make_scheduler(optimizer, cfg)
    model, optimizer, scheduler = acc.prepare(model, optimizer, scheduler)

    # ---- resume
    res = TrainResult()
    bad_evals = 0
    ckpts = list_checkpoints(ckpt_dir)
    fp = run_fingerprint(cfg, fingerprint)
    window = None  # the open log window of the checkpoint resumed from
    if ckpts:
        old = json.loads((ckpts[-1][1] / STATE_NAME).read_text()).get("fingerprint")
        if old != fp:
            LOG.warning(
                "checkpoints in %s belong to a different run (config or inputs changed): "
                "starting afresh",
                ckpt_dir,
            )
            acc.wait_for_everyone()
            if main:
                for _, p in ckpts:
                    shutil.rmtree(p, ignore_errors=True)
                shutil.rmtree(ckpt_dir / "best", ignore_errors=True)
            acc.wait_for_everyone()
            ckpts = []
    if ckpts:
        step0, path = ckpts[-1]
        acc.load_state(str(path))
        st = json.loads((path / STATE_NAME).read_text())
        res.step, res.tokens = st["step"], st["tokens"]
        res.best_step, res.best_value = st["best_step"], st["best_value"]
        res.stopped_early, bad_evals = st["stopped_early"], st["bad_evals"]
        # a resumed run reports the whole run: time so far and the last evaluation
        res.train_seconds = st.get("train_seconds", 0.0)
        res.last_metrics = st.get("last_metrics", {})
        window = st.get("log_window")
        res.resumed_from = res.step
        LOG.info("resumed from %s (step %d of %d)", path, res.step, cfg.max_steps)
    acc.wait_for_everyone()
    metrics = _Metrics(out_dir, res.step, main)
    n_batches, world, rank = len(train_batches), acc.num_processes, acc.process_index

    def position(step: int, micro: int) -> tuple[int, int]:
        g = (step * cfg.grad_accum + micro) * world + rank
        return divmod(g, n_batches)

    def save_checkpoint(step: int) -> None:
        tmp = ckpt_dir / f".step-{step}.tmp"
        if main:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        acc.wait_for_everyone()
        acc.save_state(str(tmp))
        acc.wait_for_everyone()
        if main:
            epoch, index = position(step, 0)
            state = {
                "step": step,
                "tokens": res.tokens,
                "epoch": epoch,
                "batch_index": index,
                "best_step": res.best_step,
                "best_value": res.best_value,
                "bad_evals": bad_evals,
                "stopped_early": res.stopped_early,
                "train_seconds": res.train_seconds,
                "last_metrics": res.last_metrics,
                # the steps since the last log record, so that a resumed run logs the same
                # averages as an uninterrupted one
                "log_window": win,
                "fingerprint": fp,
            }
            (tmp / STATE_NAME).write_text(json.dumps(state, indent=2) + "\n")
            final = ckpt_dir / f"step-{step}"
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            _prune(ckpt_dir, cfg.keep_last)
        acc.wait_for_everyone()

    def run_eval(step: int) -> None:
        nonlocal bad_evals
        result = [None]
        if main:
            inner = unwrap(model)
            was_training = inner.training
            inner.eval()
            with torch.no_grad(), acc.autocast():
                result[0] = {k: float(v) for k, v in eval_fn(inner, step).items()}
            inner.train(was_training)
        if world > 1:
            broadcast_object_list(result)
        m = result[0]
        res.last_metrics = m
        # where the run is when evaluated: targets consumed and training seconds so far (for
        # learning curves against data and wall-clock; eval and checkpoint time not included)
        at = {"tokens": res.tokens, "train_seconds": round(res.train_seconds, 3)}
        metrics.log({"kind": "eval", "step": step, **at, **m})
        LOG.info("eval step %d: %s", step, ", ".join(f"{k} {v:.4g}" for k, v in m.items()))
        if not cfg.best_metric:
            return
        if cfg.best_metric not in m:
            raise InputError(
                f"eval_fn returned no {cfg.best_metric!r} (got {sorted(m)})", field="best_metric"
            )
        v = m[cfg.best_metric]
        better = res.best_value is None or (
            v < res.best_value if cfg.best_mode == "min" else v > res.best_value
        )
        state = acc.get_state_dict(model) if better else None
        if better:
            res.best_value, res.best_step, bad_evals = v, step, 0
            if main:
                from safetensors.torch import save_file

                with atomic_dir(ckpt_dir / "best") as tmp:
                    save_file(
                        {k: t.detach().cpu().contiguous() for k, t in state.items()},
                        str(tmp / "model.safetensors"),
                    )
                    (tmp / "best.json").write_text(
                        json.dumps({"step": step, cfg.best_metric: v, "metrics": m}, indent=2)
                        + "\n"
                    )
        else:
            bad_evals += 1
            if cfg.patience and bad_evals >= cfg.patience:
                res.stopped_early = True
                LOG.info(
                    "early stop at step %d: no better %s for %d evals (best %.4g at %d)",
                    step,
                    cfg.best_metric,
                    bad_evals,
                    res.best_value,
                    res.best_step,
                )

    # ---- train
    model.train()
    bar = None
    if cfg.progress and main and res.step < cfg.max_steps and not res.stopped_early:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=cfg.max_steps,
            initial=res.step,
            desc="train",
            unit="step",
            dynamic_ncols=True,
            mininterval=2.0,
        )
    win = _log_window(window)
    last_eval = -1
    last_save = res.step if ckpts else -1
    while res.step < cfg.max_steps and not res.stopped_early:
        t0 = time.perf_counter()
        step = res.step
        step_loss, step_tokens, grad_norm, stats = 0.0, 0, None, {}
        for micro in range(cfg.grad_accum):
            epoch, index = position(step, micro)
            batch = to_device(train_batches.get(epoch, index), acc.device)
            with acc.accumulate(model):
                with acc.autocast():
                    loss, stats = loss_fn(model, batch, step)
                acc.backward(loss)
                if acc.sync_gradients:
                    if ds_config is not None:  # DeepSpeed clips (gradient_clipping) and steps
                        grad_norm = acc.clip_grad_norm_(model.parameters(), cfg.grad_clip or 1e9)
                    elif cfg.grad_clip:
                        grad_norm = acc.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                if acc.sync_gradients:
                    scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            step_loss += float(loss.detach()) / cfg.grad_accum
            step_tokens += int(stats.get("tokens", 0))
        if not acc.sync_gradients:
            raise RuntimeError("gradient accumulation out of sync with the step counter")
        res.step += 1
        dt = time.perf_counter() - t0
        res.tokens += step_tokens * world
        res.train_seconds += dt
        win["loss"] += step_loss
        win["n"] += 1
        win["tokens"] += step_tokens * world
        win["time"] += dt
        if not math.isfinite(step_loss):
            raise RuntimeError(f"loss is {step_loss} at step {step}; lower the learning rate")
        if bar is not None:
            bar.update(1)
        if res.step % log_every == 0 or res.step == cfg.max_steps:
            lr = optimizer.param_groups[0]["lr"]
            epochs = res.step * cfg.grad_accum * world / n_batches
            rec = {
                "kind": "train",
                "step": res.step,
                "epoch": round(epochs, 4),
                "loss": win["loss"] / win["n"],
                "lr": lr,
                "tokens_per_s": win["tokens"] / max(win["time"], 1e-9),
                "tokens": res.tokens,
                **{k: float(v) for k, v in stats.items() if k != "tokens"},
            }
            if grad_norm is not None:
                rec["grad_norm"] = float(grad_norm)
            metrics.log(rec)
            if bar is not None:
                bar.set_postfix(
                    loss=f"{rec['loss']:.4f}", lr=f"{lr:.2e}", tok_s=f"{rec['tokens_per_s']:.0f}"
                )
            LOG.info(
                "step %d/%d loss %.4f lr %.3e %.0f tokens/s",
                res.step,
                cfg.max_steps,
                rec["loss"],
                lr,
                rec["tokens_per_s"],
            )
            win = _log_window()
        if eval_fn is not None and cfg.eval_every and res.step % cfg.eval_every == 0:
            run_eval(res.step)
            last_eval = res.step
        done = res.step >= cfg.max_steps or res.stopped_early
        if (
            (cfg.save_every and res.step % cfg.save_every == 0)
            or done
            or res.step == cfg.stop_after
        ):
            if eval_fn is not None and done and last_eval != res.step:
                run_eval(res.step)  # the final eval is part of the final checkpoint's state
                last_eval = res.step
            save_checkpoint(res.step)
            last_save = res.step
        if cfg.stop_after and res.step == cfg.stop_after and not done:
            LOG.warning("stopping after step %d on request (--stop-after)", res.step)
            metrics.close()
            if bar is not None:
                bar.close()
            raise SystemExit(STOP_EXIT_CODE)
    if bar is not None:
        bar.close()
    if eval_fn is not None and last_eval != res.step and last_save != res.step:
        run_eval(res.step)
    metrics.close()

    # ---- export
    inner = unwrap(model)
    if cfg.best_metric and cfg.export_best and (ckpt_dir / "best" / "model.safetensors").exists():
        from safetensors.torch import load_file

        best = load_file(str(ckpt_dir / "best" / "model.safetensors"))
        inner.load_state_dict(best, strict=False)
        LOG.info(
            "exporting the best weights (%s %.4g at step %d)",
            cfg.best_metric,
            res.best_value,
            res.best_step,
        )
    if export_fn is not None and main:
        export_fn(inner, res)
    acc.wait_for_everyone()
    if export_fn is not None and main and not cfg.keep_checkpoints:
        remove_checkpoints(ckpt_dir)
    return res
