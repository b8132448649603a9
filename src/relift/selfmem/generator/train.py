"""Train the Selfmem retrieval-augmented generator on (source, memory) -> target.

The model is built from scratch (a small BART-style Transformer with a tokenizer folder from
``relift.selfmem.generator.tokenizer``) or from ``--pretrained``; ``--arch`` picks vanilla, joint or dual
(see :mod:`relift.selfmem.generator.model`). Training runs in the shared loop
(:func:`relift.train.loop.train`: Accelerate, checkpoints and resume, metrics, early stopping)
with label-smoothed cross-entropy (0.1), an inverse-square-root schedule after a linear warmup
and gradient clipping. Every ``--eval-every`` updates the model decodes the dev split (beam
``--eval-beams``) and sacrebleu's corpus BLEU is computed (``--eval-metric rouge``: the mean of
ROUGE-1/2/Lsum for summarisation); the best checkpoint by that dev score is
exported to ``--output`` (a generator folder: model, tokenizer, ``selfmem.json``,
``train_result.json``), and training stops after ``--patience`` evaluations without improvement.

``--work-dir`` keeps the loop's checkpoints and metrics (``metrics.jsonl``/``.csv``,
TensorBoard); rerunning with the same settings resumes there, changed settings start over.

Settings (:class:`relift.selfmem.generator.settings.GeneratorSettings` and the loop's
:class:`relift.train.loop.TrainConfig`) come as ``--settings JSON`` (the workflow passes the
``selfmem.generator`` section) and/or one flag each; a flag overrides the JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from relift.io import LOG, InputError, atomic_dir, run_cli
from relift.selfmem.data import Split, load_memory, load_split, read_hit_ids
from relift.selfmem.generator.model import ARCHS, Generator, GeneratorSpec, ModelSize
from relift.selfmem.generator.recipe import mix_training_memory
from relift.selfmem.generator.settings import GENERATOR_TRAIN_DEFAULTS, GeneratorSettings
from relift.selfmem.match import BANDS, band_of, read_scores, read_sources
from relift.settings import add_settings, settings_from_args
from relift.train import BucketedBatches, seed_everything, train
from relift.train.loop import TrainConfig

# the run's inputs (with the settings: a change starts training over instead of resuming)
RUN_ARGS = (
    "train",
    "dev",
    "train_memory",
    "dev_memory",
    "src_field",
    "trg_field",
    "tokenizer",
    "arch",
    "train_hits",
    "eval_metric",
    "train_match",
    "dev_match",
    "init_generator",
    "train_memory_sources",
    "dev_memory_sources",
)
# loop settings this CLI derives (save_every = eval_every, the best by --eval-metric) or that a
# run does not set (micro_batch_size: DeepSpeed's)
LOOP_SET_HERE = ("save_every", "best_metric", "best_mode", "micro_batch_size")


class TiedSafe(torch.nn.Module):
    """The generator as the training loop sees it: ``state_dict`` lists every tied tensor
    (shared embeddings = LM head) once, so that safetensors can save it, and loading tolerates
    the dropped aliases (they share storage with the kept key)."""

    def __init__(self, generator: torch.nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, **kwargs):
        return self.generator(**kwargs)

    def state_dict(self, *args, **kwargs):
        sd = super().state_dict(*args, **kwargs)
        seen, out = set(), type(sd)()
        for k, v in sd.items():
            key = (
                v.untyped_storage().data_ptr(),
                v.storage_offset(),
                tuple(v.shape),
                tuple(v.stride()),
            )
            if key not in seen:
                seen.add(key)
                out[k] = v
        return out

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        res = super().load_state_dict(state_dict, strict=False, assign=assign)
        if strict and res.unexpected_keys:
            raise RuntimeError(f"unexpected keys in state dict: {res.unexpected_keys[:5]}")
        full = super().state_dict()
        kept = {full[k].untyped_storage().data_ptr() for k in state_dict if k in full}
        missing = [k for k in res.missing_keys if full[k].untyped_storage().data_ptr() not in kept]
        if strict and missing:
            raise RuntimeError(f"missing keys in state dict: {missing[:5]}")
        return type(res)(missing, res.unexpected_keys)  # tied aliases are not missing


def collate_fn(gen: Generator, split: Split, memories: list[str] | None):
    """``collate(indices)`` for the loop: encoder inputs, decoder inputs and labels."""
    from transformers.models.bart.modeling_bart import shift_tokens_right

    cfg = gen.model.config

    def collate(idx: list[int]) -> dict:
        b = gen.batch(
            [split.sources[i] for i in idx],
            [memories[i] for i in idx] if memories else None,
            [split.targets[i] for i in idx],
        )
        b["decoder_input_ids"] = shift_tokens_right(
            b["labels"], cfg.pad_token_id, cfg.decoder_start_token_id
        )
        return b

    return collate


def make_loss_fn(label_smoothing: float):
    def loss_fn(model, batch, step):
        labels = batch.pop("labels")
        logits = model(**batch).logits
        flat, gold = logits.view(-1, logits.size(-1)).float(), labels.view(-1)
        loss = torch.nn.functional.cross_entropy(
            flat, gold, ignore_index=-100, label_smoothing=label_smoothing
        )
        with torch.no_grad():
            nll = torch.nn.functional.cross_entropy(flat, gold, ignore_index=-100)
        return loss, {"tokens": int(labels.ne(-100).sum()), "nll": float(nll)}

    return loss_fn


def approx_lengths(gen: Generator, split: Split, memories: list[str] | None) -> list[int]:
    """Per-example token counts (input + target) for length bucketing."""
    tok = gen.tokenizer
    n_src = [len(x) for x in tok(split.sources, add_special_tokens=False)["input_ids"]]
    n_trg = [len(x) for x in tok(split.targets, add_special_tokens=False)["input_ids"]]
    n_mem = (
        [len(x) for x in tok(memories, add_special_tokens=False)["input_ids"]]
        if memories
        else [0] * len(split)
    )
    return [
        max(s + (m if gen.spec.arch != "vanilla" else 0), t)
        for s, m, t in zip(n_src, n_mem, n_trg, strict=True)
    ]


def decode_split(
    gen: Generator,
    sources: list[str],
    memories: list[str] | None,
    num_beams: int,
    batch_size: int,
    max_new_tokens: int | None = None,
) -> list[str]:
    """Best hypothesis per source, batched by source length."""
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    out = [""] * len(sources)
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        res = gen.generate(
            [sources[i] for i in idx],
            [memories[i] for i in idx] if memories else None,
            num_beams=num_beams,
            num_return_sequences=1,
            max_new_tokens=max_new_tokens,
        )
        for i, r in zip(idx, res, strict=True):
            out[i] = r[0][0]
    return out


def dev_metric(name: str, hyps: list[str], refs: list[str]) -> float:
    """``bleu``: sacrebleu corpus BLEU; ``rouge``: mean of ROUGE-1/2/Lsum F1 (x100)."""
    from relift.score import score

    res = score(hyps, refs, [name], width=6)
    if name == "bleu":
        return float(res["bleu"]["score"])
    r = res["rouge"]
    return (r["rouge1"]["score"] + r["rouge2"]["score"] + r["rougeLsum"]["score"]) / 3


def resolve_cpu_precision(precision: str, device: str) -> str:
    """``auto`` on a CPU: bf16 autocast when the CPU has native bf16 (measured 2.2-2.5x faster
    than fp32 for this generator), else fp32; CUDA keeps the loop's auto (bf16). Logged."""
    import torch

    if precision != "auto" or device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        return precision
    from relift.hardware import cpu_native_bf16, native_bf16_reason

    native = cpu_native_bf16()
    LOG.info(
        "precision auto on CPU: %s (%s)", "bf16" if native else "fp32", native_bf16_reason(native)
    )
    return "bf16" if native else "fp32"


