"""Settings of the ReGPT training CLIs, each declared once (see :mod:`relift.settings`).

The field names are the keys of config.yaml's ``regpt.model`` and ``regpt.stage1``/``stage2``/
``baseline`` sections; a rule passes ``{**regpt.model, **regpt.<stage>}`` as one ``--settings``
JSON (the loop's keys go to :class:`relift.train.TrainConfig`). Defaults here are the CLIs'
defaults; the workflow's come from config.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass

from relift.settings import setting


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
    batch_size: int = setting(16, "windows per micro-batch")
    dev_chunks: int = setting(200, "evenly spaced dev chunks evaluated (0 = no dev evaluation)")
    max_train_chunks: int = setting(0, "use the first N chunks (0 = all)")


@dataclass
class ReGPTSettings:
    """ReGPT's own model options and its contrastive loss."""

    pretrained_decoder: str = setting("", "Llama folder/hub name for the decoder (stage 1)")
    phrase_bias: bool = setting(
        False, "a learned per-phrase score bias, initialised to the log unigram frequencies"
    )
    negatives: int = setting(1, "pool negatives per position (d)")
    in_device: bool | None = setting(
        None,
        "score every query against ALL candidates of the batch (default: on for stage 1, "
        "off for stage 2 = gold + its own d hard negatives, as the original)",
    )
    threshold: float = setting(
        0.9, "false-negative guard: pool entries above this cosine become random phrases"
    )
    temperature: float = setting(1.0, "InfoNCE temperature (1 = none)")
    full_table: bool = setting(
        False, "score every query against the WHOLE phrase table (overrides --in-device)"
    )
    logq: bool = setting(
        False,
        "in-batch candidates: subtract their log unigram frequency (sampling-bias correction, "
        "so that the full-table softmax is calibrated)",
    )


@dataclass
class BaselineSettings:
    """The token-level baseline's own options (config ``regpt.baseline``)."""

    steps: int = setting(0, "optimizer updates (overrides token matching)")
    vocab_size: int = setting(
        0, "retrain the base tokenizer to N word-internal tokens on --train (0 = as is)"
    )
    output_bias: bool = setting(
        False,
        "a learned bias on the LM head, initialised to the log unigram frequencies of the "
        "training tokens (add-one), as ReGPT's phrase bias",
    )
