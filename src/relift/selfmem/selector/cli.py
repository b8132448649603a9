"""The Selfmem memory selector: a cross-encoder over (source, candidate) pairs.

Model: a Hugging Face encoder (``AutoModel``; the bundled all-MiniLM-L6-v2 ``minilm`` on the
embedded default, ``xlm-roberta-base`` for translation / ``roberta-base`` for summarisation as the
paper) reads the text pair ``source [SEP] candidate``; the mean-pooled (``--pooling mean``) or
first-token (``--pooling cls``) state goes through a linear head to one score per pair, and a
softmax over each input's candidate pool gives ``p(c | x)``. ``--layers N`` keeps only the first N
encoder layers (a cheaper selector for CPU demos; 0 = all).

Training (``train``), once, on the candidates that the frozen generator produced for (a subset
of) the TRAIN split with BM25 memory: the target distribution of a pool is
``softmax(minmax(Δ) / τ)`` with Δ = sentence BLEU of each candidate against the reference
(translation; a ROUGE-1/2/L mix for summarisation), min-max normalised within the pool (a constant
pool normalises to zeros: a uniform target), τ = ``--temperature`` (0.5 in the paper); the loss is
KL(target || p) summed over the pool and averaged over the pools of a batch. Pools whose
candidates all have the same Δ carry no ranking signal and are left out. The loop is the shared
:func:`relift.train.loop.train` (checkpoints, resume, metrics); every ``--eval-every`` updates the
selector picks one candidate per dev input (argmax) and the corpus BLEU of those picks against the
dev references (``--metric rouge``: the mean ROUGE-1/2/Lsum) is the dev selection quality; the
best checkpoint by it is exported. ``train_result.json`` also records the dev BLEU of the beam's
own top candidate and of the oracle pick (the ceiling).

Scoring (``score``): one score per candidate of every pool of a candidates JSONL (part 1's format)
-> ``{"id": i, "scores": [...]}`` lines, aligned with the pools (see :mod:`relift.selfmem.loop.formats`).

Selector folder: ``encoder/`` (the encoder and its tokenizer, ``save_pretrained``),
``head.safetensors``, ``selector.json`` (pooling, max_length, ...) and ``train_result.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from relift.io import LOG, InputError, atomic_dir, run_cli, write_json_atomic
from relift.selfmem.loop.formats import read_pools, same_splits, split_map, write_scores
from relift.selfmem.loop.oracle import delta_scores
from relift.selfmem.selector.model import (
    POOLINGS,
    build_selector,
    encode_pairs,
    load_selector,
    pick,
    save_selector,
    score_pools,
)


# --------------------------------------------------------------------------- targets and loss
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
def _load_pools(data, cands, src_field, trg_field, pool_size, max_examples=0):
    from relift.selfmem.data import load_split

    split = load_split(data, src_field, trg_field)
    pools = read_pools(cands, None, pool_size)
    n = len(pools)
    if n > len(split):
        raise InputError(f"{n} candidate pools but the split has {len(split)} inputs", path=cands)
    if max_examples:
        n = min(n, max_examples)
    return split.sources[:n], split.targets[:n], pools[:n]


def cmd_train(args) -> None:
    from relift.train import (
        BucketedBatches,
        config_from_args,
        seed_everything,
        train,
    )

    cfg = config_from_args(args)
    cfg.best_metric, cfg.best_mode = "selection", "max"
    t_start = time.time()
    src, refs, pools = _load_pools(
        args.train_data,
        args.train_candidates,
        args.src_field,
        args.trg_field,
        args.pool_size,
        args.train_examples,
    )
    dev_src, dev_refs, dev_pools = _load_pools(
        args.dev_data,
        args.dev_candidates,
        args.src_field,
        args.trg_field,
        args.dev_pool_size,
        args.dev_max_examples,
    )
    if not args.dev_max_examples and len(dev_pools) != len(dev_refs):
        raise InputError(
            f"{len(dev_pools)} dev pools for {len(dev_refs)} dev inputs", path=args.dev_candidates
        )
    deltas = [delta_scores(p, r, args.metric) for p, r in zip(pools, refs, strict=True)]
    keep = [i for i, d in enumerate(deltas) if max(d) - min(d) > 1e-9]
    if not keep:
        LOG.warning(
            "every training pool has candidates of equal quality (uniform targets): the "
            "selector learns nothing useful; is the generator trained?"
        )
        keep = list(range(len(pools)))
    targets = [target_distribution(deltas[i], args.temperature) for i in keep]
    LOG.info(
        "selector training: %d pools (%d constant ones left out), dev %d pools",
        len(keep),
        len(pools) - len(keep),
        len(dev_pools),
    )
    src = [src[i] for i in keep]
    pools = [pools[i] for i in keep]

    fingerprint = {
        k: str(v)
        for k, v in sorted(vars(args).items())
        if k not in ("output", "work_dir", "progress", "threads", "stop_after", "device", "func")
    }
    fp_path = args.work_dir / "run.json"
    if fp_path.exists() and json.loads(fp_path.read_text()) != fingerprint:
        LOG.warning("settings changed since %s was written: starting over", args.work_dir)
        shutil.rmtree(args.work_dir)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    fp_path.write_text(json.dumps(fingerprint, indent=2) + "\n")

    seed_everything(cfg.seed)
    tok, model = build_selector(args.encoder, args.pooling, args.layers)
    n_params = sum(p.numel() for p in model.parameters())

    def collate(idx: list[int]) -> dict:
        kmax = max(len(pools[i]) for i in idx)
        flat_s = [src[i] for i in idx for _ in pools[i]]
        flat_c = [c for i in idx for c in pools[i]]
        batch = encode_pairs(tok, flat_s, flat_c, args.max_length)
        t = torch.zeros(len(idx), kmax)
        mask = torch.zeros(len(idx), kmax, dtype=torch.bool)
        for r, i in enumerate(idx):
            t[r, : len(pools[i])] = torch.tensor(targets[i])
            mask[r, : len(pools[i])] = True
        batch["targets"], batch["mask"] = t, mask
        return batch

    lengths = [sum(len(src[i]) + len(c) for c in pools[i]) for i in range(len(pools))]
    batches = BucketedBatches(lengths, args.batch_size, seed=cfg.seed, collate=collate)

    def loss_fn(m, batch, step):
        targets_, mask = batch.pop("targets"), batch.pop("mask")
        flat = m(**batch)
        scores = torch.zeros(mask.shape, dtype=flat.dtype, device=flat.device)
        scores = scores.masked_scatter(mask, flat)
        loss = kl_loss(scores, targets_, mask)
        return loss, {"tokens": int(batch["attention_mask"].sum()), "pairs": int(mask.sum())}

    top1 = selection_quality(args.metric, [p[0] for p in dev_pools], dev_refs)
    oracle = selection_quality(
        args.metric,
        [
            p[max(range(len(p)), key=lambda j: (d[j], -j))]
            for p, d in (
                (p, delta_scores(p, r, args.metric))
                for p, r in zip(dev_pools, dev_refs, strict=True)
            )
        ],
        dev_refs,
    )
    LOG.info("dev %s: beam top-1 %.2f, oracle pick %.2f", args.metric, top1, oracle)

    def eval_fn(m, step):
        t0 = time.time()
        sc = score_pools(m, tok, dev_src, dev_pools, args.max_length, args.score_batch_size)
        return {
            "selection": selection_quality(args.metric, pick(dev_pools, sc), dev_refs),
            "eval_seconds": time.time() - t0,
        }

    spec = {
        "encoder": args.encoder,
        "pooling": args.pooling,
        "layers": args.layers,
        "max_length": args.max_length,
        "temperature": args.temperature,
        "metric": args.metric,
    }

    def export_fn(m, result):
        with atomic_dir(args.output) as tmp:
            save_selector(m, tok, tmp, spec)
            write_json_atomic(
                tmp / "train_result.json",
                {
                    "metric": args.metric,
                    "train_pools": len(pools),
                    "dev_pools": len(dev_pools),
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

    res = train(
        model,
        loss_fn,
        batches,
        cfg,
        args.work_dir,
        eval_fn=eval_fn,
        export_fn=export_fn,
        fingerprint=fingerprint,
    )
    LOG.info(
        "selector: best dev selection %s %.2f at step %d (beam top-1 %.2f, oracle %.2f) -> %s",
        args.metric,
        res.best_value if res.best_value is not None else float("nan"),
        res.best_step,
        top1,
        oracle,
        args.output,
    )


# --------------------------------------------------------------------------- score
def cmd_score(args) -> None:
    from relift.encoders import pick_device
    from relift.selfmem.data import load_split

    if args.threads:
        torch.set_num_threads(args.threads)
    data = split_map(args.data, "--data")
    cands = split_map(args.candidates, "--candidates")
    outs = split_map(args.output, "--output")
    splits = same_splits(
        {"--data": data, "--candidates": cands, "--output": outs},
        ("--data", "--candidates", "--output"),
    )
    tok, model, spec = load_selector(args.selector, pick_device(args.device))
    for split in splits:
        sources = load_split(data[split], args.src_field, args.trg_field).sources
        pools = read_pools(cands[split], len(sources), args.pool_size)
        t0 = time.time()
        sc = score_pools(
            model, tok, sources, pools, spec["max_length"], args.batch_size, log_every=50
        )
        write_scores(outs[split], sc)
        n = sum(map(len, pools))
        dt = time.time() - t0
        LOG.info(
            "%s: %d pairs in %.1fs (%.0f pairs/s) -> %s",
            split,
            n,
            dt,
            n / max(dt, 1e-9),
            outs[split],
        )


def main(argv: list[str] | None = None) -> None:
    from relift.train import add_train_args

    ap = argparse.ArgumentParser(
        prog="python -m relift.selfmem.selector.cli",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="command", required=True)
    many = {"action": "append", "metavar": "SPLIT=PATH"}

    t = sub.add_parser("train", help="train the selector (KL to softmax(minmax(Δ)/τ))")
    t.add_argument("--train-data", required=True, type=Path, help="training split (JSONL)")
    t.add_argument(
        "--train-candidates",
        required=True,
        type=Path,
        help="candidates of its first N inputs (part 1's JSONL format)",
    )
    t.add_argument("--dev-data", required=True, type=Path)
    t.add_argument("--dev-candidates", required=True, type=Path)
    t.add_argument("--src-field", default="src")
    t.add_argument("--trg-field", default="trg")
    t.add_argument(
        "--metric",
        choices=("bleu", "rouge"),
        default="bleu",
        help="Δ and dev selection quality: sentence/corpus BLEU or a ROUGE mix",
    )
    t.add_argument("--encoder", default="minilm", help="minilm, a folder or a hub name")
    t.add_argument("--pooling", choices=POOLINGS, default="mean")
    t.add_argument("--layers", type=int, default=0, help="encoder layers kept (0 = all)")
    t.add_argument("--max-length", type=int, default=128, help="tokens per (source, candidate)")
    t.add_argument("--temperature", type=float, default=0.5, help="τ of the target softmax")
    t.add_argument("--batch-size", type=int, default=4, help="candidate pools per micro-batch")
    t.add_argument(
        "--pool-size", type=int, default=0, help="candidates kept per training pool (0 = all)"
    )
    t.add_argument(
        "--dev-pool-size",
        type=int,
        default=0,
        help="candidates kept per dev pool (0 = all): the loop's pool size",
    )
    t.add_argument("--train-examples", type=int, default=0, help="training pools used (0 = all)")
    t.add_argument(
        "--dev-max-examples",
        type=int,
        default=0,
        help="dev pools of the selection-quality eval (0 = all)",
    )
    t.add_argument("--score-batch-size", type=int, default=64, help="pairs per eval batch")
    t.add_argument("--work-dir", required=True, type=Path)
    t.add_argument("--output", required=True, type=Path, help="selector folder to write")
    add_train_args(
        t,
        lr=5e-5,
        optimizer="adamw",
        scheduler="cosine",
        warmup_steps=20,
        max_steps=200,
        eval_every=50,
        save_every=50,
        log_every=10,
        patience=0,
        weight_decay=0.01,
        min_lr_ratio=0.1,
    )
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("score", help="selector scores of candidate pools")
    s.add_argument("--selector", required=True, type=Path)
    s.add_argument("--data", required=True, **many)
    s.add_argument("--candidates", required=True, **many)
    s.add_argument("--output", required=True, **many)
    s.add_argument("--src-field", default="src")
    s.add_argument("--trg-field", default="trg")
    s.add_argument("--pool-size", type=int, default=0, help="candidates kept per pool (0 = all)")
    s.add_argument("--batch-size", type=int, default=64, help="pairs per batch")
    s.add_argument("--threads", type=int, default=0)
    s.add_argument("--device", default="auto")
    s.set_defaults(func=cmd_score)
    args = ap.parse_args(argv)
    if args.command == "train":
        if args.temperature <= 0:
            raise InputError(f"--temperature must be > 0, got {args.temperature}")
        if args.batch_size < 1 or args.max_length < 8:
            raise InputError("--batch-size must be >= 1 and --max-length >= 8")
    args.func(args)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
