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
``--work-dir``; a rerun with the same work dir resumes. At the end the model folder
``--output`` is written atomically: ``config.json``, ``model.safetensors``, the tokenizer,
``train_info.json`` (steps, phrase tokens consumed, time, hyperparameters), ``metrics.jsonl``,
``metrics.csv`` and ``loss_curve.png``.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

from relift.io import LOG, InputError, atomic_dir, require_file, run_cli
from relift.regpt import data as D
from relift.regpt.settings import BackboneSettings, ReGPTSettings, WindowSettings
from relift.settings import add_settings
from relift.train import loop as L

SETTINGS = (BackboneSettings, WindowSettings, ReGPTSettings)  # with TrainConfig: --settings


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


RUN_ONLY = {
    "output",
    "work_dir",
    "stop_after",
    "progress",
    "threads",
    "log_every",
    "save_every",
    "keep_last",
}


def args_record(args: argparse.Namespace) -> dict:
    """The parsed arguments as JSON values (paths as strings; argparse internals left out)."""
    return {
        k: (str(v) if isinstance(v, Path) else v)
        for k, v in vars(args).items()
        if not k.startswith("_")
    }


def fingerprint(args: argparse.Namespace, *inputs) -> dict:
    """The run's identity for resuming: its hyperparameters and the size/mtime of its inputs."""

    def stamp(p: Path):
        p = Path(p)
        files = sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else [p]
        return [[str(f), f.stat().st_size, int(f.stat().st_mtime)] for f in files if f.exists()]

    hp = {k: v for k, v in args_record(args).items() if k not in RUN_ONLY}
    return {"args": hp, "inputs": [stamp(p) for p in inputs if p], "code": code_hash()}


def code_hash() -> str:
    """Hash of the modules that define the training computation: changed code never resumes."""
    import hashlib

    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for rel in (
        "regpt/train.py",
        "regpt/baseline.py",
        "regpt/token_lm.py",
        "regpt/model.py",
        "regpt/losses.py",
        "regpt/data.py",
        *sorted(str(p.relative_to(root)) for p in (root / "train").glob("*.py")),
    ):
        h.update((root / rel).read_bytes())
    return h.hexdigest()[:16]


def add_data_args(ap: argparse.ArgumentParser) -> None:
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
    add_settings(ap, WindowSettings)


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


