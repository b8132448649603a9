"""Settings of the ReGPT CLIs, each declared once (see :mod:`relift.settings`).

A field's name is a key of config.yaml's ``regpt`` sections and its default is the embedded
default's value (tests/test_defaults.py compares every field with config.yaml). A rule passes
its section as one ``--settings`` JSON value; a CLI reads it through these classes.

* phrase table: :class:`PreprocessSettings` (``regpt.preprocess``), :class:`TokenizerSettings`
  (``regpt.tokenizer``), :class:`EmbeddingSettings` (``regpt.embeddings``),
  :class:`NegativesSettings` (``regpt.negatives``);
* training: ``{**regpt.model, **regpt.<stage>}`` goes to :class:`BackboneSettings`,
  :class:`WindowSettings`, :class:`ReGPTSettings` (or :class:`BaselineSettings`) and the loop's
  :class:`relift.train.TrainConfig`. One training CLI serves several sections whose values differ
  (stage 1, stage 2; the baseline's batch size): :data:`SECTION_DEFAULTS` holds, per section,
  each value that differs from the dataclass defaults;
* :class:`EvaluateSettings` (``regpt.evaluate``), :class:`GenerateSettings` (``regpt.generate``).

:data:`WORKFLOW_KEYS` names the keys of a section that the workflow reads itself (a job's GPUs,
which split is evaluated, ...): a rule leaves them out of the JSON.
"""

from __future__ import annotations

from dataclasses import dataclass

from relift.settings import setting


# --------------------------------------------------------------------------- phrase table
@dataclass
class PreprocessSettings:
    """``regpt.preprocess``: chunks of whole sentences (the corpus cleanups are settings of the
    data source, data.lm.sotu / data.lm.files, passed as flags)."""

    max_words: int = setting(128, "words per chunk at most (128 in the paper)")


@dataclass
class TokenizerSettings:
    """``regpt.tokenizer``: the phrase tokenizer, a base tokenizer's BPE retrained."""

    base: str = setting(
        "mistral-common", "base tokenizer: mistral-common (bundled), a folder or a hub name"
    )
    vocab_size: int = setting(32000, "size of the phrase vocabulary (1,000,000 in the paper)")
    pre_tokenizer: str = setting(
        "none",
        "none: merges cross word boundaries (faithful ReGPT); metaspace: word-aligned phrases",
        choices=("none", "metaspace"),
    )


@dataclass
class EmbeddingSettings:
    """``regpt.embeddings``: the mean-pooled encoder that embeds every phrase."""

    encoder: str = setting("minilm", "'minilm' (bundled), a folder or a hub name")
    batch_size: int = setting(128, "phrases per encoder batch")
    max_length: int = setting(64, "encoder tokens per phrase")
    dtype: str = setting(
        "auto",
        "auto (bf16 where it keeps cosine >= 0.999 to fp32), fp32 or bf16",
        choices=("auto", "fp32", "bf16"),
    )


@dataclass
class NegativesSettings:
    """``regpt.negatives``: the hard-negative pool of every phrase."""

    depth: int = setting(101, "pool size per phrase, itself included (101 in the paper)")
    backend: str = setting(
        "auto",
        "auto (torch on CUDA, faiss on CPU), torch, faiss, numpy (exact) or hnsw (approximate)",
        choices=("auto", "torch", "faiss", "numpy", "hnsw"),
    )


# --------------------------------------------------------------------------- training
@dataclass
class BackboneSettings:
    """The decoder's size (ReGPT stage 1 and the token-level baseline)."""

    hidden: int = setting(256, "decoder hidden size")
    layers: int = setting(4, "decoder layers")
    heads: int = setting(4, "attention heads (divide hidden)")
    intermediate: int = setting(688, "MLP size")
    max_positions: int = setting(512, "RoPE positions (>= max_len)")


@dataclass
class WindowSettings:
    """Training text cut into windows, and the dev sample of the learning curve."""

    max_len: int = setting(256, "window length in tokens")
    batch_size: int = setting(32, "windows per micro-batch")
    dev_chunks: int = setting(100, "evenly spaced dev chunks evaluated (0 = no dev evaluation)")
    max_train_chunks: int = setting(0, "use the first N chunks (0 = all)")