def build_generator(args, st: GeneratorSettings, tok, spec: GeneratorSpec, seed: int):
    """The generator training starts from: a warm start (``--init-generator``: its weights,
    this run's spec and recipe), a pretrained checkpoint, or from scratch; and the compute
    already spent on it (``{"from", "steps", "train_seconds"}``)."""
    init = {"from": "", "steps": 0, "train_seconds": 0.0}
    if args.init_generator:
        base = Generator.load(args.init_generator)
        res_path = args.init_generator / "train_result.json"
        done = json.loads(res_path.read_text()) if res_path.exists() else {}
        init = {
            "from": str(args.init_generator),
            "steps": int(done.get("total_steps", done.get("steps", 0))),
            "train_seconds": float(done.get("total_train_seconds", done.get("train_seconds", 0))),
        }
        LOG.info("warm start from %s (%d updates already)", args.init_generator, init["steps"])
        if st.memory_segments and spec.arch == "joint":
            if not hasattr(base.model, "enable_memory_segments"):
                raise InputError(
                    "memory_segments: the warm start's generator has no copy head (the segment "
                    "embedding is built for the joint generator with the copy head)",
                    path=args.init_generator,
                )
            base.model.enable_memory_segments()
        return Generator(base.model, tok, spec), init
    if st.pretrained:
        return Generator.from_pretrained_model(st.pretrained, tok, spec), init
    size = ModelSize.from_settings(st, args.arch)  # dual: no copy head
    return Generator.from_scratch(tok, spec, size, seed=seed), init


