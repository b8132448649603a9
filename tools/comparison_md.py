"""Markdown tables of a Selfmem comparison (``results/selfmem/<task>/report/comparison.json``),
as docs/results-selfmem.md shows them:

    python tools/comparison_md.py results/selfmem/tm_ende/report/comparison.json --split test

1. every row: BLEU (mean ± sd over seeds, the seeds' values), the updates and training seconds
   behind a generator (counted from scratch), and its paired bootstraps against vanilla,
   copying the memory, the switch and the equal-compute control (ΔBLEU and one-sided p);
2. BLEU per fuzzy-match band of every row, with the band's item count;
3. for each generator and loop row named with ``--bands-of``: ΔBLEU (p) per band against each
   row it was tested against.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

AGAINST = (
    ("vanilla (no memory)", "vanilla"),
    ("copy the BM25 memory", "copy"),
    ("fuzzy-match switch (BM25 memory if match ≥ t, else vanilla)", "switch"),
    ("vanilla continued, no memory (equal-compute control)", "control"),
)


def _dp(t: dict | None) -> str:
    if t is None or t.get("delta") is None:
        return ""
    p = f"p {t['p']:.3f}" if t["p"] >= 0.001 else "p < 0.001"
    text = f"{t['delta']:+.2f} ({p})"
    return f"**{text}**" if t["p"] < 0.05 else text


def _bleu(r: dict) -> str:
    if r["bleu"] is None:
        return ""
    if r.get("seeds", 1) > 1:
        return f"{r['bleu']:.2f} ± {r['bleu_sd']:.2f}"
    return f"{r['bleu']:.2f}"


def rows_table(rows: list[dict], labels: list[str]) -> str:
    present = [(lab, short) for lab, short in AGAINST if lab in labels]
    head = ["row", "BLEU", "per seed", "updates", "train s"] + [f"Δ vs {s}" for _, s in present]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        tests = {t["against"]: t for t in r.get("tests") or []}
        seeds = ", ".join(f"{x:.2f}" for x in r.get("bleu_seeds") or [])
        cells = [
            r["label"],
            _bleu(r),
            seeds,
            str(r.get("updates", "")),
            str(r.get("train_seconds", "")),
        ]
        cells += [_dp(tests.get(lab)) for lab, _ in present]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def bands_table(rows: list[dict]) -> str:
    bands = next((r["bands"] for r in rows if r.get("bands")), [])
    head = ["row"] + [f"{b['band']} (n {b['n']})" for b in bands]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        vals = [f"{b['bleu']:.2f}" if b.get("bleu") is not None else "" for b in r.get("bands", [])]
        out.append("| " + " | ".join([r["label"], *vals]) + " |")
    return "\n".join(out)


def band_tests_table(row: dict) -> str:
    tests = row.get("tests") or []
    bands = tests[0].get("bands", []) if tests else []
    head = ["against", "all"] + [f"{b['band']} (n {b['n']})" for b in bands]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for t in tests:
        out.append(
            "| " + " | ".join([t["against"], _dp(t), *[_dp(b) for b in t.get("bands", [])]]) + " |"
        )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("comparison", type=Path)
    ap.add_argument("--split", default="test", choices=("dev", "test"))
    ap.add_argument(
        "--bands-of",
        action="append",
        default=[],
        metavar="PREFIX",
        help="rows (label prefix) whose per-band paired bootstraps to print",
    )
    args = ap.parse_args()
    t = json.loads(args.comparison.read_text())
    rows = [r for r in t["rows"] if r["split"] == args.split]
    labels = [r["label"] for r in rows]
    print(rows_table(rows, labels), end="\n\n")
    print(bands_table(rows), end="\n\n")
    for prefix in args.bands_of:
        for r in rows:
            if r["label"].startswith(prefix) and r.get("tests"):
                print(f"{r['label']}:\n\n{band_tests_table(r)}\n")


if __name__ == "__main__":
    main()
