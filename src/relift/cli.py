"""The ``relift`` console command.

Subcommands:

* ``relift score --hyp FILE --ref FILE [--ref-field F] [--metrics bleu,chrf,ter,rouge]``: corpus
  BLEU, chrF++ and TER (sacrebleu, with signatures) and ROUGE-1/2/Lsum as JSON on stdout (see
  :mod:`relift.score`). Misaligned files (different line counts) are an error (exit 2).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from relift.io import atomic_path, run_cli


def _score(args: argparse.Namespace) -> None:
    from relift.score import parse_metrics, score_files

    res = score_files(
        args.hyp, args.ref, parse_metrics(args.metrics), args.width, ref_field=args.ref_field
    )
    text = json.dumps(res, indent=1, ensure_ascii=False) + "\n"
    if args.output:
        with atomic_path(args.output) as tmp:
            tmp.write_text(text, encoding="utf-8")
    sys.stdout.write(text)


def _main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="relift", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="command", required=True)
    sc = sub.add_parser("score", help="corpus BLEU / chrF++ / TER / ROUGE of a hypothesis file")
    sc.add_argument("--hyp", required=True, type=Path, help="hypotheses, one per line")
    sc.add_argument("--ref", required=True, type=Path, help="references, one per line (aligned)")
    sc.add_argument(
        "--ref-field", help="read --ref as JSONL and take the references from this field"
    )
    sc.add_argument(
        "--metrics",
        default="bleu,chrf,ter",
        help="comma-separated: bleu, chrf, ter, rouge (default: %(default)s)",
    )
    sc.add_argument(
        "--width", type=int, default=2, help="decimals of the scores (default: %(default)s)"
    )
    sc.add_argument("--output", type=Path, help="also write the JSON to this file")
    sc.set_defaults(func=_score)
    args = ap.parse_args(argv)
    args.func(args)


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