@dataclass
class ReGPTSettings:
    """ReGPT's own model options and its contrastive loss."""

    pretrained_decoder: str = setting("", "Llama folder/hub name for the decoder (stage 1)")
    phrase_bias: bool = setting(
        True, "a learned per-phrase score bias, initialised to the log unigram frequencies"
    )
    negatives: int = setting(1, "pool negatives per position (d)")
    in_device: bool | None = setting(
        None,
        "score every query against ALL candidates of the batch (unset: on for stage 1, off for "
        "stage 2 = gold + its own d hard negatives, as the original)",
    )
    threshold: float = setting(
        0.9, "false-negative guard: pool entries above this cosine become random phrases"
    )
    temperature: float = setting(1.0, "InfoNCE temperature (1 = none)")
    full_table: bool = setting(
        False, "score every query against the WHOLE phrase table (overrides --in-device)"
    )
    logq: bool = setting(
        True,
        "in-batch candidates: subtract their log unigram frequency (sampling-bias correction, "
        "so that the full-table softmax is calibrated)",
    )


@dataclass
class BaselineSettings:
    """The token-level baseline's own options (config ``regpt.baseline``)."""

    steps: int = setting(
        90, "optimizer updates (0 = as many training tokens as ReGPT's stage 1 + stage 2)"
    )
    vocab_size: int = setting(
        0, "retrain the base tokenizer to N word-internal tokens on --train (0 = as is)"
    )
    output_bias: bool = setting(
        True,
        "a learned bias on the LM head, initialised to the log unigram frequencies of the "
        "training tokens (add-one), as ReGPT's phrase bias",
    )


# the values of each training section (regpt.stage1, regpt.stage2, regpt.baseline) that differ
# from the dataclass defaults above and TrainConfig's: a training CLI starts from its section's
SECTION_DEFAULTS: dict[str, dict] = {
    "stage1": {
        "max_steps": 140,
        "optimizer": "adamw",
        "lr": 1e-3,
        "warmup_steps": 10,
        "save_every": 70,
        "eval_every": 20,
    },
    "stage2": {
        "max_steps": 10,
        "negatives": 10,
        "in_device": True,
        "full_table": True,
        "optimizer": "adamw",
        "lr": 2e-4,
        "warmup_steps": 2,
        "save_every": 10,
        "eval_every": 5,
    },
    "baseline": {
        "batch_size": 16,
        "optimizer": "adamw",
        "lr": 1e-3,
        "warmup_steps": 5,
        "save_every": 45,
        "eval_every": 15,
    },
}


# --------------------------------------------------------------------------- evaluation
@dataclass
class EvaluateSettings:
    """``regpt.evaluate``, with the window length of ``regpt.model`` and the false-negative
    guard of ``regpt.stage1`` (the in-batch reference loss)."""

    max_chunks: int = setting(400, "evenly spaced chunks of the split (0 = all)")
    batch_size: int = setting(32, "windows per forward pass")
    table_chunk: int = setting(8192, "phrases scored at once (streaming log-sum-exp)")
    seed: int = setting(0, "seed of the in-batch reference loss's negatives")
    max_len: int = setting(256, "window length in tokens (regpt.model.max_len)")
    threshold: float = setting(
        0.9, "false-negative guard of the in-batch reference loss (regpt.stage1.threshold)"
    )


@dataclass
class GenerateSettings:
    """``regpt.generate``: prompts from a split and the decoding of both models."""

    num_prompts: int = setting(8, "--from-split: evenly spaced chunks used as prompts")
    prompt_words: int = setting(8, "--from-split: words per prompt")
    max_new: int = setting(64, "decoding steps at most (phrases for ReGPT, tokens for the LM)")
    max_bytes: int = setting(200, "stop a continuation at N UTF-8 bytes (0 = off)")
    strategy: str = setting("sample", "greedy or sample", choices=("greedy", "sample"))
    temperature: float = setting(1.0, "sampling temperature")
    top_k: int = setting(50, "sample among the k best (0 = all)")
    top_p: float = setting(0.9, "nucleus mass (1 = off)")
    seed: int = setting(0, "sampling seed (batch b uses seed + its first prompt's index)")
    batch_size: int = setting(16, "prompts decoded at once")


# keys of each section that the workflow reads itself (a rule leaves them out of the JSON)
WORKFLOW_KEYS: dict[str, tuple[str, ...]] = {
    "embeddings": ("gpus",),
    "negatives": ("gpus",),
    "stage1": ("gpus",),
    "stage2": ("gpus",),
    "baseline": ("gpus",),
    "evaluate": ("split", "floors", "budgets", "gpus"),
    "generate": ("gpus",),
}
# regpt.model keys that only ReGPT reads (the token-level baseline leaves them out)
REGPT_ONLY_MODEL_KEYS = ("pretrained_decoder", "phrase_bias")