def main(argv: list[str] | None = None) -> None:
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
    add_settings(ap, BackboneSettings, ReGPTSettings)
    add_data_args(ap)
    L.add_train_args(ap, optimizer="lamb", lr=5e-3)
    args = ap.parse_args(argv)
    cfg, *_ = L.config_from_args(args, *SETTINGS)  # also into args: args.hidden, ...
    cfg.micro_batch_size = args.batch_size
    in_device = args.in_device if args.in_device is not None else args.stage == 1
    stage = "full" if args.full_table else ("inbatch" if in_device else "hard")
    if args.stage == 2 and not args.init:
        raise InputError("--stage 2 needs --init (the stage-1 model folder)")
    if args.stage == 1 and not args.tokenizer:
        raise InputError("--stage 1 needs --tokenizer (the phrase tokenizer folder)")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from relift.regpt.losses import ReGPTLoss
    from relift.regpt.model import ReGPT, load_tokenizer

    tok_dir = args.init if args.stage == 2 else args.tokenizer
    tok = load_tokenizer(require_file(tok_dir, "tokenizer folder"))
    L.seed_everything(cfg.seed)
    if args.stage == 2:
        model = ReGPT.from_pretrained(args.init, args.phrase_embeddings).train()
    else:
        model = ReGPT.build(
            args.phrase_embeddings,
            hidden=args.hidden,
            layers=args.layers,
            heads=args.heads,
            intermediate=args.intermediate,
            max_positions=args.max_positions,
            pretrained_decoder=args.pretrained_decoder or None,
            phrase_bias=args.phrase_bias,
        )
    if len(tok) != model.num_phrases:
        raise InputError(
            f"tokenizer has {len(tok)} entries but the phrase table {model.num_phrases}",
            path=args.phrase_embeddings,
        )
    pool_ids = np.load(require_file(args.negatives_ids, "negatives ids"), mmap_mode="r")
    pool_scores = np.load(require_file(args.negatives_scores, "negatives scores"), mmap_mode="r")
    if pool_ids.shape[0] != model.num_phrases or pool_scores.shape != pool_ids.shape:
        raise InputError(
            f"negatives pool {pool_ids.shape} / scores {pool_scores.shape} do not match "
            f"{model.num_phrases} phrases",
            path=args.negatives_ids,
        )
    if args.negatives > pool_ids.shape[1] - 1:
        raise InputError(
            f"--negatives {args.negatives} exceeds the pool depth {pool_ids.shape[1]} - 1"
        )
    if args.max_len > model.config.max_position_embeddings:
        raise InputError(
            f"--max-len {args.max_len} exceeds the model's {model.config.max_position_embeddings}"
            " positions"
        )

    texts = D.load_texts(args.train, args.max_train_chunks)
    wins = D.windows(D.tokenize(texts, tok), args.max_len)
    bytes_per_target = D.bytes_per_target(texts, wins)
    LOG.info(
        "stage %d: %d chunks -> %d windows, %d phrase targets; model %.2fM parameters",
        args.stage,
        len(texts),
        len(wins),
        D.count_targets(wins),
        model.num_parameters() / 1e6,
    )
    batches = L.BucketedBatches(
        [len(w) for w in wins],
        args.batch_size,
        cfg.seed,
        lambda idx: D.collate([wins[i] for i in idx], pad_to=8),
    )
    import torch

    counts = np.bincount(np.concatenate([w[1:] for w in wins]), minlength=model.num_phrases).astype(
        np.float64
    )
    log_unigram = torch.from_numpy(np.log((counts + 1.0) / (counts.sum() + len(counts)))).float()
    if args.stage == 1 and model.phrase_bias is not None:
        with torch.no_grad():  # start from the unigram model of the phrases
            model.phrase_bias.copy_(log_unigram.to(model.phrase_bias.device))
    log_q = log_unigram if args.logq and stage == "inbatch" else None
    loss_fn = ReGPTLoss(
        stage,
        pool_ids,
        pool_scores,
        model.num_phrases,
        args.negatives,
        args.threshold,
        args.temperature,
        seed=cfg.seed,
        log_q=log_q,
    )

    from relift.regpt.evaluate import dev_eval_fn, eval_regpt

    eval_fn = dev_eval_fn(
        args.dev, args.dev_chunks, tok, args.max_len, eval_regpt, lambda m: m.phrase_table.device
    )

    def export(m, res: L.TrainResult) -> None:
        info = {
            "stage": args.stage,
            "steps": res.step,
            "tokens": res.tokens,
            "train_seconds": round(res.train_seconds, 2),
            "resumed_from": res.resumed_from,
            "tokens_per_s": res.tokens / max(res.train_seconds, 1e-9),
            "chunks": len(texts),
            "windows": len(wins),
            "parameters": m.num_parameters(),
            "init_tokens": 0,
            "init_seconds": 0.0,
            "init_bytes": 0,
            # UTF-8 bytes of training text per target: training tokens -> bytes of text
            "bytes_per_target": bytes_per_target,
            "bytes": round(res.tokens * bytes_per_target),
            "start_eval": start_eval,
            "last_eval": res.last_metrics,
            "args": args_record(args),
        }
        if args.stage == 2:  # tokens of the whole ReGPT training so far (stage 1 + stage 2)
            prev = args.init / "train_info.json"
            if prev.exists():
                p = json.loads(prev.read_text())
                info["init_tokens"] = p.get("total_tokens", 0)
                info["init_seconds"] = p.get("total_train_seconds", p.get("train_seconds", 0.0))
                info["init_bytes"] = p.get("total_bytes", p.get("bytes", 0))
        info["total_tokens"] = info["init_tokens"] + res.tokens
        info["total_train_seconds"] = round(info["init_seconds"] + res.train_seconds, 2)
        info["total_bytes"] = info["init_bytes"] + info["bytes"]
        finish_output(
            args.output,
            args.work_dir,
            lambda tmp: m.save_to(tmp, tok),
            info,
            f"ReGPT stage {args.stage}",
        )
        LOG.info(
            "stage %d: %d steps, %d phrase tokens in %.0fs -> %s",
            args.stage,
            res.step,
            res.tokens,
            res.train_seconds,
            args.output,
        )

    start_eval = {}
    if eval_fn is not None and args.stage == 1:  # the learning curve's first point (step 0)
        with torch.no_grad():
            start_eval = eval_fn(model.eval(), 0)
        model.train()

    L.train(
        model,
        loss_fn,
        batches,
        cfg,
        args.work_dir,
        eval_fn=eval_fn,
        export_fn=export,
        fingerprint=fingerprint(
            args,
            args.train,
            args.init and args.init / "model.safetensors",
            args.phrase_embeddings,
            args.negatives_ids,
        ),
    )


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
