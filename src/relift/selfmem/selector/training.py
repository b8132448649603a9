"""Training of the memory selector: targets, loss, dev selection quality and the run.

Training, once, on the candidates that the frozen generator produced for (a subset of) the TRAIN
split with BM25 memory: the target distribution of a pool is ``softmax(minmax(Δ) / τ)`` with Δ =
sentence BLEU of each candidate against the reference (translation; a ROUGE-1/2/L mix for
summarisation), min-max normalised within the pool (a constant pool normalises to zeros: a
uniform target), τ = ``temperature`` (0.5 in the paper); the loss is KL(target || p) summed over
the pool and averaged over the pools of a batch. Pools whose candidates all have the same Δ carry
no ranking signal and are left out. The loop is the shared :func:`relift.train.loop.train`
(checkpoints, resume, metrics); every ``eval_every`` updates the selector picks one candidate per
dev input (argmax) and the corpus BLEU of those picks against the dev references (``rouge``: the
mean ROUGE-1/2/Lsum) is the dev selection quality; the best checkpoint by it is exported
(:func:`train_selector`). The CLI is ``python -m relift.selfmem.selector.cli train``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from relift.io import LOG, InputError, atomic_dir, write_json_atomic
from relift.selfmem.loop.formats import read_pools
from relift.selfmem.loop.oracle import delta_scores
from relift.selfmem.selector.model import (
    build_selector,
    encode_pairs,
    pick,
    save_selector,
    score_pools,
)
from relift.selfmem.selector.settings import SelectorSettings
from relift.train import BucketedBatches, TrainConfig, seed_everything, train
from relift.train.fingerprint import run_fingerprint


def minmax(values: Sequence[float]) -> list[float]:
    """Min-max normalisation of one pool to [0, 1]; a constant pool gives all zeros."""
    lo, hi = min(values), max(values)
    if hi - lo <= 1e-12:
        return [0.0] * len(values)
    return [(v - lo) / (hi - lo) for v in values]


def target_distribution(deltas: Sequence[float], temperature: float) -> list[float]:
    """``softmax(minmax(Δ) / τ)`` of one pool."""
    if temperature <= 0:
        raise InputError(f"temperature must be > 0, got {temperature}")
    z = [v / temperature for v in minmax(deltas)]
    m = max(z)
    e = [math.exp(v - m) for v in z]
    s = sum(e)
    return [v / s for v in e]


def kl_loss(scores: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over pools of KL(target || softmax(scores)) within each pool.

    ``scores``, ``targets``: (pools, K) padded; ``mask``: (pools, K) True for real candidates
    (padding has target 0 and is excluded from the softmax)."""
    scores = scores.float().masked_fill(~mask, float("-inf"))
    logp = torch.log_softmax(scores, dim=-1)
    t = targets.float() * mask
    logt = torch.where(t > 0, t.clamp_min(1e-30).log(), torch.zeros_like(t))
    kl = torch.where(t > 0, t * (logt - logp), torch.zeros_like(t)).sum(-1)
    return kl.mean()


def selection_quality(metric: str, picks: list[str], refs: list[str]) -> float:
    from relift.score import score

    res = score(picks, refs, [metric], width=6)
    if metric == "bleu":
        return float(res["bleu"]["score"])
    r = res["rouge"]
    return (r["rouge1"]["score"] + r["rouge2"]["score"] + r["rougeLsum"]["score"]) / 3


# --------------------------------------------------------------------------- train
# --------------------------------------------------------------------------- the run
def load_pools(data, cands, src_field, trg_field, pool_size, max_examples=0):
    from relift.selfmem.data import load_split

    split = load_split(data, src_field, trg_field)
    pools = read_pools(cands, None, pool_size)
    n = len(pools)
    if n > len(split):
        raise InputError(f"{n} candidate pools but the split has {len(split)} inputs", path=cands)
    if max_examples:
        n = min(n, max_examples)
    return split.sources[:n], split.targets[:n], pools[:n]


@dataclass
class SelectorFiles:
    """What a selector run reads and writes: the training split and its candidates, the dev
    split and its candidates, the loop's work folder (a rerun resumes there) and the selector
    folder written at the end."""

    train_data: Path
    train_candidates: Path
    dev_data: Path
    dev_candidates: Path
    work_dir: Path
    output: Path


@dataclass
class TaskFields:
    """The task's JSONL fields, its metric family, and the candidates kept per pool (0 = all)."""

    src_field: str = "src"
    trg_field: str = "trg"
    metric: str = "bleu"
    pool_size: int = 0
    dev_pool_size: int = 0


def training_pools(files: SelectorFiles, task: TaskFields, st: SelectorSettings):
    """(sources, target distributions, pools) of the training pools with a ranking signal."""
    src, refs, pools = load_pools(
        files.train_data,
        files.train_candidates,
        task.src_field,
        task.trg_field,
        task.pool_size,
        st.train_examples,
    )
    deltas = [delta_scores(p, r, task.metric) for p, r in zip(pools, refs, strict=True)]
    keep = [i for i, d in enumerate(deltas) if max(d) - min(d) > 1e-9]
    if not keep:
        LOG.warning(
            "every training pool has candidates of equal quality (uniform targets): the "
            "selector learns nothing useful; is the generator trained?"
        )
        keep = list(range(len(pools)))
    targets = [target_distribution(deltas[i], st.temperature) for i in keep]
    LOG.info(
        "selector training: %d pools (%d constant ones left out)", len(keep), len(pools) - len(keep)
    )
    return [src[i] for i in keep], targets, [pools[i] for i in keep]


