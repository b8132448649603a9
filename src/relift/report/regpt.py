"""ReGPT in the report: the headline (bits per byte against the n-gram floors, the equal-compute
table), the one-line verdict generated from those numbers, and the dev curves with the floors.

Reads the outputs of ``relift.regpt.report``: ``eval_table.csv`` (one row per model, plus the
``unigram floor (NAME)`` / ``bigram floor (NAME)`` rows), ``equal_compute.csv`` and
``learning_curves.csv``. Command line: ``python -m relift.report.regpt --table eval_table.csv
--curves learning_curves.csv --output dev_curves.png`` draws the dev curves.
"""

from __future__ import annotations

import argparse
import csv
from dataclasses import dataclass
from pathlib import Path

from relift.io import atomic_path, require_file, run_cli
from relift.report.style import Raw, num, signed_cell, table

MODELS = (("stage1", "ReGPT stage 1", "stage2"), ("stage2", "ReGPT stage 2", "stage2"))
MODELS += (("baseline", "token LM", "baseline"),)
CURVE_FLOORS = {"ReGPT": "stage2", "token LM": "baseline"}


@dataclass
class Claim:
    text: str
    holds: bool
    evidence: str


def read_csv(path: Path) -> list[dict]:
    with open(require_file(path, "CSV"), newline="") as fh:
        return list(csv.DictReader(fh))


def _float(x) -> float | None:
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def bits(rows: list[dict]) -> dict[str, float | None]:
    """model name -> bits per byte (floor rows keep their names)."""
    return {r["model"]: _float(r.get("bits_per_byte")) for r in rows}


def floors_of(bpb: dict, units: str) -> tuple[float | None, float | None]:
    return bpb.get(f"unigram floor ({units})"), bpb.get(f"bigram floor ({units})")


def claims(rows: list[dict], equal: list[dict]) -> list[Claim]:
    """ReGPT stage 2 against its floors and against the token LM, overall and at equal
    training seconds (each left out when its numbers are missing)."""
    bpb, out = bits(rows), []
    model, tok = bpb.get("stage2"), bpb.get("baseline")
    uni, bi = floors_of(bpb, "stage2")
    for floor, name in ((uni, "unigram"), (bi, "bigram")):
        if model is not None and floor is not None:
            out.append(
                Claim(f"beats the {name} floor of its phrases", model < floor, num(floor, ".3f"))
            )
    if model is not None and tok is not None:
        out.append(Claim("beats the token LM", model < tok, f"{num(tok, '.3f')} bits/byte"))
    diffs = [(r, _float(r.get("regpt_minus_token_lm"))) for r in equal]
    diffs = [(r, d) for r, d in diffs if d is not None]
    if diffs:
        out.append(
            Claim(
                "ahead of the token LM at every equal-compute budget",
                all(d < 0 for _, d in diffs),
                "ReGPT − token LM, dev: "
                + ", ".join(f"{num(r['budget_seconds'], '.0f')} s {d:+.3f}" for r, d in diffs),
            )
        )
    return out


def verdict(rows: list[dict], equal: list[dict]) -> str:
    bpb = bits(rows)
    if bpb.get("stage2") is None:
        return "no ReGPT stage-2 evaluation in this run."
    from relift.selfmem.evaluation.findings import holds_line

    head = f"ReGPT stage 2: {num(bpb['stage2'], '.3f')} bits per byte on the held-out split."
    return holds_line(head, claims(rows, equal))


def headline_table(rows: list[dict]) -> Raw:
    bpb, by_model = bits(rows), {r["model"]: r for r in rows}
    body = []
    for name, label, units in MODELS:
        if bpb.get(name) is None:
            continue
        uni, bi = floors_of(bpb, units)
        body.append(
            [label, num(bpb[name], ".3f"), num(uni, ".3f"), num(bi, ".3f")]
            + [
                signed_cell(
                    None if f is None else round(bpb[name] - f, 3), lower_is_better=True, spec=".3f"
                )
                for f in (uni, bi)
            ]
            + [num(_float(by_model[name].get("acc@1")), ".3f")]
        )
    head = ["model", "bits/byte", "unigram floor", "bigram floor", "vs unigram", "vs bigram"]
    return table(head + ["acc@1"], body, numeric={1, 2, 3, 4, 5, 6})


def equal_compute_table(equal: list[dict]) -> Raw:
    body = [
        [
            num(r.get("budget_seconds"), ".0f"),
            num(_float(r.get("regpt_dev_bits_per_byte")), ".3f"),
            num(_float(r.get("regpt_seconds")), ".0f"),
            num(_float(r.get("token_lm_dev_bits_per_byte")), ".3f"),
            num(_float(r.get("token_lm_seconds")), ".0f"),
            signed_cell(_float(r.get("regpt_minus_token_lm")), lower_is_better=True, spec=".3f"),
        ]
        for r in equal
    ]
    head = ["budget (s)", "ReGPT dev bits/byte", "at (s)", "token LM dev bits/byte", "at (s)"]
    return table(head + ["ReGPT − token LM"], body, numeric={0, 1, 2, 3, 4, 5})


def curve_points(path: Path) -> dict[str, list[tuple[float, float, float]]]:
    """run -> (training seconds, training bytes, dev bits/byte) from learning_curves.csv."""
    out: dict[str, list] = {}
    for r in read_csv(path):
        pt = tuple(_float(r.get(k)) for k in ("train_seconds", "train_bytes", "dev_bits_per_byte"))
        if None not in pt:
            out.setdefault(r["run"], []).append(pt)
    return out


def plot_dev_curves(path: Path, curves: dict[str, list], rows: list[dict]) -> None:
    """Dev bits per byte against training seconds and bytes, with each tokenization's unigram
    and bigram floors as horizontal lines in its run's colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"ReGPT stage 1": "C0", "ReGPT stage 2": "C1", "token LM": "C2"}
    bpb = bits(rows)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for k, (ax, xlabel) in enumerate(
        zip(axes, ("training seconds (wall-clock, evaluation excluded)", "bytes of training text"))
    ):
        for name, pts in curves.items():
            ax.plot(
                [p[k] for p in pts],
                [p[2] for p in pts],
                marker="o",
                ms=3,
                lw=1.3,
                label=name,
                color=colors.get(name),
            )
        for who, units in CURVE_FLOORS.items():
            color = "C1" if who == "ReGPT" else "C2"
            for floor, style, order in zip(
                floors_of(bpb, units), ("--", ":"), ("unigram", "bigram")
            ):
                if floor is not None:
                    ax.axhline(
                        floor,
                        color=color,
                        ls=style,
                        lw=1,
                        label=f"{order} floor, {who} units ({floor:.3f})",
                    )
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("bits per byte (lower is better)")
    axes[0].legend(fontsize=7)
    fig.suptitle(
        "ReGPT and the token LM: dev bits per byte during training; lines: the n-gram "
        "floors of each model's units (held-out split)",
        fontsize=10,
    )
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m relift.report.regpt",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--table", required=True, type=Path, help="eval_table.csv (the floors)")
    ap.add_argument("--curves", required=True, type=Path, help="learning_curves.csv")
    ap.add_argument("--output", required=True, type=Path, help="PNG to write")
    args = ap.parse_args(argv)
    plot_dev_curves(args.output, curve_points(args.curves), read_csv(args.table))


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
