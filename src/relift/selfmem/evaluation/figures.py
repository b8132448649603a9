"""The Selfmem figures of one task, for the report (PNG):

* ``--bars``: every row of the comparison (test) as a bar of its BLEU, with its 95% bootstrap
  interval when the table has one, and copying the BM25 memory and the fuzzy-match switch as
  lines; beside it, each row's paired-bootstrap difference with the reference row and its 95%
  interval;
* ``--bands``: rows x fuzzy-match bands of the memory (test): BLEU per band (with the band's
  item count), and each row's difference with the switch in that band;
* ``--curves``: dev BLEU of every generator against updates and against training seconds
  (``dev_curve.csv`` of each generator folder, counted from scratch through a warm start), with
  copying the memory and the switch on dev as horizontal lines.

A figure whose data is missing (a table without bands, generators without a dev curve) says so
in the image instead of failing: the report keeps its place.
"""

from __future__ import annotations

import argparse
import csv
import json
import textwrap
from pathlib import Path

from relift.io import InputError, atomic_path, require_file, run_cli
from relift.selfmem.evaluation import findings

KIND_COLORS = {
    "baseline": "#8c959f",
    "generator": "#0969da",
    "loop": "#bc4c00",
    "diagnostic": "#d0d7de",
    "oracle": "#d0d7de",
}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png", bbox_inches="tight")
    _plt().close(fig)


