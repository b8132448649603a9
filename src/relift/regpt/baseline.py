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
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from relift.io import LOG, InputError, require_file, run_cli, save_tokenizer
from relift.regpt import data as D
from relift.regpt.losses import IGNORE
from relift.regpt.settings import BackboneSettings, BaselineSettings, WindowSettings
from relift.regpt.train import add_data_args, args_record, fingerprint, finish_output
from relift.settings import add_settings
from relift.train import loop as L

SETTINGS = (BackboneSettings, WindowSettings, BaselineSettings)  # with TrainConfig: --settings


def causal_lm_loss(model, batch: dict, step: int):
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    labels = batch["labels"].masked_fill(batch["labels"] == D.EOS, IGNORE)
    loss = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE)
    return loss, {"tokens": int((labels != IGNORE).sum())}


def steps_for_tokens(batches: L.BucketedBatches, wins, target: int, grad_accum: int = 1) -> int:
    """Fewest optimizer steps whose micro-batches (the loop's deterministic plan, one process)
    hold at least ``target`` target tokens: the baseline overshoots by less than one step."""
    total, step, n = 0, 0, len(batches)
    while total < target:
        for micro in range(grad_accum):
            epoch, index = divmod(step * grad_accum + micro, n)
            total += sum(len(wins[j]) - 1 for j in batches.epoch_plan(epoch)[index])
        step += 1
    return max(1, step)


def target_tokens(args) -> int:
    if args.target_tokens:
        return args.target_tokens
    if not args.match_tokens:
        raise InputError("give --match-tokens (ReGPT's final train_info.json) or --target-tokens")
    info = json.loads(require_file(args.match_tokens, "ReGPT train_info.json").read_text())
    if "total_tokens" not in info:
        raise InputError("no total_tokens recorded", path=args.match_tokens, field="total_tokens")
    return int(info["total_tokens"])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m relift.regpt.baseline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--base-tokenizer", default="mistral-common", help="(default: %(default)s)")
    ap.add_argument("--match-tokens", type=Path, help="ReGPT stage-2 (final) train_info.json")
    ap.add_argument("--target-tokens", type=int, default=0, help="training tokens (overrides)")
    add_settings(ap, BaselineSettings, BackboneSettings)
    add_data_args(ap)
    L.add_train_args(ap, optimizer="lamb", lr=5e-3, max_steps=1)
    args = ap.parse_args(argv)
    # the settings, also written into args (args.hidden, ...); max_steps: below
    cfg, *_ = L.config_from_args(args, *SETTINGS)
    cfg.micro_batch_size = args.batch_size
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    from relift.regpt.model import llama_config
    from relift.regpt.token_lm import build_token_lm, log_unigram
    from relift.regpt.tokenizer import load_base_tokenizer

    target = target_tokens(args) if not args.steps else 0
    tok = load_base_tokenizer(args.base_tokenizer)
    texts = D.load_texts(args.train, args.max_train_chunks)
    if args.vocab_size:
        from relift.regpt.tokenizer import train_phrase_tokenizer

        tok = train_phrase_tokenizer(tok, iter([texts]), args.vocab_size, "metaspace")
        LOG.info("baseline tokenizer retrained on the training split: %d tokens", len(tok))
    wins = D.windows(D.tokenize(texts, tok), args.max_len)
    bytes_per_target = D.bytes_per_target(texts, wins)
    batches = L.BucketedBatches(
        [len(w) for w in wins],
        args.batch_size,
        cfg.seed,
        lambda idx: D.collate([wins[i] for i in idx], pad_to=8),
    )
    steps = args.steps or steps_for_tokens(batches, wins, target, cfg.grad_accum)
    per_batch = D.count_targets(wins) / len(batches)
    cfg = dataclasses.replace(cfg, max_steps=steps)
    L.seed_everything(cfg.seed)
    config = llama_config(
        args.hidden,
        args.layers,
        args.heads,
        args.intermediate,
        args.max_positions,
        vocab_size=len(tok),
    )
    # with --output-bias: start from the unigram model of the training tokens
    prior = log_unigram(wins, len(tok)) if args.output_bias else None
    model = build_token_lm(config, args.output_bias, prior)
    n_params = sum(p.numel() for p in model.parameters())
    LOG.info(
        "baseline: %d chunks -> %d windows, %.1f tokens/batch; target %d tokens -> %d steps; "
        "%.2fM parameters; output bias %s",
        len(texts),
        len(wins),
        per_batch,
        target,
        steps,
        n_params / 1e6,
        "on (log unigram)" if args.output_bias else "off",
    )

    from relift.regpt.evaluate import dev_eval_fn, eval_causal_lm

    eval_fn = dev_eval_fn(
        args.dev, args.dev_chunks, tok, args.max_len, eval_causal_lm, lambda m: m.device
    )

    regpt_info = {}
    if args.match_tokens and args.match_tokens.exists():
        regpt_info = json.loads(args.match_tokens.read_text())

    def export(m, res: L.TrainResult) -> None:
        info = {
            "steps": res.step,
            "tokens": res.tokens,
            "total_tokens": res.tokens,
            "target_tokens": target,
            "vocab_size": len(tok),
            "bytes_per_target": bytes_per_target,
            "bytes": round(res.tokens * bytes_per_target),
            "total_bytes": round(res.tokens * bytes_per_target),
            # ReGPT's stage 1 + stage 2 for the comparison (the same machine, the same text)
            "regpt_total_train_seconds": regpt_info.get("total_train_seconds"),
            "regpt_total_bytes": regpt_info.get("total_bytes"),
            "train_seconds": round(res.train_seconds, 2),
            "total_train_seconds": round(res.train_seconds, 2),
            "tokens_per_s": res.tokens / max(res.train_seconds, 1e-9),
            "resumed_from": res.resumed_from,
            "chunks": len(texts),
            "windows": len(wins),
            "parameters": n_params,
            "output_bias": args.output_bias,
            "start_eval": start_eval,
            "last_eval": res.last_metrics,
            # the step count this run computed, not the flag's placeholder
            "args": {**args_record(args), "max_steps": cfg.max_steps},
        }

        def write(tmp):
            m.save_pretrained(str(tmp))
            save_tokenizer(tok, tmp)

        finish_output(args.output, args.work_dir, write, info, "token-level baseline")
        LOG.info(
            "baseline: %d steps, %d tokens (target %d) in %.0fs -> %s",
            res.step,
            res.tokens,
            target,
            res.train_seconds,
            args.output,
        )

    start_eval = {}
    if eval_fn is not None:  # the learning curve's first point (step 0)
        with torch.no_grad():
            start_eval = eval_fn(model.eval(), 0)
        model.train()

    L.train(
        model,
        causal_lm_loss,
        batches,
        cfg,
        args.work_dir,
        eval_fn=eval_fn,
        export_fn=export,
        fingerprint={**fingerprint(args, args.train, args.dev), "target_tokens": target},
    )


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