def dev_pools(files: SelectorFiles, task: TaskFields, st: SelectorSettings):
    """(sources, references, pools) of the dev selection-quality evaluation."""
    dev_src, dev_refs, pools = load_pools(
        files.dev_data,
        files.dev_candidates,
        task.src_field,
        task.trg_field,
        task.dev_pool_size,
        st.dev_max_examples,
    )
    if not st.dev_max_examples and len(pools) != len(dev_refs):
        raise InputError(
            f"{len(pools)} dev pools for {len(dev_refs)} dev inputs", path=files.dev_candidates
        )
    LOG.info("selector dev evaluation: %d pools", len(pools))
    return dev_src, dev_refs, pools


def pool_batches(tok, src, targets, pools, st: SelectorSettings, seed: int) -> BucketedBatches:
    """Length-bucketed batches of ``st.batch_size`` pools: every (source, candidate) pair
    encoded, each pool's target distribution and mask padded to the batch's largest pool."""

    def collate(idx: list[int]) -> dict:
        kmax = max(len(pools[i]) for i in idx)
        flat_s = [src[i] for i in idx for _ in pools[i]]
        flat_c = [c for i in idx for c in pools[i]]
        batch = encode_pairs(tok, flat_s, flat_c, st.max_length)
        t = torch.zeros(len(idx), kmax)
        mask = torch.zeros(len(idx), kmax, dtype=torch.bool)
        for r, i in enumerate(idx):
            t[r, : len(pools[i])] = torch.tensor(targets[i])
            mask[r, : len(pools[i])] = True
        batch["targets"], batch["mask"] = t, mask
        return batch

    lengths = [sum(len(src[i]) + len(c) for c in pools[i]) for i in range(len(pools))]
    return BucketedBatches(lengths, st.batch_size, seed=seed, collate=collate)


def pool_loss(m, batch, step):
    """KL(target || softmax(scores)) of a batch of pools (see :func:`kl_loss`)."""
    targets_, mask = batch.pop("targets"), batch.pop("mask")
    flat = m(**batch)
    scores = torch.zeros(mask.shape, dtype=flat.dtype, device=flat.device)
    scores = scores.masked_scatter(mask, flat)
    loss = kl_loss(scores, targets_, mask)
    return loss, {"tokens": int(batch["attention_mask"].sum()), "pairs": int(mask.sum())}


def dev_bounds(metric: str, pools, refs) -> tuple[float, float]:
    """Dev selection quality of the beam's own top candidate and of the oracle pick."""
    top1 = selection_quality(metric, [p[0] for p in pools], refs)
    picks = []
    for p, r in zip(pools, refs, strict=True):
        d = delta_scores(p, r, metric)
        picks.append(p[max(range(len(p)), key=lambda j: (d[j], -j))])
    return top1, selection_quality(metric, picks, refs)


def train_selector(files: SelectorFiles, task: TaskFields, st: SelectorSettings, cfg: TrainConfig):
    """Train the selector and write its folder (``encoder/``, ``head.safetensors``,
    ``selector.json``, ``train_result.json``); the loop's :class:`TrainResult`."""
    t_start = time.time()
    src, targets, pools = training_pools(files, task, st)
    dev_src, dev_refs, dev = dev_pools(files, task, st)
    seed_everything(cfg.seed)
    tok, model = build_selector(st.encoder, st.pooling, st.layers)
    n_params = sum(p.numel() for p in model.parameters())
    batches = pool_batches(tok, src, targets, pools, st, cfg.seed)
    top1, oracle = dev_bounds(task.metric, dev, dev_refs)
    LOG.info("dev %s: beam top-1 %.2f, oracle pick %.2f", task.metric, top1, oracle)

    def eval_fn(m, step):
        t0 = time.time()
        sc = score_pools(m, tok, dev_src, dev, st.max_length, st.score_batch_size)
        quality = selection_quality(task.metric, pick(dev, sc), dev_refs)
        return {"selection": quality, "eval_seconds": time.time() - t0}

    spec = {
        "encoder": st.encoder,
        "pooling": st.pooling,
        "layers": st.layers,
        "max_length": st.max_length,
        "temperature": st.temperature,
        "metric": task.metric,
    }

    def export_fn(m, result):
        with atomic_dir(files.output) as tmp:
            save_selector(m, tok, tmp, spec)
            write_json_atomic(
                tmp / "train_result.json",
                {
                    "metric": task.metric,
                    "train_pools": len(pools),
                    "dev_pools": len(dev),
                    "steps": result.step,
                    "best_step": result.best_step,
                    "best_dev_selection": result.best_value,
                    "dev_beam_top1": top1,
                    "dev_oracle": oracle,
                    "stopped_early": result.stopped_early,
                    "train_seconds": round(result.train_seconds, 1),
                    "wall_seconds": round(time.time() - t_start, 1),
                    "parameters": n_params,
                },
            )

    fingerprint = run_fingerprint(
        st,
        task,
        {k: str(v) for k, v in vars(files).items() if k not in ("work_dir", "output")},
        inputs=(files.train_data, files.train_candidates, files.dev_data, files.dev_candidates),
        code=("relift.selfmem.selector.training",),
    )
    res = train(model, pool_loss, batches, cfg, files.work_dir, eval_fn, export_fn, fingerprint)
    LOG.info(
        "selector: best dev selection %s %.2f at step %d (beam top-1 %.2f, oracle %.2f) -> %s",
        task.metric,
        res.best_value if res.best_value is not None else float("nan"),
        *(res.best_step, top1, oracle, files.output),
    )
    return res
