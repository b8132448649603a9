"""Shared test helpers: synthetic gettext catalogs and wheels, a tiny translation memory."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

HEADER = "Content-Type: text/plain; charset=UTF-8\nPlural-Forms: nplurals=2; plural=(n != 1);\n"
FIXTURES = Path(__file__).parent / "fixtures"


def make_mo(entries: dict[str, str]) -> bytes:
    """A valid little-endian GNU .mo file; keys and values are raw .mo strings (plural ids as
    ``msgid\\x00msgid_plural``, plural forms as ``form0\\x00form1``, contexts as
    ``ctx\\x04msgid``). The header entry is added."""
    items = sorted({"": HEADER, **entries}.items(), key=lambda kv: kv[0].encode("utf-8"))
    ids = [k.encode("utf-8") for k, _ in items]
    strs = [v.encode("utf-8") for _, v in items]
    n = len(items)
    orig_off, trans_off = 28, 28 + 8 * n
    data_off = 28 + 16 * n
    blob = b""
    orig_tab, trans_tab = [], []
    for table, strings in ((orig_tab, ids), (trans_tab, strs)):
        for s in strings:
            table.append((len(s), data_off + len(blob)))
            blob += s + b"\x00"
    out = struct.pack("<7I", 0x950412DE, 0, n, orig_off, trans_off, 0, data_off)
    out += b"".join(struct.pack("<2I", *e) for e in orig_tab)
    out += b"".join(struct.pack("<2I", *e) for e in trans_tab)
    return out + blob


def make_wheel(folder: Path, name: str, members: dict[str, bytes | str]) -> Path:
    path = folder / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{name}/__init__.py", "")
        for member, data in members.items():
            zf.writestr(member, data)
    return path


def fixture_tm_wheels(folder: Path) -> Path:
    """A folder with one wheel whose German catalog holds the hand-written pairs of
    tests/fixtures/tm_pairs.tsv."""
    pairs = {}
    for line in (FIXTURES / "tm_pairs.tsv").read_text(encoding="utf-8").splitlines():
        if line.strip():
            en, de = line.split("\t")
            pairs[en] = de
    folder.mkdir(parents=True, exist_ok=True)
    make_wheel(folder, "relift_fixture", {"relift_fixture/locale/de/LC_MESSAGES/app.mo": make_mo(pairs)})
    return folder
