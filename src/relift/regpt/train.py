"""Train ReGPT: stage 1 (in-batch negatives) or stage 2 (hard negatives, from a stage-1 model).

Stage 1 (``--stage 1``, in-batch candidates) builds a fresh model (``--hidden/--layers/...``, or the decoder stack of
a pretrained Llama folder with ``--pretrained-decoder``); stage 2 (``--stage 2 --init FOLDER``)
continues from a stage-1 model folder (its size comes from there) with hard candidates (gold +
``--negatives`` pool entries per position); ``--in-device`` / ``--no-in-device`` overrides the
candidate set of either stage. Every chunk of the training
split is ``[<s>] + phrase ids`` cut into windows of ``--max-len`` (see ``relift.regpt.data``);
length-bucketed batches of ``--batch-size`` windows; the loss is InfoNCE over dot products with
the frozen raw phrase embeddings (``relift.regpt.losses``).

The shared loop (``relift.train.loop``) writes checkpoints, metrics and TensorBoard logs into
``--work-dir``; a rerun with the same work dir and the same settings, inputs and code resumes. At the end the model folder
``--output`` is written atomically: ``config.json``, ``model.safetensors``, the tokenizer,
``train_info.json`` (steps, phrase tokens consumed, time, hyperparameters), ``metrics.jsonl``,
``metrics.csv`` and ``loss_curve.png``.

Settings (:mod:`relift.regpt.settings` and :class:`relift.train.TrainConfig`) come as
``--settings JSON`` (the workflow passes ``{**regpt.model, **regpt.stage<N>}``) and/or one flag
each; a flag overrides the JSON. Unset ones take config.yaml's values of ``regpt.stage<N>``
(``--help`` shows stage 1's). The run itself is :func:`relift.regpt.training.train_regpt`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from relift.io import InputError, run_cli
from relift.regpt.settings import (
    SECTION_DEFAULTS,
    BackboneSettings,
    ReGPTSettings,
    WindowSettings,
)
from relift.regpt.training import PhraseInputs, add_data_args, args_record, run_files, train_regpt
from relift.settings import add_settings
from relift.train import add_train_args, config_from_args

SETTINGS = (BackboneSettings, WindowSettings, ReGPTSettings)  # with TrainConfig: --settings


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m relift.regpt.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--stage",
        type=int,
        choices=(1, 2),
        required=True,
        help="1: in-batch negatives (fresh model); 2: hard negatives (needs --init)",
    )
    ap.add_argument("--init", type=Path, help="stage 2: the stage-1 model folder")
    ap.add_argument("--tokenizer", type=Path, help="phrase tokenizer folder (stage 1)")
    ap.add_argument(
        "--phrase-embeddings", required=True, type=Path, help="raw phrase embeddings .npy"
    )
    ap.add_argument(
        "--negatives-ids", required=True, type=Path, help="negatives_ids.npy [V, depth]"
    )
    ap.add_argument("--negatives-scores", required=True, type=Path, help="negatives_scores.npy")
    add_settings(ap, BackboneSettings, ReGPTSettings, defaults=SECTION_DEFAULTS["stage1"])
    add_data_args(ap, SECTION_DEFAULTS["stage1"])
    add_train_args(ap, **SECTION_DEFAULTS["stage1"])
    return ap


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    section = SECTION_DEFAULTS[f"stage{args.stage}"]
    # the settings, also written into args (args.hidden, ...: the run's record)
    cfg, *settings = config_from_args(args, *SETTINGS, defaults=section)
    cfg.micro_batch_size = args.batch_size
    if args.stage == 2 and not args.init:
        raise InputError("--stage 2 needs --init (the stage-1 model folder)")
    if args.stage == 1 and not args.tokenizer:
        raise InputError("--stage 1 needs --tokenizer (the phrase tokenizer folder)")
    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    inputs = PhraseInputs(
        args.phrase_embeddings, args.negatives_ids, args.negatives_scores, args.tokenizer, args.init
    )
    train_regpt(args.stage, inputs, run_files(args), tuple(settings), cfg, args_record(args))


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