def write_dev_curve(metrics: Path, out: Path, init: dict) -> None:
    """``dev_curve.csv``: one line per dev evaluation of the loop's ``metrics.jsonl`` (updates
    and training seconds, also counted from scratch through a warm start's ``init``)."""
    import csv

    recs = []
    if metrics.exists():
        recs = [json.loads(x) for x in metrics.read_text().splitlines() if x.strip()]
    recs = [r for r in recs if r.get("kind") == "eval"]
    keys = sorted({k for r in recs for k in r} - {"kind", "step", "tokens", "train_seconds"})
    with open(out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["step", "train_seconds", "total_steps", "total_train_seconds", *keys])
        for r in recs:
            w.writerow(
                [
                    r["step"],
                    r["train_seconds"],
                    r["step"] + init["steps"],
                    round(r["train_seconds"] + init["train_seconds"], 3),
                    *[r.get(k, "") for k in keys],
                ]
            )


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m relift.selfmem.generator.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--train", required=True, type=Path, help="training split (JSONL)")
    ap.add_argument(
        "--dev", required=True, type=Path, help="dev split (JSONL), for best-checkpoint BLEU"
    )
    ap.add_argument(
        "--train-memory", type=Path, help="memories of the training split (one per line)"
    )
    ap.add_argument("--dev-memory", type=Path, help="memories of the dev split")
    ap.add_argument("--src-field", default="src")
    ap.add_argument("--trg-field", default="trg")
    ap.add_argument("--tokenizer", required=True, type=Path, help="tokenizer folder")
    ap.add_argument("--arch", choices=ARCHS, default="joint")
    ap.add_argument(
        "--train-hits", type=Path, help="retrieved hits of the training split (hits.jsonl)"
    )
    ap.add_argument(
        "--eval-metric",
        choices=("bleu", "rouge"),
        default="bleu",
        help="dev metric of the best checkpoint: bleu (translation) or rouge (summarisation)",
    )
    ap.add_argument(
        "--train-match",
        type=Path,
        help="fuzzy-match scores of the training memories (memory/train.match.txt): the memory "
        "recipe's threshold and marker, and the dev curve per match band",
    )
    ap.add_argument("--dev-match", type=Path, help="fuzzy-match scores of the dev memories")
    ap.add_argument(
        "--train-memory-sources",
        type=Path,
        help="the training memories' own sources (memory/train.source.txt), for the "
        "memory_source recipe",
    )
    ap.add_argument(
        "--dev-memory-sources", type=Path, help="the dev memories' own sources (memory_source)"
    )
    ap.add_argument(
        "--init-generator",
        type=Path,
        help="warm start: continue from this trained generator folder (e.g. the vanilla one)",
    )
    ap.add_argument(
        "--work-dir", required=True, type=Path, help="checkpoints and metrics (resumable)"
    )
    ap.add_argument("--output", required=True, type=Path, help="generator folder to write")
    add_settings(
        ap, GeneratorSettings, TrainConfig, defaults=GENERATOR_TRAIN_DEFAULTS, skip=LOOP_SET_HERE
    )
    return ap


