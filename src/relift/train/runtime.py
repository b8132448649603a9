"""Where the training loop runs: seeding, the Accelerate object (device, precision, DeepSpeed
plugin), the model wrappers and moving batches to the device.

Precision: ``auto`` = bf16 autocast on CUDA, fp32 on CPU (``bf16`` forces autocast on CPU too:
slow on CPUs without native bf16). ``deepspeed_config``: a DeepSpeed JSON (e.g. ZeRO-2) used
through Accelerate's DeepSpeedPlugin; its ``"auto"`` values are filled from the TrainConfig
(the filled file is written to ``out_dir/deepspeed_config.json``).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import torch

from relift.io import LOG, InputError
from relift.train.config import TrainConfig
from relift.train.optimizer import make_optimizer, make_scheduler, param_groups


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


def resolve_precision(precision: str) -> str:
    """Accelerate's ``mixed_precision`` for a ``precision`` setting."""
    if precision == "auto":
        return "bf16" if torch.cuda.is_available() else "no"
    return {"fp32": "no"}.get(precision, precision)


def deepspeed_plugin(cfg: TrainConfig, mixed: str, out_dir: Path):
    """Accelerate's DeepSpeedPlugin for ``cfg.deepspeed_config`` and the filled config dict."""
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
    if ds.get("train_batch_size") == "auto":
        ds.pop("train_batch_size")
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


def make_accelerator(cfg: TrainConfig, out_dir: Path):
    """(Accelerator, the filled DeepSpeed config or None) for ``cfg``."""
    from accelerate import Accelerator, DistributedDataParallelKwargs

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    precision = cfg.precision
    if cfg.device == "cpu" and precision == "auto":
        precision = "fp32"
    mixed = resolve_precision(precision)
    kwargs = {}
    ds_config = None
    if cfg.deepspeed_config:
        kwargs["deepspeed_plugin"], ds_config = deepspeed_plugin(cfg, mixed, out_dir)
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
    return acc, ds_config


def enable_gradient_checkpointing(model) -> None:
    inner = unwrap(model)
    enable = getattr(inner, "activation_checkpointing_enable", None) or getattr(
        inner, "gradient_checkpointing_enable", None
    )
    if enable is None:
        LOG.warning("model has no gradient checkpointing; training without it")
        return
    enable()
    if hasattr(getattr(inner, "config", None), "use_cache"):
        inner.config.use_cache = False


def optimizer_and_scheduler(model, cfg: TrainConfig, ds_config: dict | None):
    """The loop's optimizer and schedule, or DeepSpeed's when its config names them."""
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
    return optimizer, scheduler
