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
import shutil
import time
from pathlib import Path

import torch

from relift.io import LOG, InputError, atomic_dir, run_cli
from relift.selfmem.data import Split, load_memory, load_split, read_hit_ids
from relift.selfmem.generator.model import ARCHS, Generator, GeneratorSpec, ModelSize
from relift.selfmem.generator.settings import GENERATOR_TRAIN_DEFAULTS, GeneratorSettings
from relift.settings import add_settings, settings_from_args
from relift.settings import fingerprint as settings_fingerprint
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


def _words(text: str) -> set[str]:
    return set(text.lower().split())


def word_dice(a: str, b: str) -> float:
    """Dice overlap of the lower-cased word sets of two texts (0..1)."""
    wa, wb = _words(a), _words(b)
    return 2 * len(wa & wb) / (len(wa) + len(wb)) if wa or wb else 0.0


def noised_copy(text: str, rng, vocab: list[str], p_drop: float = 0.1, p_swap: float = 0.15):
    """The target as an imperfect memory: each word dropped with ``p_drop`` or replaced by a
    random training-target word with ``p_swap``."""
    out = []
    for w in text.split():
        u = rng.random()
        if u < p_drop:
            continue
        out.append(vocab[rng.integers(len(vocab))] if u < p_drop + p_swap else w)
    return " ".join(out)


def mix_training_memory(
    split: Split,
    memories: list[str],
    hits: list[list[int]] | None,
    closest_share: float,
    noise_share: float,
    seed: int,
) -> tuple[list[str], dict]:
    """Training memories that teach the generator to trust good memory (fixed per example):

    * a ``noise_share`` of examples get a noised copy of their own target (:func:`noised_copy`);
    * a ``closest_share`` get, of their retrieved hits (``hits``: training-example ids, self
      excluded), the one whose target is closest to theirs (word Dice);
    * the rest keep their BM25 top-1 memory. Returns the memories and the counts."""
    import numpy as np

    if closest_share + noise_share > 1:
        raise InputError(
            f"memory shares add up to {closest_share + noise_share:.2f} > 1",
            field="memory_closest_share",
        )
    if closest_share and hits is None:
        raise InputError("--memory-closest-share needs --train-hits")
    rng = np.random.default_rng([seed, 7])
    vocab = sorted({w for t in split.targets for w in t.split()})
    out, counts = list(memories), {"bm25": 0, "closest": 0, "noised_target": 0}
    u = rng.random(len(split))
    for i in range(len(split)):
        if u[i] < noise_share:
            out[i] = noised_copy(split.targets[i], rng, vocab)
            counts["noised_target"] += 1
        elif u[i] < noise_share + closest_share and hits[i]:
            best = max(hits[i], key=lambda j: word_dice(split.targets[j], split.targets[i]))
            out[i] = split.targets[best]
            counts["closest"] += 1
        else:
            counts["bm25"] += 1
    return out, counts


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


