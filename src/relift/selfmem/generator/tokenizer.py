"""The Selfmem generator's tokenizer: a joint byte-level BPE, or a pretrained one.

``--train`` learns a byte-level BPE (the ``tokenizers`` library; GPT-2/RoBERTa-style byte
alphabet, a prefix space so that a word is split the same everywhere) on BOTH sides of the
training split, as the paper's joint BPE over all languages. The special tokens are
``<s> <pad> </s> <unk> <mask>`` with ids 0-4 (BART's layout), and the post-processor frames a
single text as ``<s> A </s>`` and a text pair as ``<s> A </s> B </s>`` (the joint
architecture's ``source </s> memory`` input). The folder written loads with
``AutoTokenizer.from_pretrained`` / ``PreTrainedTokenizerFast.from_pretrained``.

``--pretrained NAME_OR_PATH`` instead copies a pretrained tokenizer (e.g. a BART or Marian
checkpoint's) into the output folder, so that later steps always read one folder.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from pathlib import Path

from relift.io import LOG, InputError, atomic_dir, run_cli
from relift.selfmem.data import load_split

SPECIALS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")


def train_bpe(texts: Iterator[str] | list[str], vocab_size: int, min_frequency: int = 2):
    """A ``PreTrainedTokenizerFast`` holding a byte-level BPE trained on ``texts``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    min_size = len(SPECIALS) + 256
    if vocab_size < min_size:
        raise InputError(
            f"vocab_size {vocab_size} is too small: a byte-level BPE needs at least {min_size} "
            f"entries (256 bytes + {len(SPECIALS)} special tokens)",
            field="vocab_size",
        )
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIALS),
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer=trainer)
    ids = {t: tok.token_to_id(t) for t in SPECIALS}
    if [ids[t] for t in SPECIALS] != list(range(len(SPECIALS))):
        raise AssertionError(f"special token ids {ids}")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> $B:1 </s>:1",
        special_tokens=[("<s>", ids["<s>"]), ("</s>", ids["</s>"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        mask_token="<mask>",
        model_max_length=1_000_000,
    )


def load_tokenizer(path: str | Path):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path))
    except Exception as err:
        raise InputError(f"cannot load tokenizer: {err}", path=path) from None


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m relift.selfmem.generator.tokenizer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument(
        "--train", type=Path, help="training split (JSONL): learn a joint byte-level BPE"
    )
    g.add_argument("--pretrained", help="copy this pretrained tokenizer (folder or hub name)")
    ap.add_argument("--src-field", default="src")
    ap.add_argument("--trg-field", default="trg")
    ap.add_argument("--vocab-size", type=int, default=8000)
    ap.add_argument("--min-frequency", type=int, default=2)
    ap.add_argument("--output", required=True, type=Path)
    args = ap.parse_args(argv)
    t0 = time.time()
    if args.pretrained:
        tok = load_tokenizer(args.pretrained)
        if tok.pad_token_id is None or tok.eos_token_id is None:
            raise InputError(
                "pretrained tokenizer needs a pad and an eos token", path=args.pretrained
            )
    else:
        split = load_split(args.train, args.src_field, args.trg_field)
        tok = train_bpe(split.sources + split.targets, args.vocab_size, args.min_frequency)
    with atomic_dir(args.output) as tmp:
        tok.save_pretrained(str(tmp))
    LOG.info(
        "tokenizer: %d entries (asked %s) in %.1fs -> %s",
        len(tok),
        args.vocab_size if not args.pretrained else "pretrained",
        time.time() - t0,
        args.output,
    )


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