def placeholder(path: Path, title: str, message: str) -> None:
    """A small image that says why the figure is empty."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 1.6))
    ax.axis("off")
    ax.set_title(title, fontsize=10)
    ax.text(0.5, 0.4, message, ha="center", va="center", fontsize=9, wrap=True)
    _save(fig, path)


def _wrap(label: str, width: int = 34) -> str:
    return "\n".join(textwrap.wrap(label, width)) or label


def _baseline_lines(ax, rows: list[dict], vertical: bool) -> None:
    line = ax.axvline if vertical else ax.axhline
    for row, style, color, name in (
        (findings.copy_row(rows), "--", "#57606a", "copy the BM25 memory"),
        (findings.switch_row(rows), ":", "#8250df", "fuzzy-match switch"),
    ):
        if row and row.get("bleu") is not None:
            line(row["bleu"], color=color, ls=style, lw=1.6, label=f"{name} ({row['bleu']:.2f})")


def bleu_bars(table: dict, path: Path, split: str = "test") -> None:
    rows = [r for r in findings.rows_of(table, split) if r.get("bleu") is not None]
    if not rows:
        return placeholder(path, "Selfmem rows", f"no {split} rows in the comparison")
    plt = _plt()
    with_delta = any(r.get("ci95") for r in rows)
    fig, axes = plt.subplots(
        1,
        2 if with_delta else 1,
        figsize=(11 if with_delta else 7, 0.42 * len(rows) + 1.4),
        sharey=True,
        squeeze=False,
        gridspec_kw={"width_ratios": [3, 2] if with_delta else [1]},
    )
    ax, y = axes[0][0], list(range(len(rows)))
    err = [r.get("bleu_ci95") for r in rows]
    xerr = None
    if all(err):
        xerr = [
            [r["bleu"] - lo for r, (lo, _) in zip(rows, err)],
            [hi - r["bleu"] for r, (_, hi) in zip(rows, err)],
        ]
    ax.barh(
        y,
        [r["bleu"] for r in rows],
        xerr=xerr,
        capsize=3,
        color=[KIND_COLORS.get(r.get("kind"), "#0969da") for r in rows],
    )
    for yi, r in zip(y, rows):
        ax.text(r["bleu"], yi, f" {r['bleu']:.2f}", va="center", fontsize=8)
    _baseline_lines(ax, rows, vertical=True)
    ax.set_yticks(y, [_wrap(r["label"]) for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"{split} BLEU" + (" (95% bootstrap interval)" if xerr else ""))
    from matplotlib.transforms import offset_copy

    below = offset_copy(ax.transAxes, fig=fig, y=-34, units="points")  # under the x label
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, 0), bbox_transform=below, ncol=2)
    ax.grid(axis="x", alpha=0.3)
    if with_delta:
        _delta_panel(axes[0][1], rows, table["reference_row"])
    fig.suptitle(f"Selfmem, task {table['task']}: {split} BLEU of every row", fontsize=10)
    _save(fig, path)


def _delta_panel(ax, rows: list[dict], reference: str) -> None:
    for yi, r in enumerate(rows):
        if r.get("label") == reference:
            ax.plot(0, yi, "D", color="#0969da", ms=5)
            ax.annotate(" reference", (0, yi), va="center", fontsize=8, color="#0969da")
        elif r.get("ci95") and r.get("delta_vs_ref") is not None:
            d, (lo, hi) = r["delta_vs_ref"], r["ci95"]
            sig = hi < 0 or lo > 0
            ax.errorbar(
                d,
                yi,
                xerr=[[d - lo], [hi - d]],
                fmt="o",
                ms=4,
                capsize=3,
                color="#cf222e" if sig and d < 0 else "#1a7f37" if sig else "#59636e",
            )
    ax.axvline(0, color="#0969da", lw=1.2)
    ax.set_xlabel(f"Δ BLEU vs {_wrap(reference, 40)}\n(paired bootstrap, 95% interval)", fontsize=8)
    ax.grid(axis="x", alpha=0.3)


def band_chart(table: dict, path: Path, split: str = "test") -> None:
    rows = [r for r in findings.rows_of(table, split) if r.get("bands")]
    if not rows:
        return placeholder(
            path,
            "Selfmem by fuzzy-match band",
            "this comparison has no per-band scores (made before bands existed)",
        )
    import numpy as np

    plt = _plt()
    bands = [b["band"] for b in rows[0]["bands"]]
    counts = [b.get("n", 0) for b in rows[0]["bands"]]
    grid = np.array([[_band_bleu(r, b) for b in bands] for r in rows], dtype=float)
    sw = findings.switch_row(rows)
    fig, axes = plt.subplots(
        1,
        2 if sw else 1,
        figsize=(12 if sw else 7, 0.42 * len(rows) + 1.8),
        sharey=True,
        squeeze=False,
    )
    _heatmap(axes[0][0], grid, "Blues", None, f"{split} BLEU per band")
    if sw:
        ref = np.array([_band_bleu(sw, b) for b in bands], dtype=float)
        lim = max(1.0, float(np.nanmax(np.abs(grid - ref))) if np.isfinite(grid - ref).any() else 1)
        _heatmap(
            axes[0][1], grid - ref, "RdBu", lim, "BLEU − fuzzy-match switch, per band", signed=True
        )
    for ax in axes[0]:
        ax.set_xticks(
            range(len(bands)), [f"{b}\nn = {n}" for b, n in zip(bands, counts)], fontsize=8
        )
        ax.set_xlabel("fuzzy match of the memory's source with the input")
    axes[0][0].set_yticks(range(len(rows)), [_wrap(r["label"]) for r in rows], fontsize=8)
    fig.suptitle(f"Selfmem, task {table['task']}: rows x fuzzy-match bands ({split})", fontsize=10)
    _save(fig, path)


def _band_bleu(row: dict, band: str) -> float:
    b = next((b for b in row.get("bands") or [] if b["band"] == band), None)
    return float("nan") if b is None or b.get("bleu") is None else float(b["bleu"])


def _heatmap(ax, grid, cmap: str, lim, title: str, signed: bool = False) -> None:
    import numpy as np

    lo, hi = (-lim, lim) if lim else (0.0, max(1.0, float(np.nanmax(grid))))
    ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, aspect="auto", vmin=lo, vmax=hi)
    for (i, j), v in np.ndenumerate(grid):
        text = "–" if np.isnan(v) else (f"{v:+.1f}" if signed else f"{v:.1f}")
        strong = not np.isnan(v) and (abs(v) / hi > 0.6 if signed else (v - lo) / (hi - lo) > 0.6)
        ax.text(
            j, i, text, ha="center", va="center", fontsize=8, color="white" if strong else "black"
        )
    ax.set_title(title, fontsize=9)


def read_dev_curve(folder: Path, metric: str = "bleu") -> list[dict] | None:
    """(updates, training seconds, dev score) per dev evaluation of a generator folder, counted
    from scratch when the run was warm-started; None when the folder has no dev curve."""
    path = Path(folder) / "dev_curve.csv"
    if not path.exists():
        return None
    with open(path, newline="") as fh:
        recs = list(csv.DictReader(fh))
    if recs and metric not in recs[0]:
        raise InputError(f"no column {metric!r} in the dev curve", path=path)
    step = "total_steps" if recs and "total_steps" in recs[0] else "step"
    secs = "total_train_seconds" if recs and "total_train_seconds" in recs[0] else "train_seconds"
    return [
        {"step": float(r[step]), "seconds": float(r[secs]), "score": float(r[metric])}
        for r in recs
        if r.get(metric) not in (None, "")
    ]


def learning_curves(table: dict, curves: dict[str, list[dict]], path: Path, metric: str) -> None:
    curves = {name: pts for name, pts in curves.items() if pts}
    if not curves:
        return placeholder(
            path,
            "Selfmem learning curves",
            "no generator of this run wrote a dev curve (dev_curve.csv)",
        )
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    dev_rows = findings.rows_of(table, "dev")
    for ax, key, xlabel in zip(
        axes, ("step", "seconds"), ("updates", "training seconds (wall-clock, evaluation excluded)")
    ):
        for name, pts in curves.items():
            ax.plot(
                [p[key] for p in pts],
                [p["score"] for p in pts],
                marker="o",
                ms=3,
                lw=1.3,
                label=name,
            )
        _baseline_lines(ax, dev_rows, vertical=False)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"dev {metric.upper()}")
    axes[0].legend(fontsize=8)
    fig.suptitle(
        f"Selfmem, task {table['task']}: dev {metric.upper()} during training "
        "(lines: copy the memory and the switch on dev)",
        fontsize=10,
    )
    _save(fig, path)


def _named(items: list[str]) -> dict[str, Path]:
    out = {}
    for it in items:
        name, sep, path = it.partition("=")
        if not sep or not name or not path:
            raise InputError(f"--generator expects NAME=FOLDER, got {it!r}")
        out[name] = Path(path)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m relift.selfmem.evaluation.figures",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--comparison", required=True, type=Path, help="comparison.json")
    ap.add_argument("--generator", action="append", default=[], metavar="NAME=FOLDER")
    ap.add_argument("--metric", default="bleu", help="the dev curve's column")
    ap.add_argument("--bars", required=True, type=Path, help="PNG: the rows as bars")
    ap.add_argument("--bands", required=True, type=Path, help="PNG: rows x match bands")
    ap.add_argument("--curves", required=True, type=Path, help="PNG: dev learning curves")
    args = ap.parse_args(argv)
    try:
        table = json.loads(require_file(args.comparison, "comparison table").read_text())
    except json.JSONDecodeError as err:
        raise InputError(f"not valid JSON ({err.msg})", path=args.comparison) from None
    bleu_bars(table, args.bars)
    band_chart(table, args.bands)
    curves = {n: read_dev_curve(f, args.metric) for n, f in _named(args.generator).items()}
    learning_curves(table, curves, args.curves, args.metric)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
