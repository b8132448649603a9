"""Settings of the Selfmem CLIs, declared once (see :mod:`relift.settings`).

A dataclass here mirrors one section of config.yaml: its field names are the section's keys, its
defaults are the embedded default's values and its help text is the config comment. A rule passes
the whole section as one ``--settings`` JSON value; the CLI generates its flags from the fields.
A new setting therefore touches config.yaml, the schema (workflow/schemas/config.schema.yaml)
and this file.

Keys of a section that belong to the shared training loop (``lr``, ``warmup_steps``,
``scheduler``, ``precision``, ``max_steps``, ``grad_clip``, ``eval_every``, ``patience``) are
fields of :class:`relift.train.loop.TrainConfig`; the CLI reads both classes, and the loop
defaults of one CLI are its ``*_TRAIN_DEFAULTS`` below.
"""

from __future__ import annotations

from dataclasses import dataclass

from relift.settings import setting


@dataclass
class GeneratorSettings:
    """``selfmem.generator``: the retrieval-augmented generator and its training."""

    pretrained: str = setting(
        "",
        "a pretrained seq2seq checkpoint (BART/Marian folder or hub name; dual: BART only) "
        'instead of the from-scratch Transformer ("" = from scratch)',
    )
    d_model: int = setting(256, "from-scratch Transformer: model width")
    encoder_layers: int = setting(2, "from-scratch Transformer: encoder layers")
    decoder_layers: int = setting(2, "from-scratch Transformer: decoder layers")
    attention_heads: int = setting(4, "from-scratch Transformer: attention heads")
    ffn_dim: int = setting(1024, "from-scratch Transformer: feed-forward width")
    pre_ln: bool = setting(
        True,
        "pre-LN (mBART-style) layers; --no-pre-ln = post-LN BART (dual is always post-LN)",
    )
    copy: bool = setting(
        True,
        "pointer-generator head over the encoder input (source and memory tokens; vanilla and "
        "joint only: dual ignores it)",
    )
    positions: str = setting(
        "sinusoidal",
        "position embeddings of the pre-LN model: sinusoidal (fixed) or learned",
        choices=("sinusoidal", "learned"),
    )
    dropout: float = setting(0.1, "dropout of the residual branches")
    attention_dropout: float = setting(0.0, "dropout of the attention weights")
    max_source_length: int = setting(128, "token budget of the source")
    max_memory_length: int = setting(
        128, "token budget of the memory (joint: source+memory together, longest-first)"
    )
    max_target_length: int = setting(128, "token budget of the target")
    batch_size: int = setting(32, "examples per update when max_tokens is 0 (48 in the paper)")
    max_tokens: int = setting(
        2048, "token budget per update: examples x longest input/target (0 = batch_size)"
    )
    memory_closest_share: float = setting(
        0.0,
        "share of training examples whose memory is the retrieved hit closest to their target",
    )
    memory_noise_share: float = setting(
        0.3, "share of training examples whose memory is a noised copy of their target"
    )
    memory_withheld_share: float = setting(
        0.0, "share of training examples whose memory is withheld (empty)"
    )
    memory_random_share: float = setting(
        0.0, "share of training examples whose memory is a random training target (mismatched)"
    )
    memory_min_match: float = setting(
        0.5,
        "memories whose fuzzy match with the source is below this are withheld (empty), at "
        "training and at inference (0 = always read)",
    )
    memory_marker: bool = setting(
        True,
        "a match-bucket marker (<fm0>..<fm3>: [0, 0.5), [0.5, 0.7), [0.7, 0.9), [0.9, 1]) "
        "before every memory, at training and at inference",
    )
    memory_source: bool = setting(
        False,
        "the memory's own source before its target in the input (memory source </s> memory "
        "target), so the generator sees where the memory's source differs from its own",
    )
    memory_segments: bool = setting(
        False,
        "a segment (type) embedding that tells the memory's tokens from the source's (joint "
        "with the copy head; zero-initialised on a warm start)",
    )
    warm_start: bool = setting(
        True,
        "joint/dual continue from the trained vanilla generator of the same seed (max_steps "
        "more updates) instead of starting from scratch",
    )
    label_smoothing: float = setting(0.1, "label smoothing of the cross-entropy (0.1 in the paper)")
    eval_beams: int = setting(1, "beam size of the dev decoding (1 = greedy)")
    eval_batch_size: int = setting(64, "inputs per batch of the dev decoding")
    dev_max_examples: int = setting(200, "decode only the first N dev examples (0 = all)")


# the training loop's settings of the generator CLI (config.yaml's values; those the section
# does not name are the recipe's fixed choices: Adam (0.9, 0.98), no weight decay, decay to 0)
GENERATOR_TRAIN_DEFAULTS = {
    "lr": 0.0015,
    "warmup_steps": 150,
    "scheduler": "linear",
    "precision": "auto",
    "max_steps": 1000,
    "grad_clip": 1.0,
    "eval_every": 250,
    "patience": 0,
    "optimizer": "adamw",
    "betas": (0.9, 0.98),
    "weight_decay": 0.0,
    "min_lr_ratio": 0.0,
    "log_every": 50,
}


# keys of selfmem.candidates that the workflow reads itself (which splits get pools, GPUs per job)
CANDIDATES_WORKFLOW_KEYS = ("splits", "gpus")


@dataclass
class CandidatesSettings:
    """``selfmem.candidates``: beam decoding of a split (the selector's pools, the final
    hypotheses). ``splits`` and ``gpus`` are the workflow's keys, not the CLI's; the final
    hypotheses (``selfmem.hypotheses``) and the selector's training pools (``selfmem.selector``'s
    ``train_*`` keys) are the same CLI with other values, which their rules pass."""

    num_beams: int = setting(4, "beam size (50 in the paper)")
    num_return_sequences: int = setting(
        4, "hypotheses kept per input, best first (50 in the paper; at most num_beams)"
    )
    batch_size: int = setting(16, "inputs per decoding batch (x num_beams sequences)")
    max_examples: int = setting(0, "decode only the first N examples (0 = all)")
