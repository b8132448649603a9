"""Fill a folder with the wheels bench/gpu_smoke.sh installs offline on a CUDA machine.

    python tools/gpu_wheels.py [--dest bench/wheels] [--python-version 3.12]

Resolves ``bench/gpu_requirements.txt`` with pip (on this interpreter), leaves out what the CUDA
image brings (torch and its CUDA stack, transformers, accelerate), and fetches one wheel per
remaining package for the target interpreter (manylinux x86_64 binary wheels, ``--no-deps``:
the resolution already named them); a package published only as a source archive (pure Python)
is built into a wheel here. The folder is emptied first, so that it holds one version of each
package. The machine running this needs pip's registry; the CUDA machine needs nothing.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# what the CUDA image has (bench/gpu_smoke.sh), with the dependencies they have here: never
# downloaded; nor is torch's CUDA stack
IMAGE = ("torch", "transformers", "accelerate")
CUDA_STACK = re.compile(r"^(triton|nvidia-.*|cuda-.*)$")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def image_packages() -> set[str]:
    """IMAGE and everything they require (without extras), from this environment's metadata."""
    from importlib.metadata import PackageNotFoundError, requires

    seen, todo = set(), list(IMAGE)
    while todo:
        name = canonical(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            reqs = requires(name) or []
        except PackageNotFoundError:
            continue
        todo += [re.split(r"[ ;<>=!~\[(]", r, maxsplit=1)[0] for r in reqs if "extra ==" not in r]
    return seen


PLATFORMS = [f"manylinux_2_{n}_x86_64" for n in (28, 27, 24, 17)] + [
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
]


def target_flags(python_version: str) -> list[str]:
    flags = ["--only-binary=:all:", "--python-version", python_version, "--implementation", "cp"]
    for p in PLATFORMS:
        flags += ["--platform", p]
    return flags


def resolve(requirements: Path) -> list[str]:
    """``name==version`` of every package the requirements need (image packages left out)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "-q"]
        subprocess.run([*cmd, "--report", str(report), "-r", str(requirements)], check=True)
        items = json.loads(report.read_text())["install"]
    image = image_packages()
    pins = []
    for item in items:
        name = canonical(item["metadata"]["name"])
        if name not in image and not CUDA_STACK.match(name):
            pins.append(f"{name}=={item['metadata']['version']}")
    return sorted(pins)


def fetch(pin: str, dest: Path, python_version: str) -> str:
    """The target's binary wheel of ``pin``, or a wheel built here from its source archive."""
    pip = [sys.executable, "-m", "pip"]
    got = subprocess.run(
        [*pip, "download", "-q", "--no-deps", "-d", str(dest), *target_flags(python_version), pin],
        capture_output=True,
        text=True,
    )
    if got.returncode == 0:
        return "downloaded"
    subprocess.run([*pip, "wheel", "-q", "--no-deps", "-w", str(dest), pin], check=True)
    return "built"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dest", type=Path, default=ROOT / "bench" / "wheels")
    ap.add_argument("--requirements", type=Path, default=ROOT / "bench" / "gpu_requirements.txt")
    ap.add_argument("--python-version", default="3.12", help="the CUDA machine's Python")
    args = ap.parse_args(argv)
    pins = resolve(args.requirements)
    shutil.rmtree(args.dest, ignore_errors=True)
    args.dest.mkdir(parents=True)
    built = [p for p in pins if fetch(p, args.dest, args.python_version) == "built"]
    size = sum(f.stat().st_size for f in args.dest.glob("*.whl"))
    print(
        f"{len(pins)} wheels ({size / 2**20:.0f} MiB) in {args.dest} for Python "
        f"{args.python_version}; built from source: {', '.join(built) or 'none'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
