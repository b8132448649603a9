"""Shared test helpers: synthetic gettext catalogs and wheels, a tiny translation memory."""

from __future__ import annotations

import re
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

HEADER = "Content-Type: text/plain; charset=UTF-8\nPlural-Forms: nplurals=2; plural=(n != 1);\n"
FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "configs" / "tiny.yaml"
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def snakemake_cmd(*args: str, configfiles=(), cores: int | None = 2, targets=()) -> list[str]:
    """The snakemake command line on the tiny config (plus overlays); targets come before the
    config files, which would otherwise take them for more config files."""
    return [
        SNAKEMAKE,
        "-s",
        str(ROOT / "Snakefile"),
        *(["--cores", str(cores)] if cores else []),
        *map(str, targets),
        "--configfile",
        str(TINY),
        *map(str, configfiles),
        *args,
    ]


def snakemake(
    workdir: Path,
    *args: str,
    configfiles=(),
    check: bool = True,
    timeout: int = 1500,
    cores: int | None = 2,
    targets=(),
    env: dict[str, str] | None = None,
):
    """Run the real snakemake CLI on the tiny config (plus overlays) in ``workdir``."""
    cmd = snakemake_cmd(*args, configfiles=configfiles, cores=cores, targets=targets)
    r = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout, env=env)
    if check and r.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({r.returncode}):\n{r.stdout[-4000:]}\n{r.stderr[-6000:]}"
        )
    return r


def planned_jobs(workdir: Path, *args: str, configfiles=()) -> dict[str, int]:
    """rule -> job count of a dry run (from Snakemake's job stats table)."""
    return planned_run(workdir, *args, configfiles=configfiles)[0]


def planned_run(workdir: Path, *args: str, configfiles=()) -> tuple[dict[str, int], str]:
    """A dry run: (rule -> job count from Snakemake's job stats table, its output)."""
    r = snakemake(workdir, "-n", *args, configfiles=configfiles)
    out = r.stdout + r.stderr
    if "Nothing to be done" in out:
        return {}, out
    table = out.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)\s*$", table, re.M))
    jobs.pop("total", None)
    return {k: int(v) for k, v in jobs.items()}, out


def overlay(tmp: Path, name: str, text: str) -> Path:
    p = tmp / name
    p.write_text(text)
    return p


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
    make_wheel(
        folder, "relift_fixture", {"relift_fixture/locale/de/LC_MESSAGES/app.mo": make_mo(pairs)}
    )
    return folder


def write_jsonl(path: Path, rows) -> Path:
    """One JSON object per line; returns ``path``."""
    import json

    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