def resolve_settings(args) -> tuple[GeneratorSettings, TrainConfig]:
    """The generator's and the loop's settings, checked; a checkpoint at every dev evaluation,
    the best one by the task's dev metric exported."""
    st, cfg = settings_from_args(
        args, GeneratorSettings, TrainConfig, defaults=GENERATOR_TRAIN_DEFAULTS
    )
    cfg.save_every = cfg.eval_every
    cfg.best_metric, cfg.best_mode = args.eval_metric, "max"
    cfg.validate()
    cfg.precision = resolve_cpu_precision(cfg.precision, cfg.device)
    if not 0 <= st.label_smoothing < 1:
        raise InputError(f"--label-smoothing must be in [0, 1), got {st.label_smoothing}")
    if args.arch != "vanilla" and not (args.train_memory and args.dev_memory):
        raise InputError(f"the {args.arch} architecture needs --train-memory and --dev-memory")
    if (
        st.memory_source
        and args.arch != "vanilla"
        and not (args.train_memory_sources and args.dev_memory_sources)
    ):
        raise InputError(
            "memory_source: the generator reads each memory with its own source; give "
            "--train-memory-sources and --dev-memory-sources (memory/<split>.source.txt)"
        )
    return st, cfg


@dataclass
class Data:
    """The splits, their memories and the memories' fuzzy-match scores."""

    train: Split
    dev: Split
    train_mem: list[str] | None
    dev_mem: list[str] | None
    train_sc: list[float] | None
    dev_sc: list[float] | None
    # the memories' own sources (memory_source), or None
    train_msrc: list[str] | None = None
    dev_msrc: list[str] | None = None


def load_data(args, st: GeneratorSettings, seed: int) -> Data:
    """The splits and memories, with the training shares of the memory recipe applied and dev
    cut to ``dev_max_examples``."""
    train_split = load_split(args.train, args.src_field, args.trg_field)
    dev = load_split(args.dev, args.src_field, args.trg_field)
    uses_memory = args.arch != "vanilla"
    train_mem = load_memory(args.train_memory, train_split) if uses_memory else None
    train_sc = read_scores(args.train_match, len(train_split)) if args.train_match else None
    want_src = uses_memory and st.memory_source
    train_msrc = read_sources(args.train_memory_sources, len(train_split)) if want_src else None
    shares = {
        "withheld": st.memory_withheld_share,
        "random": st.memory_random_share,
        "closest": st.memory_closest_share,
        "noised_target": st.memory_noise_share,
    }
    if uses_memory and any(shares.values()):
        hits = read_hit_ids(args.train_hits, len(train_split)) if args.train_hits else None
        train_mem, train_sc, train_msrc, counts = mix_training_memory(
            train_split, train_mem, train_sc, hits, shares, seed, train_msrc
        )
        LOG.info("training memories: %s", counts)
    dev_mem = load_memory(args.dev_memory, dev) if uses_memory else None
    dev_sc = read_scores(args.dev_match, len(dev)) if args.dev_match else None
    dev_msrc = read_sources(args.dev_memory_sources, len(dev)) if want_src else None
    if st.dev_max_examples:
        n = st.dev_max_examples
        dev = Split(dev.path, dev.sources[:n], dev.targets[:n], dev.lines[:n])
        dev_mem = dev_mem[:n] if dev_mem else None
        dev_sc = dev_sc[:n] if dev_sc else None
        dev_msrc = dev_msrc[:n] if dev_msrc else None
    return Data(train_split, dev, train_mem, dev_mem, train_sc, dev_sc, train_msrc, dev_msrc)


def make_eval_fn(gen: Generator, data: Data, st: GeneratorSettings, metric: str):
    """The dev evaluation: decode dev, the metric overall and per match band."""

    def eval_fn(model, step):
        g = Generator(model.generator, gen.tokenizer, gen.spec)
        t0 = time.time()
        dev = data.dev
        hyps = decode_split(g, dev.sources, data.dev_mem, st.eval_beams, st.eval_batch_size)
        out = {metric: dev_metric(metric, hyps, dev.targets)}
        if data.dev_sc is not None:  # the dev curve per match band
            for b in range(len(BANDS)):
                idx = [i for i, x in enumerate(data.dev_sc) if band_of(x) == b]
                if idx:
                    out[f"{metric}_band{b}"] = dev_metric(
                        metric, [hyps[i] for i in idx], [dev.targets[i] for i in idx]
                    )
        return out | {"decode_seconds": time.time() - t0}

    return eval_fn


