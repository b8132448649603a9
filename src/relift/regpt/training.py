"""ReGPT's training runs (stage 1, stage 2) and the token-level baseline's, in the shared loop.

The CLIs :mod:`relift.regpt.train` and :mod:`relift.regpt.baseline` parse their settings
(:mod:`relift.regpt.settings`) and call :func:`train_regpt` or :func:`train_baseline`. Both runs
cut the training text into windows (:mod:`relift.regpt.data`), batch them by length, evaluate a
dev sample every ``eval_every`` steps (the learning curve, from step 0), resume from their work
folder when their fingerprint (:mod:`relift.train.fingerprint`) is unchanged, and write their
model folder atomically (:func:`finish_output`): the model, ``train_info.json`` (steps, tokens,
bytes, seconds, the run's arguments), ``metrics.jsonl``/``.csv`` and ``loss_curve.png``.
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from relift.io import LOG, InputError, atomic_dir, require_file, save_tokenizer
from relift.regpt import data as D
from relift.regpt.losses import IGNORE
from relift.regpt.scoring import dev_eval_fn, eval_causal_lm, eval_regpt
from relift.regpt.settings import (
    BackboneSettings,
    BaselineSettings,
    ReGPTSettings,
    WindowSettings,
)
from relift.settings import add_settings
from relift.train import loop as L
from relift.train.fingerprint import run_fingerprint


# --------------------------------------------------------------------------- shared by both runs
@dataclass
class RunFiles:
    """What a run reads and writes: the training split, the dev split (None: no learning curve),
    the loop's work folder (checkpoints, metrics; a rerun resumes there) and the model folder."""

    train: Path
    dev: Path | None
    work_dir: Path
    output: Path


def add_data_args(ap: argparse.ArgumentParser, defaults: dict | None = None) -> None:
    """``--train``, ``--dev``, ``--work-dir``, ``--output`` and the window settings' flags."""
    g = ap.add_argument_group("data")
    g.add_argument("--train", required=True, type=Path, help="training split folder (Arrow)")
    g.add_argument("--dev", type=Path, help="dev split folder, evaluated every --eval-every steps")
    g.add_argument(
        "--work-dir",
        required=True,
        type=Path,
        help="checkpoints, metrics and TensorBoard logs (a rerun resumes from here)",
    )
    g.add_argument("--output", required=True, type=Path, help="final model folder")
    add_settings(ap, WindowSettings, defaults=defaults)


def run_files(args: argparse.Namespace) -> RunFiles:
    return RunFiles(args.train, args.dev, args.work_dir, args.output)


def args_record(args: argparse.Namespace) -> dict:
    """The parsed arguments as JSON values (paths as strings; argparse internals left out)."""
    return {
        k: (str(v) if isinstance(v, Path) else v)
        for k, v in vars(args).items()
        if not k.startswith("_")
    }


