"""A from-scratch encoder for the Selfmem memory selector, over the task's own tokenizer.

The selector's default encoder (all-MiniLM-L6-v2) only knows English, and the paper's XLM-R base
needs a hub download and a GPU. This step writes a randomly initialised BERT-layout encoder
(``--hidden``, ``--layers``, ``--heads``, ``--intermediate``; positions up to ``--max-length``,
the selector's tokens per pair) whose vocabulary is the task's generator tokenizer
(``--tokenizer``: the joint byte-level BPE that relift trains on BOTH sides of the training
split, or a pretrained generator's tokenizer). Every language of the task is therefore tokenised
as the generator sees it, and nothing depends on an English-only vocabulary. The encoder learns
only from the selector's training (``python -m relift.selfmem.selector.cli train --encoder
FOLDER``), which starts from this folder like from any Hugging Face encoder folder: a pair is
framed by the tokenizer's own pair template (``<s> source </s> candidate </s>``).

The output folder holds the encoder (``config.json``, ``model.safetensors``) and a copy of the
tokenizer. ``--seed`` fixes the initialisation. The sizes
(:class:`relift.selfmem.selector.settings.ScratchEncoderSettings`: ``selfmem.selector.scratch``
with the selector's ``layers`` and ``max_length``) come as ``--settings JSON`` and/or flags.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from relift.io import LOG, InputError, atomic_dir, run_cli, save_tokenizer
from relift.selfmem.selector.settings import ScratchEncoderSettings
from relift.settings import add_settings, settings_from_args


def build_scratch_encoder(
    tokenizer,
    hidden: int = 256,
    layers: int = 2,
    heads: int = 4,
    intermediate: int = 1024,
    max_positions: int = 512,
    seed: int = 0,
):
    """A randomly initialised ``BertModel`` whose vocabulary is ``tokenizer``'s."""
    import torch
    from transformers import BertConfig, BertModel

    if min(hidden, layers, heads, intermediate, max_positions) < 1:
        raise InputError(
            "scratch encoder sizes must be >= 1 (hidden, layers, heads, intermediate, positions)"
        )
    if hidden % heads:
        raise InputError(f"hidden size {hidden} is not a multiple of {heads} heads", field="heads")
    if tokenizer.pad_token_id is None:
        raise InputError("the tokenizer has no pad token", field="tokenizer")
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate,
        max_position_embeddings=max_positions,
        type_vocab_size=2,
        pad_token_id=tokenizer.pad_token_id,
    )
    return BertModel(config)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m relift.selfmem.selector.scratch_encoder",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--tokenizer", required=True, type=Path, help="the task's tokenizer folder")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--output", required=True, type=Path)
    add_settings(ap, ScratchEncoderSettings)
    args = ap.parse_args(argv)
    st = settings_from_args(args, ScratchEncoderSettings)
    from relift.selfmem.generator.tokenizer import load_tokenizer

    tok = load_tokenizer(args.tokenizer)
    sizes = (st.hidden, st.layers, st.heads, st.intermediate, st.max_length)
    model = build_scratch_encoder(tok, *sizes, args.seed)
    with atomic_dir(args.output) as tmp:
        model.save_pretrained(str(tmp))
        save_tokenizer(tok, tmp)
    LOG.info(
        "scratch selector encoder: %d entries, %d layers of %d, %.2fM parameters -> %s",
        len(tok),
        st.layers,
        st.hidden,
        sum(p.numel() for p in model.parameters()) / 1e6,
        args.output,
    )


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
