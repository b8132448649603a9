"""The Selfmem memory selector: a cross-encoder over (source, candidate) pairs.

Model: a Hugging Face encoder (``AutoModel``; the bundled all-MiniLM-L6-v2 ``minilm`` on the
embedded default, ``xlm-roberta-base`` for translation / ``roberta-base`` for summarisation as the
paper) reads the text pair ``source [SEP] candidate``; the mean-pooled (``--pooling mean``) or
first-token (``--pooling cls``) state goes through a linear head to one score per pair, and a
softmax over each input's candidate pool gives ``p(c | x)``. ``--layers N`` keeps only the first N
encoder layers (a cheaper selector for CPU demos; 0 = all).

Training (``train``), once, on the candidates that the frozen generator produced for (a subset
of) the TRAIN split with BM25 memory: KL to ``softmax(minmax(Δ) / τ)`` per pool, the best
checkpoint by dev selection quality exported (:mod:`relift.selfmem.selector.training`).
``train_result.json`` also records the dev BLEU of the beam's own top candidate and of the oracle
pick (the ceiling).

Scoring (``score``): one score per candidate of every pool of a candidates JSONL (part 1's format)
-> ``{"id": i, "scores": [...]}`` lines, aligned with the pools (see :mod:`relift.selfmem.loop.formats`).

Selector folder: ``encoder/`` (the encoder and its tokenizer, ``save_pretrained``),
``head.safetensors``, ``selector.json`` (pooling, max_length, ...) and ``train_result.json``.

Settings (:class:`relift.selfmem.selector.settings.SelectorSettings` and the loop's
:class:`relift.train.TrainConfig`) come as ``--settings JSON`` (the workflow passes the
``selfmem.selector`` section) and/or one flag each; a flag overrides the JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch

from relift.io import LOG, InputError, run_cli
from relift.selfmem.loop.formats import read_pools, same_splits, split_map, write_scores
from relift.selfmem.selector.model import load_selector, score_pools
from relift.selfmem.selector.settings import (
    LOOP_SET_HERE,
    SELECTOR_TRAIN_DEFAULTS,
    SelectorSettings,
)
from relift.selfmem.selector.training import SelectorFiles, TaskFields, train_selector
from relift.settings import add_settings, settings_from_args
from relift.train import TrainConfig


# --------------------------------------------------------------------------- train
def add_train_parser(sub) -> None:
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
    t.add_argument(
        "--pool-size", type=int, default=0, help="candidates kept per training pool (0 = all)"
    )
    t.add_argument(
        "--dev-pool-size",
        type=int,
        default=0,
        help="candidates kept per dev pool (0 = all): the loop's pool size",
    )
    t.add_argument("--work-dir", required=True, type=Path)
    t.add_argument("--output", required=True, type=Path, help="selector folder to write")
    add_settings(
        t, SelectorSettings, TrainConfig, defaults=SELECTOR_TRAIN_DEFAULTS, skip=LOOP_SET_HERE
    )
    t.set_defaults(func=cmd_train)


def check(st: SelectorSettings) -> None:
    if st.temperature <= 0:
        raise InputError(f"--temperature must be > 0, got {st.temperature}")
    if st.batch_size < 1 or st.max_length < 8:
        raise InputError("--batch-size must be >= 1 and --max-length >= 8")


def cmd_train(args) -> None:
    st, cfg = settings_from_args(
        args, SelectorSettings, TrainConfig, defaults=SELECTOR_TRAIN_DEFAULTS
    )
    check(st)
    # a checkpoint at every evaluation; the best by dev selection quality is exported
    cfg = dataclasses.replace(
        cfg, save_every=cfg.eval_every, best_metric="selection", best_mode="max"
    )
    cfg.validate()
    files = SelectorFiles(
        args.train_data,
        args.train_candidates,
        args.dev_data,
        args.dev_candidates,
        args.work_dir,
        args.output,
    )
    task = TaskFields(
        args.src_field, args.trg_field, args.metric, args.pool_size, args.dev_pool_size
    )
    train_selector(files, task, st, cfg)


# --------------------------------------------------------------------------- score
def add_score_parser(sub) -> None:
    many = {"action": "append", "metavar": "SPLIT=PATH"}
    s = sub.add_parser("score", help="selector scores of candidate pools")
    s.add_argument("--selector", required=True, type=Path)
    s.add_argument("--data", required=True, **many)
    s.add_argument("--candidates", required=True, **many)
    s.add_argument("--output", required=True, **many)
    s.add_argument("--src-field", default="src")
    s.add_argument("--trg-field", default="trg")
    s.add_argument("--pool-size", type=int, default=0, help="candidates kept per pool (0 = all)")
    s.add_argument(
        "--score-batch-size",
        "--batch-size",
        dest="score_batch_size",
        type=int,
        default=argparse.SUPPRESS,
        help=f"pairs per batch (default: {SelectorSettings().score_batch_size})",
    )
    s.add_argument("--threads", type=int, default=0)
    s.add_argument("--device", default="auto")
    # --settings: the whole selector section (only score_batch_size is read here)
    every = tuple(f.name for c in (SelectorSettings, TrainConfig) for f in dataclasses.fields(c))
    add_settings(s, SelectorSettings, TrainConfig, skip=every)

    s.set_defaults(func=cmd_score)


def cmd_score(args) -> None:
    from relift.encoders import pick_device
    from relift.selfmem.data import load_split

    st, _ = settings_from_args(args, SelectorSettings, TrainConfig)
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
            model, tok, sources, pools, spec["max_length"], st.score_batch_size, log_every=50
        )
        write_scores(outs[split], sc)
        n, dt = sum(map(len, pools)), time.time() - t0
        LOG.info(
            "%s: %d pairs in %.1fs (%.0f pairs/s) -> %s",
            *(split, n, dt, n / max(dt, 1e-9), outs[split]),
        )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m relift.selfmem.selector.cli",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="command", required=True)
    add_train_parser(sub)
    add_score_parser(sub)
    args = ap.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
