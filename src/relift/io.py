"""Shared I/O helpers: clear input errors, atomic outputs, logging and record readers.

Every CLI module of relift reads user data through :func:`read_records` and writes every
artifact through :func:`atomic_path` / :func:`atomic_dir`, so that

* bad input fails with one message naming the file, the line and the field, and
* an interrupted or failed step never leaves a file that looks complete.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

LOG = logging.getLogger("relift")


class InputError(Exception):
    """A problem with the user's input (data, config or paths), reported without a traceback."""

    def __init__(
        self,
        message: str,
        *,
        path: str | os.PathLike | None = None,
        line: int | None = None,
        field: str | None = None,
    ):
        where = []
        if path is not None:
            where.append(str(path))
        if line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field {field!r}")
        self.message = message
        self.path, self.line, self.field = path, line, field
        super().__init__(
            f"{': '.join([', '.join(where)] if where else [])}{': ' if where else ''}{message}"
        )


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def run_cli(main: Callable[[list[str] | None], None], argv: list[str] | None = None) -> int:
    """Run a module's ``main`` and turn :class:`InputError` into one line on stderr and exit 2."""
    setup_logging()
    try:
        main(argv)
    except InputError as err:
        print(f"relift: error: {err}", file=sys.stderr)
        return 2
    return 0


# --------------------------------------------------------------------------- atomic outputs
def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _sweep_stale(parent: Path, name: str, suffix: str) -> None:
    """Remove temporaries of ``name`` left by a killed writer (SIGKILL skips ``finally``).

    Only names this module makes for exactly this output match (``mkstemp``/``mkdtemp`` put 8
    random characters between ``.{name}.`` and ``.tmp{suffix}``); Snakemake runs one job per
    output, so no live writer can own them."""
    pat = re.compile(rf"^\.{re.escape(name)}\.[a-z0-9_]{{8}}\.tmp{re.escape(suffix)}$")
    with contextlib.suppress(OSError):
        for p in parent.iterdir():
            if pat.match(p.name):
                LOG.info("removing %s, left by an interrupted run", p)
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def _tmp_sibling(path: Path) -> Path:
    _sweep_stale(path.parent, path.stem, path.suffix)
    # keep the suffix so that np.save & friends do not append another one
    fd, name = tempfile.mkstemp(
        prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent
    )
    os.close(fd)
    os.chmod(name, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
    return Path(name)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory next to ``path``; it replaces ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep_stale(path.parent, path.name, "")
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def save_tokenizer(tok, folder: str | os.PathLike) -> None:
    """``tok.save_pretrained(folder)`` without the truncation/padding that the tokenizer's last
    call left in a fast tokenizer's state (it would make the saved ``tokenizer.json`` depend on
    the run's history, e.g. on whether a training run was resumed)."""
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is not None:
        backend.no_truncation()
        backend.no_padding()
    tok.save_pretrained(str(folder))


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | os.PathLike, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def write_jsonl_atomic(path: str | os.PathLike, records) -> int:
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
            n += 1
    return n


# --------------------------------------------------------------------------- readers
FORMATS = ("text", "tsv", "jsonl", "hf_disk")
MAX_LINE_BYTES = 1 << 20  # a single line larger than this is almost certainly broken input


def require_file(path: str | os.PathLike, what: str = "input file") -> Path:
    p = Path(path)
    if not p.exists():
        raise InputError(f"{what} does not exist", path=p)
    return p


def read_lines(path: str | os.PathLike, what: str = "file", *, expected: int | None = None):
    """A UTF-8 text file as a list of lines (blank lines kept: an empty memory is a valid line).

    With ``expected``, the line count must match (e.g. outputs aligned with a split)."""
    path = require_file(path, what)
    out = [line for _, line in _lines(path)]
    if expected is not None and len(out) != expected:
        raise InputError(
            f"{what} has {len(out)} lines but {expected} were expected (one per "
            "example, aligned with the split)",
            path=path,
        )
    return out


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            if len(raw) > MAX_LINE_BYTES:
                raise InputError(
                    f"line is {len(raw):,} bytes long (limit {MAX_LINE_BYTES:,}); is this the right file?",
                    path=path,
                    line=lineno,
                )
            try:
                yield lineno, raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as err:
                raise InputError(
                    f"not valid UTF-8 (byte {err.start}: {raw[err.start : err.start + 1]!r})",
                    path=path,
                    line=lineno,
                ) from None


def read_jsonl(path: str | os.PathLike, fields: tuple[str, ...] = ()) -> Iterator[tuple[int, dict]]:
    """Yield (line number, record) for every non-blank line; every name in ``fields`` must be a
    non-null string."""
    path = require_file(path)
    for lineno, line in _lines(path):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputError(
                f"not valid JSON ({err.msg} at column {err.colno})", path=path, line=lineno
            ) from None
        if not isinstance(rec, dict):
            raise InputError(
                f"expected a JSON object, found {type(rec).__name__}", path=path, line=lineno
            )
        for f in fields:
            if f not in rec:
                raise InputError("missing field", path=path, line=lineno, field=f)
            if not isinstance(rec[f], str):
                got = "null" if rec[f] is None else type(rec[f]).__name__
                raise InputError(f"expected a string, found {got}", path=path, line=lineno, field=f)
        yield lineno, rec


def read_records(
    path: str | os.PathLike, fmt: str, text_field: str = "text", id_field: str = "id"
) -> Iterator[dict]:
    """Read a corpus in one of :data:`FORMATS` as ``{"id", "text"}`` records.

    * ``text``: one document (paragraph) per line; blank lines are skipped.
    * ``tsv``: ReGPT/CoG-style ``text<TAB>id`` lines (exactly two columns).
    * ``jsonl``: one JSON object per line with ``text_field`` (and optionally ``id_field``).
    * ``hf_disk``: a folder written by ``datasets.Dataset.save_to_disk`` with a ``text_field`` column.
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise InputError(f"unknown corpus format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt == "hf_disk":
        if not path.is_dir():
            raise InputError("expected a folder written by datasets' save_to_disk", path=path)
        import datasets

        try:
            ds = datasets.load_from_disk(str(path))
        except Exception as err:  # datasets raises FileNotFoundError and friends
            raise InputError(f"cannot load dataset folder ({err})", path=path) from None
        if isinstance(ds, datasets.DatasetDict):
            raise InputError(
                f"folder holds a DatasetDict with splits {list(ds)}; point at one split", path=path
            )
        if text_field not in ds.column_names:
            raise InputError(
                f"column missing (columns: {ds.column_names})", path=path, field=text_field
            )
        has_id = id_field in ds.column_names
        for i, row in enumerate(ds):
            text = row[text_field]
            if not isinstance(text, str):
                raise InputError("expected a string", path=path, line=i + 1, field=text_field)
            yield {"id": str(row[id_field]) if has_id else str(i), "text": text}
        return
    require_file(path)
    if fmt == "text":
        for lineno, line in _lines(path):
            if line.strip():
                yield {"id": str(lineno), "text": line}
    elif fmt == "tsv":
        for lineno, line in _lines(path):
            if not line.strip():
                continue
            cols = line.split("\t")
            if len(cols) != 2:
                raise InputError(
                    f"expected 2 tab-separated columns (text, id), found {len(cols)}",
                    path=path,
                    line=lineno,
                )
            yield {"id": cols[1], "text": cols[0]}
    else:
        for lineno, rec in read_jsonl(path, (text_field,)):
            yield {"id": str(rec.get(id_field, lineno)), "text": rec[text_field]}