def main(argv: list[str] | None = None) -> None:
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
        "--work-dir", required=True, type=Path, help="checkpoints and metrics (resumable)"
    )
    ap.add_argument("--output", required=True, type=Path, help="generator folder to write")
    add_settings(
        ap, GeneratorSettings, TrainConfig, defaults=GENERATOR_TRAIN_DEFAULTS, skip=LOOP_SET_HERE
    )
    args = ap.parse_args(argv)
    st, cfg = settings_from_args(
        args, GeneratorSettings, TrainConfig, defaults=GENERATOR_TRAIN_DEFAULTS
    )
    # a checkpoint at every dev evaluation; the best one by the task's dev metric is exported
    cfg.save_every = cfg.eval_every
    cfg.best_metric, cfg.best_mode = args.eval_metric, "max"
    cfg.validate()
    cfg.precision = resolve_cpu_precision(cfg.precision, cfg.device)
    if not 0 <= st.label_smoothing < 1:
        raise InputError(f"--label-smoothing must be in [0, 1), got {st.label_smoothing}")
    if args.arch != "vanilla" and not (args.train_memory and args.dev_memory):
        raise InputError(f"the {args.arch} architecture needs --train-memory and --dev-memory")

    from relift.selfmem.generator.tokenizer import load_tokenizer

    t_start = time.time()
    train_split = load_split(args.train, args.src_field, args.trg_field)
    dev = load_split(args.dev, args.src_field, args.trg_field)
    uses_memory = args.arch != "vanilla"
    train_mem = load_memory(args.train_memory, train_split) if uses_memory else None
    if uses_memory and (st.memory_closest_share or st.memory_noise_share):
        hits = read_hit_ids(args.train_hits, len(train_split)) if args.train_hits else None
        train_mem, counts = mix_training_memory(
            train_split,
            train_mem,
            hits,
            st.memory_closest_share,
            st.memory_noise_share,
            cfg.seed,
        )
        LOG.info("training memories: %s", counts)
    dev_mem = load_memory(args.dev_memory, dev) if uses_memory else None
    if st.dev_max_examples:
        n = st.dev_max_examples
        dev = Split(dev.path, dev.sources[:n], dev.targets[:n], dev.lines[:n])
        dev_mem = dev_mem[:n] if dev_mem else None

    # a changed configuration must not resume from the old checkpoints
    run_args = {k: v for k, v in vars(args).items() if k in RUN_ARGS}
    fingerprint = {k: str(v) for k, v in sorted(run_args.items())} | settings_fingerprint(
        st, cfg, ignore=("progress", "threads", "stop_after", "device")
    )
    fp_path = args.work_dir / "run.json"
    if fp_path.exists() and json.loads(fp_path.read_text()) != fingerprint:
        LOG.warning(
            "settings changed since the checkpoints in %s were written: starting over",
            args.work_dir,
        )
        shutil.rmtree(args.work_dir)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    fp_path.write_text(json.dumps(fingerprint, indent=2) + "\n")

    tok = load_tokenizer(args.tokenizer)
    spec = GeneratorSpec(
        args.arch, st.max_source_length, st.max_memory_length, st.max_target_length
    )
    seed_everything(cfg.seed)
    if st.pretrained:
        gen = Generator.from_pretrained_model(st.pretrained, tok, spec)
    else:
        size = ModelSize(
            st.d_model,
            st.encoder_layers,
            st.decoder_layers,
            st.attention_heads,
            st.ffn_dim,
            st.dropout,
            st.attention_dropout,
            pre_ln=st.pre_ln,
            copy=st.copy and args.arch != "dual",  # dual: no copy head
            positions=st.positions,
        )
        gen = Generator.from_scratch(tok, spec, size, seed=cfg.seed)
    n_params = sum(p.numel() for p in gen.model.parameters())
    LOG.info(
        "%s generator: %.2fM parameters, %d training pairs, %d dev pairs",
        args.arch,
        n_params / 1e6,
        len(train_split),
        len(dev),
    )

    batches = BucketedBatches(
        approx_lengths(gen, train_split, train_mem),
        st.batch_size,
        seed=cfg.seed,
        collate=collate_fn(gen, train_split, train_mem),
        max_tokens=st.max_tokens,
    )

    def eval_fn(model, step):
        g = Generator(model.generator, tok, spec)
        t0 = time.time()
        hyps = decode_split(g, dev.sources, dev_mem, st.eval_beams, st.eval_batch_size)
        return {
            args.eval_metric: dev_metric(args.eval_metric, hyps, dev.targets),
            "decode_seconds": time.time() - t0,
        }

    def export_fn(model, result):
        with atomic_dir(args.output) as tmp:
            Generator(model.generator, tok, spec).save(tmp)
            (tmp / "train_result.json").write_text(
                json.dumps(
                    {
                        "arch": args.arch,
                        "steps": result.step,
                        "best_step": result.best_step,
                        "eval_metric": args.eval_metric,
                        "best_dev": result.best_value,
                        "stopped_early": result.stopped_early,
                        "train_seconds": round(result.train_seconds, 1),
                        "parameters": n_params,
                        "last_eval": result.last_metrics,
                        "wall_seconds": round(time.time() - t_start, 1),
                    },
                    indent=2,
                )
                + "\n"
            )

    res = train(
        TiedSafe(gen.model),
        make_loss_fn(st.label_smoothing),
        batches,
        cfg,
        args.work_dir,
        eval_fn=eval_fn,
        export_fn=export_fn,
    )
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
