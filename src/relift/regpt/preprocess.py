"""ReGPT corpus preprocessing: sentence chunks -> a length-sorted Arrow dataset per split.

Each input record (a paragraph, a document or an already chunked ``text<TAB>id`` line) is split
into sentences, and consecutive whole sentences are packed into chunks of at most ``--max-words``
whitespace tokens (128 in the paper). A single sentence longer than that is cut at word
boundaries. Every run of whitespace (spaces, tabs, newlines, any Unicode whitespace such as a
non-breaking space) becomes one space; otherwise the text is kept byte for byte: the chunks of a
record, joined with one space, give the record back. Empty chunks are dropped, a ``text_length``
(word count) column is added and rows are sorted by it (ties keep input order). The result is
saved with ``datasets.Dataset.save_to_disk``.

Two corpus-specific cleanups, off unless asked for (the workflow takes them from the settings of
the data source, ``data.lm.sotu`` / ``data.lm.files``):

* ``--wikitext-fix``: undo WikiText's tokenisation artifacts `` @-@ ``, `` @,@ ``, `` @.@ ``
  (``1 @,@ 000`` -> ``1,000``);
* ``--drop-bracketed``: delete every ``[...]`` span of at most 80 characters without nested
  brackets, with the whitespace before it (transcript notes such as ``[Laughter]``; it also
  deletes code such as ``[0, 1]`` or ``s[:i]``).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from relift.io import FORMATS, LOG, InputError, atomic_dir, read_records, run_cli
from relift.regpt.settings import PreprocessSettings
from relift.settings import add_settings, settings_from_args

_WIKITEXT = [(re.compile(r" @([-,.])@ "), r"\1")]
_BRACKETED = re.compile(r"\s*\[[^\[\]]{1,80}\]")
# a sentence ends at . ! ? (optionally followed by closing quotes/brackets) before whitespace
_SENT_END = re.compile(r"(?<=[.!?])[\"'\u201d\u2019)\]]*\s+")


def clean(text: str, *, wikitext: bool = False, drop_bracketed: bool = False) -> str:
    """The documented normalisation (whitespace runs -> one space) and the cleanups asked for."""
    if wikitext:
        for pat, rep in _WIKITEXT:
            text = pat.sub(rep, text)
    if drop_bracketed:
        text = _BRACKETED.sub("", text)
    return " ".join(text.split())


def sentences(text: str) -> list[str]:
    out, start = [], 0
    for m in _SENT_END.finditer(text):
        out.append(text[start : m.end()].strip())
        start = m.end()
    out.append(text[start:].strip())
    return [s for s in out if s]


def chunk(text: str, max_words: int) -> Iterator[str]:
    """Pack whole sentences into chunks of at most ``max_words`` words."""
    cur: list[str] = []
    for sent in sentences(text):
        words = sent.split()
        while len(words) > max_words:  # an over-long sentence: cut it at word boundaries
            if cur:
                yield " ".join(cur)
                cur = []
            yield " ".join(words[:max_words])
            words = words[max_words:]
        if len(cur) + len(words) > max_words:
            yield " ".join(cur)
            cur = []
        cur.extend(words)
    if cur:
        yield " ".join(cur)


def build_rows(
    records: Iterable[dict], max_words: int, *, wikitext: bool = False, drop_bracketed: bool = False
) -> dict[str, list]:
    texts, ids, lengths = [], [], []
    for rec in records:
        for k, piece in enumerate(
            chunk(clean(rec["text"], wikitext=wikitext, drop_bracketed=drop_bracketed), max_words)
        ):
            texts.append(piece)
            ids.append(f"{rec['id']}#{k}")
            lengths.append(len(piece.split()))
    order = sorted(range(len(texts)), key=lambda i: lengths[i])
    return {
        "text": [texts[i] for i in order],
        "id": [ids[i] for i in order],
        "text_length": [lengths[i] for i in order],
    }


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m relift.regpt.preprocess",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--input", required=True, help="corpus file (or dataset folder for hf_disk)")
    ap.add_argument("--format", required=True, choices=FORMATS)
    ap.add_argument("--text-field", default="text", help="jsonl/hf_disk: name of the text column")
    ap.add_argument(
        "--wikitext-fix", action="store_true", help="undo WikiText's ' @-@ ', ' @,@ ', ' @.@ '"
    )
    ap.add_argument(
        "--drop-bracketed",
        action="store_true",
        help="drop [...] spans of <= 80 characters (transcript notes such as [Laughter])",
    )
    ap.add_argument("--output", required=True, type=Path, help="dataset folder to write")
    add_settings(ap, PreprocessSettings)
    return ap


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    st = settings_from_args(args, PreprocessSettings)
    if st.max_words < 1:
        raise InputError(f"--max-words must be >= 1, got {st.max_words}")
    rows = build_rows(
        read_records(args.input, args.format, args.text_field),
        st.max_words,
        wikitext=args.wikitext_fix,
        drop_bracketed=args.drop_bracketed,
    )
    if not rows["text"]:
        raise InputError("corpus is empty (no non-blank text after cleaning)", path=args.input)
    import datasets

    ds = datasets.Dataset.from_dict(rows)
    with atomic_dir(args.output) as tmp:
        ds.save_to_disk(str(tmp))
    LOG.info(
        "%s: %d chunks, %d words, longest %d words -> %s",
        args.input,
        len(ds),
        sum(rows["text_length"]),
        rows["text_length"][-1],
        args.output,
    )


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
