"""Optimizers and learning-rate schedules of the training loop.

``lamb``: DeepSpeed's fused LAMB on CUDA when DeepSpeed is installed, otherwise :class:`Lamb`
(``pytorch_optimizer``'s, set up as the LAMB the loop used before: weight decay inside the
update, per-tensor trust ratio ``‖w‖ / ‖update‖``, no gradient pre-normalisation). ``adamw``:
torch's. Weight decay is not applied to biases and norms (tensors of one dimension).
"""

from __future__ import annotations

import math

import pytorch_optimizer
import torch

from relift.io import LOG
from relift.train.config import TrainConfig


class Lamb(pytorch_optimizer.Lamb):
    """LAMB (You et al., 2020) from ``pytorch_optimizer``: Adam moments, the weight decay added to
    the Adam direction, and a per-tensor trust ratio ``‖w‖ / (‖update‖ + eps)`` (1 when either
    norm is 0); the step is ``lr · trust · update``.

    How it differs from the hand-written LAMB relift had before (and the original ReGPT's
    DeepSpeed FusedLamb): the moments are not bias-corrected (version 3 of the paper; as the
    trust ratio fixes each step's length to ``lr · ‖w‖``, this changes only the direction, through
    the relative weight of ``eps`` and the weight decay, in the first few hundred steps); ``eps`` is
    added to the update norm of the trust ratio; the moments have the parameter's dtype. The
    library's clamp of ``‖w‖`` at 10 is lifted (``clamp``), as in the paper's experiments and
    FusedLamb (whose trust ratio is clamped to [0.01, 10] instead)."""

    clamp = math.inf

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0):
        super().__init__(
            params,
            lr=lr,
            betas=tuple(betas),
            eps=eps,
            weight_decay=weight_decay,
            weight_decouple=False,  # the decay joins the update (and its trust ratio)
            max_grad_norm=0.0,  # no gradient pre-normalisation (the loop clips)
            adam_debias=True,  # step = lr · trust · update, not divided by 1 - beta1^t
        )


def fused_lamb(groups, cfg: TrainConfig):
    """DeepSpeed's FusedLamb when training on CUDA with DeepSpeed installed (else None)."""
    if cfg.device == "cpu" or not torch.cuda.is_available():
        return None
    try:
        from deepspeed.ops.lamb import FusedLamb

        return FusedLamb(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)
    except Exception as err:  # not installed, or its CUDA op does not build here
        LOG.warning("DeepSpeed's FusedLamb is not available (%s); using Lamb", err)
        return None


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
        return fused_lamb(groups, cfg) or Lamb(
            groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay
        )
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
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if kind == "linear":
        return min_ratio + (1 - min_ratio) * (1 - progress)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def make_scheduler(optimizer, cfg: TrainConfig):
    total = cfg.cosine_steps or cfg.max_steps

    def fn(step: int) -> float:
        return lr_factor(step, cfg.scheduler, cfg.warmup_steps, total, cfg.min_lr_ratio)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)