def plot_loss(metrics_jsonl: Path, png: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = [json.loads(x) for x in metrics_jsonl.read_text().splitlines() if x.strip()]
    tr = [(r["step"], r["loss"]) for r in recs if r["kind"] == "train" and "loss" in r]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if tr:
        ax.plot(*zip(*tr), label="train loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def finish_output(output: Path, work_dir: Path, write_model, info: dict, title: str) -> None:
    """Write the final folder atomically: the model (``write_model(tmp)``), info, metrics, plot."""
    with atomic_dir(output) as tmp:
        write_model(tmp)
        for name in ("metrics.jsonl", "metrics.csv"):
            if (work_dir / name).exists():
                shutil.copyfile(work_dir / name, tmp / name)
        if (tmp / "metrics.jsonl").exists():
            plot_loss(tmp / "metrics.jsonl", tmp / "loss_curve.png", title)
        (tmp / "train_info.json").write_text(json.dumps(info, indent=2) + "\n")


def first_eval(eval_fn, model) -> dict:
    """The learning curve's first point (step 0), or {} without a dev sample."""
    if eval_fn is None:
        return {}
    with torch.no_grad():
        out = eval_fn(model.eval(), 0)
    model.train()
    return out


def window_batches(texts: list[str], tok, window: WindowSettings, seed: int):
    """(windows, length-bucketed batches of ``window.batch_size`` windows) of ``texts``."""
    wins = D.windows(D.tokenize(texts, tok), window.max_len)
    batches = L.BucketedBatches(
        [len(w) for w in wins],
        window.batch_size,
        seed,
        lambda idx: D.collate([wins[i] for i in idx], pad_to=8),
    )
    return wins, batches


def log_unigram_probs(wins, n: int) -> torch.Tensor:
    """Add-one log unigram probabilities of the targets of ``wins`` over ``n`` ids."""
    counts = np.bincount(np.concatenate([w[1:] for w in wins]), minlength=n).astype(np.float64)
    return torch.from_numpy(np.log((counts + 1.0) / (counts.sum() + len(counts)))).float()


# --------------------------------------------------------------------------- ReGPT stages
@dataclass
class PhraseInputs:
    """ReGPT's phrase-table inputs: the raw phrase embeddings, the negatives pool (ids and
    scores), and where the model starts: the phrase tokenizer (stage 1) or the stage-1 model
    folder (stage 2)."""

    phrase_embeddings: Path
    negatives_ids: Path
    negatives_scores: Path
    tokenizer: Path | None = None
    init: Path | None = None


def build_regpt(stage: int, inputs: PhraseInputs, size: BackboneSettings, opts: ReGPTSettings):
    """(phrase tokenizer, model): a fresh model (stage 1) or the stage-1 model (stage 2)."""
    from relift.regpt.model import ReGPT, load_tokenizer

    tok_dir = inputs.init if stage == 2 else inputs.tokenizer
    tok = load_tokenizer(require_file(tok_dir, "tokenizer folder"))
    if stage == 2:
        model = ReGPT.from_pretrained(inputs.init, inputs.phrase_embeddings).train()
    else:
        model = ReGPT.build(
            inputs.phrase_embeddings,
            hidden=size.hidden,
            layers=size.layers,
            heads=size.heads,
            intermediate=size.intermediate,
            max_positions=size.max_positions,
            pretrained_decoder=opts.pretrained_decoder or None,
            phrase_bias=opts.phrase_bias,
        )
    if len(tok) != model.num_phrases:
        raise InputError(
            f"tokenizer has {len(tok)} entries but the phrase table {model.num_phrases}",
            path=inputs.phrase_embeddings,
        )
    return tok, model


def load_pool(inputs: PhraseInputs, model, negatives: int, max_len: int):
    """The negatives pool (ids, scores), memory-mapped, checked against the model."""
    pool_ids = np.load(require_file(inputs.negatives_ids, "negatives ids"), mmap_mode="r")
    pool_scores = np.load(require_file(inputs.negatives_scores, "negatives scores"), mmap_mode="r")
    if pool_ids.shape[0] != model.num_phrases or pool_scores.shape != pool_ids.shape:
        raise InputError(
            f"negatives pool {pool_ids.shape} / scores {pool_scores.shape} do not match "
            f"{model.num_phrases} phrases",
            path=inputs.negatives_ids,
        )
    if negatives > pool_ids.shape[1] - 1:
        raise InputError(f"--negatives {negatives} exceeds the pool depth {pool_ids.shape[1]} - 1")
    if max_len > model.config.max_position_embeddings:
        raise InputError(
            f"--max-len {max_len} exceeds the model's {model.config.max_position_embeddings}"
            " positions"
        )
    return pool_ids, pool_scores


def regpt_loss(stage: int, opts: ReGPTSettings, pool, model, log_unigram, seed: int):
    """The contrastive loss of a stage: in-batch (stage 1 default), hard or full-table."""
    from relift.regpt.losses import ReGPTLoss

    in_device = opts.in_device if opts.in_device is not None else stage == 1
    kind = "full" if opts.full_table else ("inbatch" if in_device else "hard")
    return ReGPTLoss(
        kind,
        *pool,
        model.num_phrases,
        opts.negatives,
        opts.threshold,
        opts.temperature,
        seed=seed,
        log_q=log_unigram if opts.logq and kind == "inbatch" else None,
    )


def regpt_info(stage: int, init: Path | None, res: L.TrainResult, run: dict) -> dict:
    """train_info.json of a stage: this run's numbers (``run``: its counts, first evaluation and
    arguments), and the totals of ReGPT's whole training so far (stage 1 + stage 2: the
    stage-1 model's totals are read from ``init``)."""
    info = {
        "stage": stage,
        "steps": res.step,
        "tokens": res.tokens,
        "train_seconds": round(res.train_seconds, 2),
        "resumed_from": res.resumed_from,
        "tokens_per_s": res.tokens / max(res.train_seconds, 1e-9),
        **{k: run[k] for k in ("chunks", "windows", "parameters")},
        "init_tokens": 0,
        "init_seconds": 0.0,
        "init_bytes": 0,
        # UTF-8 bytes of training text per target: training tokens -> bytes of text
        "bytes_per_target": run["bytes_per_target"],
        "bytes": round(res.tokens * run["bytes_per_target"]),
        "start_eval": run["start_eval"],
        "last_eval": res.last_metrics,
        "args": run["args"],
    }
    prev = init / "train_info.json" if stage == 2 and init else None
    if prev is not None and prev.exists():
        p = json.loads(prev.read_text())
        info["init_tokens"] = p.get("total_tokens", 0)
        info["init_seconds"] = p.get("total_train_seconds", p.get("train_seconds", 0.0))
        info["init_bytes"] = p.get("total_bytes", p.get("bytes", 0))
    info["total_tokens"] = info["init_tokens"] + res.tokens
    info["total_train_seconds"] = round(info["init_seconds"] + res.train_seconds, 2)
    info["total_bytes"] = info["init_bytes"] + info["bytes"]
    return info


def train_regpt(
    stage: int,
    inputs: PhraseInputs,
    files: RunFiles,
    settings: tuple[BackboneSettings, WindowSettings, ReGPTSettings],
    cfg: L.TrainConfig,
    record: dict,
) -> L.TrainResult:
    """Train ReGPT stage 1 (a fresh model) or stage 2 (from ``inputs.init``) and write
    ``files.output``; ``record``: the run's arguments, kept in train_info.json."""
    size, window, opts = settings
    L.seed_everything(cfg.seed)
    tok, model = build_regpt(stage, inputs, size, opts)
    pool = load_pool(inputs, model, opts.negatives, window.max_len)
    texts = D.load_texts(files.train, window.max_train_chunks)
    wins, batches = window_batches(texts, tok, window, cfg.seed)
    run = {
        "chunks": len(texts),
        "windows": len(wins),
        "parameters": model.num_parameters(),
        "bytes_per_target": D.bytes_per_target(texts, wins),
        "args": record,
    }
    LOG.info(
        "stage %d: %d chunks -> %d windows, %d phrase targets; model %.2fM parameters",
        *(stage, len(texts), len(wins), D.count_targets(wins), run["parameters"] / 1e6),
    )
    log_unigram = log_unigram_probs(wins, model.num_phrases)
    if stage == 1 and model.phrase_bias is not None:
        with torch.no_grad():  # start from the unigram model of the phrases
            model.phrase_bias.copy_(log_unigram.to(model.phrase_bias.device))
    loss_fn = regpt_loss(stage, opts, pool, model, log_unigram, cfg.seed)
    device_of = lambda m: m.phrase_table.device  # noqa: E731
    eval_fn = dev_eval_fn(files.dev, window.dev_chunks, tok, window.max_len, eval_regpt, device_of)
    run["start_eval"] = first_eval(eval_fn, model) if stage == 1 else {}

    def export(m, res: L.TrainResult) -> None:
        info = regpt_info(stage, inputs.init, res, run)
        title = f"ReGPT stage {stage}"
        finish_output(files.output, files.work_dir, lambda tmp: m.save_to(tmp, tok), info, title)
        LOG.info(
            "stage %d: %d steps, %d phrase tokens in %.0fs -> %s",
            *(stage, res.step, res.tokens, res.train_seconds, files.output),
        )

    fingerprint = run_fingerprint(
        size,
        window,
        opts,
        {"stage": stage, "tokenizer": inputs.tokenizer, "init": inputs.init},
        inputs=(
            files.train,
            inputs.init and inputs.init / "model.safetensors",
            inputs.phrase_embeddings,
            inputs.negatives_ids,
        ),
        code=("relift.regpt.training",),
    )
    return L.train(
        model, loss_fn, batches, cfg, files.work_dir, eval_fn, export, fingerprint=fingerprint
    )


# --------------------------------------------------------------------------- token-level baseline
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


def matched_tokens(target_tokens: int, match_tokens: Path | None) -> int:
    """The baseline's training tokens: ``target_tokens``, or the ``total_tokens`` of ReGPT's
    final train_info.json (``match_tokens``)."""
    if target_tokens:
        return target_tokens
    if not match_tokens:
        raise InputError("give --match-tokens (ReGPT's final train_info.json) or --target-tokens")
    info = json.loads(require_file(match_tokens, "ReGPT train_info.json").read_text())
    if "total_tokens" not in info:
        raise InputError("no total_tokens recorded", path=match_tokens, field="total_tokens")
    return int(info["total_tokens"])


def baseline_tokenizer(base: str, texts: list[str], vocab_size: int):
    """The base tokenizer, or its BPE retrained on ``texts`` into ``vocab_size`` word-internal
    tokens (Metaspace pre-tokenizer)."""
    from relift.regpt.tokenizer import load_base_tokenizer, train_phrase_tokenizer

    tok = load_base_tokenizer(base)
    if vocab_size:
        tok = train_phrase_tokenizer(tok, iter([texts]), vocab_size, "metaspace")
        LOG.info("baseline tokenizer retrained on the training split: %d tokens", len(tok))
    return tok


def build_baseline(size: BackboneSettings, output_bias: bool, tok, wins):
    """A LlamaForCausalLM of ReGPT's backbone size over ``tok``; with ``output_bias`` its head
    starts as the unigram model of the training tokens ``wins``."""
    from relift.regpt.model import llama_config
    from relift.regpt.token_lm import build_token_lm, log_unigram

    sizes = (size.hidden, size.layers, size.heads, size.intermediate, size.max_positions)
    config = llama_config(*sizes, vocab_size=len(tok))
    prior = log_unigram(wins, len(tok)) if output_bias else None
    return build_token_lm(config, output_bias, prior)


def baseline_info(res: L.TrainResult, run: dict, regpt: dict) -> dict:
    """train_info.json of the baseline (``run``: its counts, first evaluation and arguments;
    ``regpt``: ReGPT's final train_info.json, for the comparison)."""
    nbytes = round(res.tokens * run["bytes_per_target"])
    return {
        "steps": res.step,
        "tokens": res.tokens,
        "total_tokens": res.tokens,
        "target_tokens": run["target_tokens"],
        "vocab_size": run["vocab_size"],
        "bytes_per_target": run["bytes_per_target"],
        "bytes": nbytes,
        "total_bytes": nbytes,
        # ReGPT's stage 1 + stage 2 for the comparison (the same machine, the same text)
        "regpt_total_train_seconds": regpt.get("total_train_seconds"),
        "regpt_total_bytes": regpt.get("total_bytes"),
        "train_seconds": round(res.train_seconds, 2),
        "total_train_seconds": round(res.train_seconds, 2),
        "tokens_per_s": res.tokens / max(res.train_seconds, 1e-9),
        "resumed_from": res.resumed_from,
        **{k: run[k] for k in ("chunks", "windows", "parameters", "output_bias", "start_eval")},
        "last_eval": res.last_metrics,
        "args": run["args"],
    }


def train_baseline(
    base_tokenizer: str,
    target: int,
    files: RunFiles,
    settings: tuple[BackboneSettings, WindowSettings, BaselineSettings],
    cfg: L.TrainConfig,
    record: dict,
    regpt: dict,
) -> L.TrainResult:
    """Train the token-level LM for ``settings``' steps, or as many as hold ``target`` training
    tokens, and write ``files.output``; ``regpt``: ReGPT's final train_info.json (or {})."""
    import dataclasses

    size, window, opts = settings
    texts = D.load_texts(files.train, window.max_train_chunks)
    tok = baseline_tokenizer(base_tokenizer, texts, opts.vocab_size)
    wins, batches = window_batches(texts, tok, window, cfg.seed)
    steps = opts.steps or steps_for_tokens(batches, wins, target, cfg.grad_accum)
    cfg = dataclasses.replace(cfg, max_steps=steps)
    L.seed_everything(cfg.seed)
    model = build_baseline(size, opts.output_bias, tok, wins)
    run = {
        "target_tokens": target,
        "vocab_size": len(tok),
        "bytes_per_target": D.bytes_per_target(texts, wins),
        "chunks": len(texts),
        "windows": len(wins),
        "parameters": sum(p.numel() for p in model.parameters()),
        "output_bias": opts.output_bias,
        # the step count this run computed, not the flag's value
        "args": {**record, "max_steps": cfg.max_steps},
    }
    LOG.info(
        "baseline: %d chunks -> %d windows, %.1f tokens/batch; target %d tokens -> %d steps; "
        "%.2fM parameters; output bias %s",
        *(len(texts), len(wins), D.count_targets(wins) / len(batches), target, steps),
        run["parameters"] / 1e6,
        "on (log unigram)" if opts.output_bias else "off",
    )
    device_of = lambda m: m.device  # noqa: E731
    eval_fn = dev_eval_fn(
        files.dev, window.dev_chunks, tok, window.max_len, eval_causal_lm, device_of
    )
    run["start_eval"] = first_eval(eval_fn, model)

    def export(m, res: L.TrainResult) -> None:
        def write(tmp):
            m.save_pretrained(str(tmp))
            save_tokenizer(tok, tmp)

        info = baseline_info(res, run, regpt)
        finish_output(files.output, files.work_dir, write, info, "token-level baseline")
        LOG.info(
            "baseline: %d steps, %d tokens (target %d) in %.0fs -> %s",
            *(res.step, res.tokens, target, res.train_seconds, files.output),
        )

    fingerprint = run_fingerprint(
        size,
        window,
        opts,
        {"base_tokenizer": base_tokenizer},
        inputs=(files.train, files.dev),
        code=("relift.regpt.training",),
        target_tokens=target,
    )
    return L.train(
        model,
        causal_lm_loss,
        batches,
        cfg,
        files.work_dir,
        eval_fn,
        export,
        fingerprint=fingerprint,
    )
