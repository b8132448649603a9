"""Train the ReGPT phrase tokenizer.

Starts from a Llama-family fast tokenizer (default: the 32k SentencePiece model shipped in the
PyPI package ``mistral-common``, the Llama architecture; or any local folder / hub name that
``AutoTokenizer`` loads, e.g. ``meta-llama/Llama-2-7b-hf`` on a cluster) and retrains its BPE
model on the training split with ``train_new_from_iterator``.

Pre-tokenizer:

* ``none`` (faithful to ReGPT): Llama's ``Metaspace(split=False)`` - spaces become ``▁`` and BPE
  merges cross word boundaries, so the vocabulary fills with multi-word phrases.
* ``metaspace``: ``Metaspace(split=True)`` - merges stay inside ``▁word`` units (word-aligned
  phrases, never ``'▁he▁moved▁t' | 'o▁the'``).

The special tokens ``<unk> <s> </s>`` keep ids 0, 1, 2. The folder written loads with
``AutoTokenizer.from_pretrained``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from importlib import resources
from pathlib import Path

from relift.io import LOG, InputError, atomic_dir, run_cli
from relift.regpt.settings import TokenizerSettings
from relift.settings import add_settings, settings_from_args

BUILTIN_BASE = "mistral-common"
SPECIALS = ("<unk>", "<s>", "</s>")


def load_base_tokenizer(name: str):
    """Load the base tokenizer: ``mistral-common`` (bundled) or anything AutoTokenizer loads."""
    from transformers import AutoTokenizer

    if name == BUILTIN_BASE:
        src = resources.files("mistral_common") / "data" / "tokenizer.model.v1"
        with tempfile.TemporaryDirectory() as d:
            shutil.copyfile(str(src), Path(d) / "tokenizer.model")
            return AutoTokenizer.from_pretrained(d)
    try:
        return AutoTokenizer.from_pretrained(name)
    except Exception as err:
        raise InputError(f"cannot load base tokenizer {name!r}: {err}") from None


def iter_texts(dataset_dir: str | Path, batch_size: int = 1000):
    import datasets

    ds = datasets.load_from_disk(str(dataset_dir))
    for i in range(0, len(ds), batch_size):
        yield ds[i : i + batch_size]["text"]


def train_phrase_tokenizer(base, texts, vocab_size: int, pre_tokenizer: str = "none"):
    from tokenizers.pre_tokenizers import Metaspace

    if vocab_size <= len(SPECIALS):
        raise InputError(
            f"vocab_size {vocab_size} leaves no room beside the {len(SPECIALS)} special "
            f"tokens {' '.join(SPECIALS)}",
            field="vocab_size",
        )
    if pre_tokenizer == "metaspace":
        base.backend_tokenizer.pre_tokenizer = Metaspace(
            replacement="▁", prepend_scheme="always", split=True
        )
    elif pre_tokenizer != "none":
        raise InputError(
            f"unknown pre_tokenizer {pre_tokenizer!r}; expected 'none' or 'metaspace'",
            field="pre_tokenizer",
        )
    tok = base.train_new_from_iterator(texts, vocab_size=vocab_size)
    got = tok.convert_ids_to_tokens(list(range(len(SPECIALS))))
    if tuple(got) != SPECIALS:
        raise InputError(
            f"base tokenizer's special tokens are {got}, expected {list(SPECIALS)} at ids 0-2"
        )
    return tok


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m relift.regpt.tokenizer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--train", required=True, help="training split (Arrow dataset folder)")
    ap.add_argument("--output", required=True, type=Path)
    add_settings(ap, TokenizerSettings)
    args = ap.parse_args(argv)
    st = settings_from_args(args, TokenizerSettings)
    base = load_base_tokenizer(st.base)
    tok = train_phrase_tokenizer(base, iter_texts(args.train), st.vocab_size, st.pre_tokenizer)
    with atomic_dir(args.output) as tmp:
        tok.save_pretrained(str(tmp))
    vocab = tok.convert_ids_to_tokens(list(range(len(tok))))
    multi = sum(1 for t in vocab if t.strip("▁").count("▁") >= 1)
    LOG.info(
        "phrase tokenizer: %d entries (asked %d), %.1f%% span several words -> %s",
        len(tok),
        st.vocab_size,
        100 * multi / max(1, len(vocab)),
        args.output,
    )


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
