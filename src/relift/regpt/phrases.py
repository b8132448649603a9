"""Write ``phrases.npy``: entry i is the text of phrase-token id i.

Id i = row i of ``phrases.npy`` = row i of the phrase embedding matrix = block i of the negatives
pool. The text of an id is its token with ``▁`` turned back into a space (so concatenating the
phrases of an encoding reproduces the text with one leading space); byte-fallback tokens
``<0xNN>`` become their character where it is ASCII; special tokens keep their spelling.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np

from relift.io import LOG, atomic_path, run_cli

_BYTE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


def token_text(token: str) -> str:
    m = _BYTE.match(token)
    if m and int(m.group(1), 16) < 0x80:
        return chr(int(m.group(1), 16))
    return token.replace("▁", " ")


def phrase_table(tokenizer) -> np.ndarray:
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    return np.array([token_text(t) for t in tokens], dtype=object).astype(str)


def load_phrases(path: str | Path) -> np.ndarray:
    return np.load(path, allow_pickle=False)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m relift.regpt.phrases",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--tokenizer", required=True, type=Path)
    ap.add_argument("--output", required=True, type=Path)
    args = ap.parse_args(argv)
    from transformers import AutoTokenizer

    phrases = phrase_table(AutoTokenizer.from_pretrained(str(args.tokenizer)))
    with atomic_path(args.output) as tmp:
        np.save(tmp, phrases, allow_pickle=False)
    words = np.array([len(p.split()) for p in phrases])
    LOG.info(
        "%d phrases, %.2f words on average, %d with >= 3 words -> %s",
        len(phrases),
        words.mean(),
        int((words >= 3).sum()),
        args.output,
    )


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