def make_export_fn(gen: Generator, args, init: dict, t_start: float):
    """Export the best checkpoint: the generator folder with its dev curve and result."""
    n_params = sum(p.numel() for p in gen.model.parameters())

    def export_fn(model, result):
        with atomic_dir(args.output) as tmp:
            Generator(model.generator, gen.tokenizer, gen.spec).save(tmp)
            write_dev_curve(args.work_dir / "metrics.jsonl", tmp / "dev_curve.csv", init)
            res = {
                "arch": args.arch,
                "steps": result.step,
                "best_step": result.best_step,
                "eval_metric": args.eval_metric,
                "best_dev": result.best_value,
                "stopped_early": result.stopped_early,
                "train_seconds": round(result.train_seconds, 1),
                # warm start: the generator it continued from (its compute counts too)
                "init": init,
                "total_steps": result.step + init["steps"],
                "total_train_seconds": round(result.train_seconds + init["train_seconds"], 1),
                "parameters": n_params,
                "last_eval": result.last_metrics,
                "wall_seconds": round(time.time() - t_start, 1),
            }
            (tmp / "train_result.json").write_text(json.dumps(res, indent=2) + "\n")

    return export_fn


def run_fingerprint_of(args, st: GeneratorSettings) -> dict:
    """What a checkpoint must match to be resumed: the settings, the run's inputs and the code
    (relift.train.fingerprint)."""
    from relift.train.fingerprint import run_fingerprint

    run_args = {k: str(v) for k, v in sorted(vars(args).items()) if k in RUN_ARGS}
    inputs = [getattr(args, k) for k in RUN_ARGS if isinstance(getattr(args, k), Path)]
    return run_fingerprint(st, run_args, inputs=inputs, code=("relift.selfmem.generator.train",))


def train_generator(args, st: GeneratorSettings, cfg: TrainConfig, data: Data):
    """Build (or warm-start) the generator and train it in the shared loop."""
    from relift.selfmem.generator.tokenizer import load_tokenizer

    t_start = time.time()
    tok = load_tokenizer(args.tokenizer)
    spec = GeneratorSpec(
        args.arch,
        st.max_source_length,
        st.max_memory_length,
        st.max_target_length,
        memory_min_match=st.memory_min_match,
        memory_marker=st.memory_marker,
        memory_source=st.memory_source,
    )
    seed_everything(cfg.seed)
    gen, init = build_generator(args, st, tok, spec, cfg.seed)
    # every memory the generator reads goes through its recipe (threshold, marker)
    data.train_mem = gen.memory_view(data.train_mem, data.train_sc, data.train_msrc)
    data.dev_mem = gen.memory_view(data.dev_mem, data.dev_sc, data.dev_msrc)
    LOG.info(
        "%s generator: %.2fM parameters, %d training pairs, %d dev pairs",
        args.arch,
        sum(p.numel() for p in gen.model.parameters()) / 1e6,
        len(data.train),
        len(data.dev),
    )
    batches = BucketedBatches(
        approx_lengths(gen, data.train, data.train_mem),
        st.batch_size,
        seed=cfg.seed,
        collate=collate_fn(gen, data.train, data.train_mem),
        max_tokens=st.max_tokens,
    )
    return train(
        TiedSafe(gen.model),
        make_loss_fn(st.label_smoothing),
        batches,
        cfg,
        args.work_dir,
        eval_fn=make_eval_fn(gen, data, st, args.eval_metric),
        export_fn=make_export_fn(gen, args, init, t_start),
        fingerprint=run_fingerprint_of(args, st),
    )


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    st, cfg = resolve_settings(args)
    data = load_data(args, st, cfg.seed)
    res = train_generator(args, st, cfg, data)
    LOG.info(
        "done: %d steps, best dev %s %s at step %d -> %s",
        res.step,
        args.eval_metric,
        f"{res.best_value:.2f}" if res.best_value is not None else "n/a",
        res.best_step,
        args.output,
    )


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
