"""Train the token-level baseline: a ``LlamaForCausalLM`` with ReGPT's backbone size.

Same training text, same windows/batching scheme and the same shared loop as ReGPT, but the
BASE tokenizer (``mistral-common``, 32k SentencePiece tokens, or any ``--base-tokenizer`` that
AutoTokenizer loads), a token embedding and an LM head. It trains for as many training TOKENS as
ReGPT consumed over stage 1 + stage 2 (``--match-tokens`` reads ``total_tokens`` from the
final stage's ``train_info.json``; ``--target-tokens`` sets the number directly): the number of
steps is the target divided by the mean tokens per batch of the bucketed batch plan, rounded up.
``--steps N`` sets the number of optimizer updates directly instead (an equal-compute comparison:
a step count calibrated to ReGPT's wall-clock; the measured seconds of both are recorded).

``--output-bias`` gives the LM head a learned bias initialised to the add-one smoothed log unigram
frequencies of the training tokens (``relift.regpt.token_lm``; the head start ReGPT's phrase bias
has): the model starts as the unigram model instead of uniform over the vocabulary.

``--vocab-size N`` (0 = the base tokenizer as is) retrains the base tokenizer's BPE on the
training split into N word-internal tokens (Metaspace pre-tokenizer, as SentencePiece splits
words): a smaller softmax, cheaper on a CPU. ``--dev`` / ``--dev-chunks`` evaluate bits per byte
of a fixed dev sample every ``--eval-every`` steps (the learning curve).

Writes the model folder ``--output`` atomically (HF ``save_pretrained`` + tokenizer +
``train_info.json`` + metrics + ``loss_curve.png``).

Settings (:mod:`relift.regpt.settings` and :class:`relift.train.TrainConfig`) come as
``--settings JSON`` (the workflow passes ``{**regpt.model, **regpt.baseline}`` without ReGPT's
own model keys) and/or one flag each; unset ones take config.yaml's ``regpt.baseline`` values.
The run itself is :func:`relift.regpt.training.train_baseline`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from relift.io import run_cli
from relift.regpt.settings import (
    SECTION_DEFAULTS,
    BackboneSettings,
    BaselineSettings,
    WindowSettings,
)
from relift.regpt.training import (
    add_data_args,
    args_record,
    matched_tokens,
    run_files,
    train_baseline,
)
from relift.settings import add_settings
from relift.train import add_train_args, config_from_args

SETTINGS = (BackboneSettings, WindowSettings, BaselineSettings)  # with TrainConfig: --settings


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m relift.regpt.baseline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--base-tokenizer", default="mistral-common", help="(default: %(default)s)")
    ap.add_argument("--match-tokens", type=Path, help="ReGPT stage-2 (final) train_info.json")
    ap.add_argument("--target-tokens", type=int, default=0, help="training tokens (overrides)")
    add_settings(ap, BaselineSettings, BackboneSettings)
    add_data_args(ap, SECTION_DEFAULTS["baseline"])
    add_train_args(ap, **SECTION_DEFAULTS["baseline"])
    return ap


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    # the settings, also written into args (args.hidden, ...: the run's record)
    cfg, *settings = config_from_args(args, *SETTINGS)
    cfg.micro_batch_size = args.batch_size
    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    target = matched_tokens(args.target_tokens, args.match_tokens) if not args.steps else 0
    regpt = {}
    if args.match_tokens and args.match_tokens.exists():
        regpt = json.loads(args.match_tokens.read_text())
    files, record = run_files(args), args_record(args)
    train_baseline(args.base_tokenizer, target, files, tuple(settings), cfg, record, regpt)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
