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

Outputs under ``out_dir``: metrics (``relift.train.metrics``: ``metrics.jsonl``,
``metrics.csv``, ``tb/``), ``checkpoints/step-N/`` (``relift.train.checkpoint``: Accelerate
state: model, optimizer, scheduler, RNG states of python/numpy/torch, plus
``trainer_state.json`` with step, data position and best-tracking state; the last
``cfg.keep_last`` kept) and ``checkpoints/best/``. Rerunning with the same ``out_dir`` resumes
from the latest complete checkpoint written under the same settings and ``fingerprint``; on CPU
with a fixed seed the final weights equal those of an uninterrupted run.

Settings: ``relift.train.config``; optimizers (``lamb``, ``adamw``) and schedules (``cosine``,
``linear``, ``inverse_sqrt``, ``constant``): ``relift.train.optimizer``; precision and DeepSpeed:
``relift.train.runtime``. Under ZeRO, parameters are flattened into partitions, so Lamb's
per-tensor trust ratio becomes per-partition (as it was in the original's launch).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from relift.io import LOG, InputError
from relift.train import checkpoint as ckpt
from relift.train.batches import BucketedBatches as BucketedBatches  # re-exported (the API)
from relift.train.config import LOG_POINTS, TrainConfig
from relift.train.config import add_train_args as add_train_args
from relift.train.config import config_from_args as config_from_args
from relift.train.metrics import MetricsWriter, log_window
from relift.train.optimizer import Lamb as Lamb
from relift.train.optimizer import lr_factor as lr_factor
from relift.train.optimizer import make_optimizer as make_optimizer
from relift.train.optimizer import make_scheduler as make_scheduler
from relift.train.runtime import (
    enable_gradient_checkpointing,
    make_accelerator,
    optimizer_and_scheduler,
    to_device,
    unwrap,
)
from relift.train.runtime import seed_everything as seed_everything

STOP_EXIT_CODE = 75  # --stop-after: "interrupted on purpose" (EX_TEMPFAIL)


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


class _Run:
    """The state of one training run between the steps of :func:`train`."""

    def __init__(self, acc, model, cfg: TrainConfig, out_dir: Path, n_batches: int, fp: dict):
        self.acc, self.model, self.cfg = acc, model, cfg
        self.ckpt_dir = out_dir / "checkpoints"
        self.n_batches, self.world, self.rank = n_batches, acc.num_processes, acc.process_index
        self.fp = {"config": cfg.fingerprint(), "extra": fp}
        self.res = TrainResult()
        self.bad_evals = 0
        self.window = log_window()  # the steps since the last log record
        self.last_eval = self.last_save = -1

    def position(self, step: int, micro: int) -> tuple[int, int]:
        """(epoch, index) of the micro-batch ``micro`` of update ``step`` on this process."""
        g = (step * self.cfg.grad_accum + micro) * self.world + self.rank
        return divmod(g, self.n_batches)

    def resume(self) -> None:
        """Load the latest checkpoint of this run; discard those of another run."""
        found = ckpt.list_checkpoints(self.ckpt_dir)
        if found and ckpt.read_state(found[-1][1]).get("fingerprint") != self.fp:
            LOG.warning(
                "checkpoints in %s belong to a different run (config or inputs changed): "
                "starting afresh",
                self.ckpt_dir,
            )
            self.acc.wait_for_everyone()
            if self.acc.is_main_process:
                ckpt.discard_checkpoints(self.ckpt_dir)
            found = []
        if found:
            step, path = found[-1]
            self.acc.load_state(str(path))
            st = ckpt.read_state(path)
            r = self.res
            r.step, r.tokens = st["step"], st["tokens"]
            r.best_step, r.best_value = st["best_step"], st["best_value"]
            r.stopped_early, self.bad_evals = st["stopped_early"], st["bad_evals"]
            # a resumed run reports the whole run: time so far and the last evaluation
            r.train_seconds = st.get("train_seconds", 0.0)
            r.last_metrics = st.get("last_metrics", {})
            self.window = log_window(st.get("log_window"))
            r.resumed_from = self.last_save = r.step
            LOG.info("resumed from %s (step %d of %d)", path, r.step, self.cfg.max_steps)
        self.acc.wait_for_everyone()

    def save(self) -> None:
        r = self.res
        epoch, index = self.position(r.step, 0)
        state = {
            "step": r.step,
            "tokens": r.tokens,
            "epoch": epoch,
            "batch_index": index,
            "best_step": r.best_step,
            "best_value": r.best_value,
            "bad_evals": self.bad_evals,
            "stopped_early": r.stopped_early,
            "train_seconds": r.train_seconds,
            "last_metrics": r.last_metrics,
            # the steps since the last log record, so that a resumed run logs the same averages
            "log_window": self.window,
            "fingerprint": self.fp,
        }
        ckpt.save_checkpoint(self.acc, self.ckpt_dir, r.step, state, self.cfg.keep_last)
        self.last_save = r.step

    def step(self, loss_fn, train_batches, optimizer, scheduler, clip_always: bool) -> dict:
        """One optimizer update over ``grad_accum`` micro-batches; the train record's numbers."""
        acc, cfg, step = self.acc, self.cfg, self.res.step
        t0 = time.perf_counter()
        loss_sum, tokens, grad_norm, stats = 0.0, 0, None, {}
        for micro in range(cfg.grad_accum):
            batch = to_device(train_batches.get(*self.position(step, micro)), acc.device)
            with acc.accumulate(self.model):
                with acc.autocast():
                    loss, stats = loss_fn(self.model, batch, step)
                acc.backward(loss)
                if acc.sync_gradients and (cfg.grad_clip or clip_always):
                    # under DeepSpeed this only reads the norm: it clips (gradient_clipping)
                    grad_norm = acc.clip_grad_norm_(self.model.parameters(), cfg.grad_clip or 1e9)
                optimizer.step()
                if acc.sync_gradients:
                    scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            loss_sum += float(loss.detach()) / cfg.grad_accum
            tokens += int(stats.get("tokens", 0))
        if not acc.sync_gradients:
            raise RuntimeError("gradient accumulation out of sync with the step counter")
        dt = time.perf_counter() - t0
        self.res.step += 1
        self.res.tokens += tokens * self.world
        self.res.train_seconds += dt
        w = self.window
        w["loss"] += loss_sum
        w["n"] += 1
        w["tokens"] += tokens * self.world
        w["time"] += dt
        if not math.isfinite(loss_sum):
            raise RuntimeError(f"loss is {loss_sum} at step {step}; lower the learning rate")
        extra = {k: float(v) for k, v in stats.items() if k != "tokens"}
        return {**extra, **({} if grad_norm is None else {"grad_norm": float(grad_norm)})}

    def train_record(self, lr: float, numbers: dict) -> dict:
        """The ``kind: train`` record of the steps since the last one (and a new window)."""
        r, w = self.res, self.window
        rec = {
            "kind": "train",
            "step": r.step,
            "epoch": round(r.step * self.cfg.grad_accum * self.world / self.n_batches, 4),
            "loss": w["loss"] / w["n"],
            "lr": lr,
            "tokens_per_s": w["tokens"] / max(w["time"], 1e-9),
            "tokens": r.tokens,
            **{k: v for k, v in numbers.items() if k != "grad_norm"},
        }
        if "grad_norm" in numbers:
            rec["grad_norm"] = numbers["grad_norm"]
        self.window = log_window()
        LOG.info(
            "step %d/%d loss %.4f lr %.3e %.0f tokens/s",
            r.step,
            self.cfg.max_steps,
            rec["loss"],
            lr,
            rec["tokens_per_s"],
        )
        return rec

    def evaluate(self, eval_fn: Callable, metrics: MetricsWriter) -> None:
        """Run ``eval_fn`` on the main process, log it, track the best value (and stop early)."""
        from accelerate.utils import broadcast_object_list

        step, result = self.res.step, [None]
        if self.acc.is_main_process:
            inner = unwrap(self.model)
            was_training = inner.training
            inner.eval()
            with torch.no_grad(), self.acc.autocast():
                result[0] = {k: float(v) for k, v in eval_fn(inner, step).items()}
            inner.train(was_training)
        if self.world > 1:
            broadcast_object_list(result)
        m = self.res.last_metrics = result[0]
        # where the run is when evaluated: targets consumed and training seconds so far (for
        # learning curves against data and wall-clock; eval and checkpoint time not included)
        at = {"tokens": self.res.tokens, "train_seconds": round(self.res.train_seconds, 3)}
        metrics.log({"kind": "eval", "step": step, **at, **m})
        LOG.info("eval step %d: %s", step, ", ".join(f"{k} {v:.4g}" for k, v in m.items()))
        self.last_eval = step
        if self.cfg.best_metric:
            self.track_best(m)

    def track_best(self, m: dict) -> None:
        cfg, r = self.cfg, self.res
        if cfg.best_metric not in m:
            raise InputError(
                f"eval_fn returned no {cfg.best_metric!r} (got {sorted(m)})", field="best_metric"
            )
        v = m[cfg.best_metric]
        if r.best_value is None or (
            v < r.best_value if cfg.best_mode == "min" else v > r.best_value
        ):
            weights = self.acc.get_state_dict(self.model)  # a collective call under DeepSpeed
            r.best_value, r.best_step, self.bad_evals = v, r.step, 0
            if self.acc.is_main_process:
                info = {"step": r.step, cfg.best_metric: v, "metrics": m}
                ckpt.save_best(self.ckpt_dir, weights, info)
            return
        self.bad_evals += 1
        if cfg.patience and self.bad_evals >= cfg.patience:
            r.stopped_early = True
            LOG.info(
                "early stop at step %d: no better %s for %d evals (best %.4g at %d)",
                r.step,
                cfg.best_metric,
                self.bad_evals,
                r.best_value,
                r.best_step,
            )


def progress_bar(cfg: TrainConfig, res: TrainResult, main: bool):
    if not (cfg.progress and main and res.step < cfg.max_steps and not res.stopped_early):
        return None
    from tqdm.auto import tqdm

    return tqdm(
        total=cfg.max_steps,
        initial=res.step,
        desc="train",
        unit="step",
        dynamic_ncols=True,
        mininterval=2.0,
    )


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
    cfg.validate()
    log_every = cfg.log_every or max(1, cfg.max_steps // LOG_POINTS)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out_dir / ".checkpoints.trash", ignore_errors=True)  # a killed removal
    acc, ds_config = make_accelerator(cfg, out_dir)
    if cfg.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    optimizer, scheduler = optimizer_and_scheduler(model, cfg, ds_config)
    model, optimizer, scheduler = acc.prepare(model, optimizer, scheduler)
    fp = json.loads(json.dumps(fingerprint or {}, default=str))
    run = _Run(acc, model, cfg, out_dir, len(train_batches), fp)
    run.resume()
    res = run.res
    metrics = MetricsWriter(out_dir, res.step, acc.is_main_process)
    model.train()
    bar = progress_bar(cfg, res, acc.is_main_process)
    while res.step < cfg.max_steps and not res.stopped_early:
        numbers = run.step(loss_fn, train_batches, optimizer, scheduler, ds_config is not None)
        if bar is not None:
            bar.update(1)
        if res.step % log_every == 0 or res.step == cfg.max_steps:
            rec = run.train_record(optimizer.param_groups[0]["lr"], numbers)
            metrics.log(rec)
            if bar is not None:
                bar.set_postfix(
                    loss=f"{rec['loss']:.4f}",
                    lr=f"{rec['lr']:.2e}",
                    tok_s=f"{rec['tokens_per_s']:.0f}",
                )
        if eval_fn is not None and cfg.eval_every and res.step % cfg.eval_every == 0:
            run.evaluate(eval_fn, metrics)
        done = res.step >= cfg.max_steps or res.stopped_early
        if (
            (cfg.save_every and res.step % cfg.save_every == 0)
            or done
            or res.step == cfg.stop_after
        ):
            if eval_fn is not None and done and run.last_eval != res.step:
                run.evaluate(eval_fn, metrics)  # the final eval is part of the final checkpoint
            run.save()
        if cfg.stop_after and res.step == cfg.stop_after and not done:
            LOG.warning("stopping after step %d on request (--stop-after)", res.step)
            metrics.close()
            if bar is not None:
                bar.close()
            raise SystemExit(STOP_EXIT_CODE)
    if bar is not None:
        bar.close()
    if eval_fn is not None and run.last_eval != res.step and run.last_save != res.step:
        run.evaluate(eval_fn, metrics)
    metrics.close()
    return export(run, cfg, export_fn)


def export(run: _Run, cfg: TrainConfig, export_fn: Callable | None) -> TrainResult:
    """Load the best weights back (``export_best``), call ``export_fn``, drop the checkpoints."""
    res, inner = run.res, unwrap(run.model)
    best = ckpt.load_best(run.ckpt_dir) if cfg.best_metric and cfg.export_best else None
    if best is not None:
        inner.load_state_dict(best, strict=False)
        LOG.info(
            "exporting the best weights (%s %.4g at step %d)",
            cfg.best_metric,
            res.best_value,
            res.best_step,
        )
    if export_fn is not None and run.acc.is_main_process:
        export_fn(inner, res)
    run.acc.wait_for_everyone()
    if export_fn is not None and run.acc.is_main_process and not cfg.keep_checkpoints:
        ckpt.remove_checkpoints(run.ckpt_dir)
    return res
