"""Summarise the ReGPT runs: an evaluation table (CSV) and the loss curves (PNG).

``--eval NAME=eval.json`` (repeatable, in table order) and ``--run NAME=model_folder``
(repeatable; reads ``metrics.jsonl`` and ``train_info.json`` of the folder). The table has one
row per evaluated model: acc@1, acc@10 (phrases for ReGPT, tokens for the baseline), bits per
byte of the held-out text, nll per token, tokens/bytes evaluated, the in-batch contrastive loss
(ReGPT only) and the training steps/tokens/seconds. The figure has one panel per run: training
loss against training tokens consumed (the losses differ in kind: stage 1 is contrastive over
in-batch candidates, stage 2 over 1 + d hard candidates, the baseline a full softmax).

Floors: an evaluation JSON with ``floors`` (``relift.regpt.floors``) adds two rows per tokenization,
``unigram floor (NAME)`` and ``bigram floor (NAME)``: the bits per byte of the same held-out text
under add-k / Kneser–Ney n-gram models of that model's tokens, estimated on the training split
(``--floors-of NAME``, repeatable: whose floors to show; one per tokenization).

``--learning-curves PNG``: dev bits per byte (the fixed dev sample evaluated against the full
phrase table, or the baseline's full softmax, every ``eval_every`` steps) against training
seconds and against bytes of training text, ReGPT (stage 2 continues stage 1's axes) and the
token-level baseline on the same axes. ``--curves-csv`` writes the points.

``--equal-compute CSV`` with ``--budget SECONDS`` (repeatable): for each budget, the dev bits per
byte of ReGPT (stage 1, then stage 2) and of the token LM at their last evaluation within that
many training seconds, and the difference (negative = ReGPT better). Training seconds exclude
evaluation and are measured on the machine and threads of the run.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from relift.io import LOG, InputError, atomic_path, require_file, run_cli

COLUMNS = [
    "model",
    "kind",
    "acc@1",
    "acc@10",
    "bits_per_byte",
    "nll_per_token",
    "tokens",
    "bytes",
    "unk_tokens",
    "inbatch_loss",
    "train_steps",
    "train_tokens",
    "train_seconds",
    "train_seconds_total",
    "train_bytes_total",
    "units",
]


def _pairs(items: list[str], flag: str) -> list[tuple[str, Path]]:
    out = []
    for it in items or []:
        name, sep, path = it.partition("=")
        if not sep or not name or not path:
            raise InputError(f"{flag} expects NAME=PATH, got {it!r}")
        out.append((name, Path(path)))
    return out


def table_rows(evals: list[tuple[str, Path]], runs: dict[str, Path]) -> list[dict]:
    rows = []
    for name, path in evals:
        try:
            ev = json.loads(require_file(path, "evaluation JSON").read_text())
        except json.JSONDecodeError as err:
            raise InputError(f"not valid JSON ({err.msg})", path=path) from None
        row = {**{k: ev.get(k, "") for k in COLUMNS if k in ev}, "model": name}
        info_path = runs.get(name, Path("/nonexistent")) / "train_info.json"
        if info_path.exists():
            info = json.loads(info_path.read_text())
            row.update(
                train_steps=info.get("steps"),
                train_tokens=info.get("tokens"),
                train_seconds=info.get("train_seconds"),
                train_seconds_total=info.get("total_train_seconds"),
                train_bytes_total=info.get("total_bytes"),
            )
        rows.append(row)
    return rows


def floor_rows(evals: list[tuple[str, Path]], names: list[str]) -> list[dict]:
    """Rows ``unigram floor (NAME)`` / ``bigram floor (NAME)`` from the evaluations' floors."""
    rows = []
    for name, path in evals:
        if name not in names:
            continue
        ev = json.loads(require_file(path, "evaluation JSON").read_text())
        fl = ev.get("floors")
        if not fl:
            raise InputError("no floors in the evaluation (run it with --floors-train)", path=path)
        for order in ("unigram", "bigram"):
            rows.append(
                {
                    "model": f"{order} floor ({name})",
                    "kind": f"{order}-floor",
                    "bits_per_byte": fl[f"{order}_bits_per_byte"],
                    "tokens": ev.get("tokens"),
                    "bytes": ev.get("bytes"),
                    "train_tokens": fl.get("train_tokens"),
                    "units": f"{ev.get('units', '')}; smoothing k {fl[f'{order}_k']}",
                }
            )
    return rows


def eval_points(folder: Path, offset_seconds: float = 0.0, offset_bytes: float = 0.0) -> list:
    """(train seconds, training bytes, dev bits/byte, step) of a run's dev evaluations."""
    info = json.loads(require_file(folder / "train_info.json", "train_info.json").read_text())
    bpt = info.get("bytes_per_target")
    if bpt is None:
        raise InputError("no bytes_per_target recorded", path=folder / "train_info.json")
    mpath = require_file(folder / "metrics.jsonl", "metrics file")
    pts = []
    start = info.get("start_eval") or {}
    if "dev_bits_per_byte" in start:  # the model before its first update
        pts.append((offset_seconds, offset_bytes, start["dev_bits_per_byte"], 0))
    for line in mpath.read_text().splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        if r.get("kind") == "eval" and "dev_bits_per_byte" in r and "train_seconds" in r:
            pts.append(
                (
                    offset_seconds + r["train_seconds"],
                    offset_bytes + r["tokens"] * bpt,
                    r["dev_bits_per_byte"],
                    r["step"],
                )
            )
    return pts


def learning_curves(runs: dict[str, Path]) -> dict[str, list]:
    """ReGPT (stage 1, then stage 2 on continued axes) and the baseline, as eval points."""
    out = {}
    if "stage1" in runs:
        out["ReGPT stage 1"] = eval_points(runs["stage1"])
    if "stage2" in runs:
        info = json.loads((runs["stage2"] / "train_info.json").read_text())
        pts = eval_points(runs["stage2"], info.get("init_seconds", 0.0), info.get("init_bytes", 0))
        # stage 2 starts where stage 1 ended (its last evaluation is the same model)
        s1 = out.get("ReGPT stage 1") or []
        out["ReGPT stage 2"] = ([s1[-1][:3] + (0,)] if s1 and pts else []) + pts
    if "baseline" in runs:
        out["token LM"] = eval_points(runs["baseline"])
    return out


def plot_learning_curves(path: Path, curves: dict[str, list], floors: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), squeeze=False)
    colors = {"ReGPT stage 1": "C0", "ReGPT stage 2": "C1", "token LM": "C2"}
    for k, (ax, xlabel) in enumerate(
        zip(axes[0], ("training seconds (wall-clock)", "bytes of training text"))
    ):
        for name, pts in curves.items():
            if pts:
                ax.plot(
                    [p[k] for p in pts],
                    [p[2] for p in pts],
                    marker="o",
                    ms=3,
                    lw=1.3,
                    label=name,
                    color=colors.get(name),
                )
        ax.set_xlabel(xlabel)
        ax.set_ylabel("dev bits per byte")
        ax.grid(alpha=0.3)
    if curves:
        axes[0][0].legend(fontsize=8)
    fig.suptitle("dev bits per byte during training (fixed dev sample, full softmax)", fontsize=10)
    fig.tight_layout()
    if path.suffix == ".html":
        # wall-clock seconds differ between any two runs: an HTML page (the figure inline and
        # the points as a table), like the Snakemake report, marks the artifact as time-bound
        import base64
        import html
        import io

        buf = io.BytesIO()
        fig.savefig(buf, dpi=100, format="png")
        img = base64.b64encode(buf.getvalue()).decode()
        rows = "".join(
            f"<tr><td>{html.escape(n)}</td><td>{p[3]}</td><td>{p[0]:.1f}</td>"
            f"<td>{p[1]:.0f}</td><td>{p[2]:.4f}</td></tr>"
            for n, pts in curves.items()
            for p in pts
        )
        page = (
            "<!DOCTYPE html><html><head><meta charset='utf-8'><title>ReGPT learning curves"
            "</title></head><body>"
            f"<img alt='dev bits per byte' src='data:image/png;base64,{img}'>"
            "<table border='1' cellpadding='3'><tr><th>run</th><th>step</th>"
            "<th>training seconds</th><th>training bytes</th><th>dev bits/byte</th></tr>"
            f"{rows}</table></body></html>\n"
        )
        with atomic_path(path) as tmp:
            Path(tmp).write_text(page)
    else:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def write_curves_csv(path: Path, curves: dict[str, list]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["run", "step", "train_seconds", "train_bytes", "dev_bits_per_byte"])
        for name, pts in curves.items():
            for sec, nbytes, bpb, step in pts:
                w.writerow([name, step, f"{sec:.3f}", round(nbytes), f"{bpb:.6g}"])


def at_budget(pts: list, budget: float) -> tuple | None:
    """The last evaluation whose training seconds are within ``budget`` (None if none is)."""
    inside = [p for p in pts if p[0] <= budget]
    return inside[-1] if inside else None


def equal_compute(curves: dict[str, list], budgets: list[float]) -> list[dict]:
    """Dev bits per byte of ReGPT (stage 1 then stage 2) and the token LM at equal training
    seconds: per budget, each model's last evaluation within it (same machine, same dev text)."""
    regpt = curves.get("ReGPT stage 1", []) + curves.get("ReGPT stage 2", [])
    token = curves.get("token LM", [])
    rows = []
    for b in budgets:
        row: dict = {"budget_seconds": b}
        for name, pts in (("regpt", regpt), ("token_lm", token)):
            p = at_budget(pts, b)
            row[f"{name}_seconds"] = round(p[0], 1) if p else ""
            row[f"{name}_train_bytes"] = round(p[1]) if p else ""
            row[f"{name}_dev_bits_per_byte"] = round(p[2], 4) if p else ""
        if row["regpt_dev_bits_per_byte"] != "" and row["token_lm_dev_bits_per_byte"] != "":
            row["regpt_minus_token_lm"] = round(
                row["regpt_dev_bits_per_byte"] - row["token_lm_dev_bits_per_byte"], 4
            )
        else:
            row["regpt_minus_token_lm"] = ""
        rows.append(row)
    return rows


def write_equal_compute(path: Path, rows: list[dict]) -> None:
    cols = [
        "budget_seconds",
        "regpt_seconds",
        "regpt_train_bytes",
        "regpt_dev_bits_per_byte",
        "token_lm_seconds",
        "token_lm_train_bytes",
        "token_lm_dev_bits_per_byte",
        "regpt_minus_token_lm",
    ]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)


def write_csv(path: Path, rows: list[dict]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def plot_curves(path: Path, runs: list[tuple[str, Path]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, max(1, len(runs)), figsize=(4.2 * max(1, len(runs)), 3.4), squeeze=False
    )
    for ax, (name, folder) in zip(axes[0], runs):
        mpath = require_file(folder / "metrics.jsonl", "metrics file")
        recs = [json.loads(x) for x in mpath.read_text().splitlines() if x.strip()]
        tr = [
            (r.get("tokens", r["step"]), r["loss"])
            for r in recs
            if r.get("kind") == "train" and "loss" in r
        ]
        if tr:
            ax.plot(*zip(*tr), lw=1.2)
        ax.set_title(name)
        ax.set_xlabel("training tokens")
        ax.set_ylabel("train loss (nats)")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m relift.regpt.report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--eval", action="append", required=True, metavar="NAME=JSON")
    ap.add_argument("--run", action="append", default=[], metavar="NAME=FOLDER")
    ap.add_argument("--table", required=True, type=Path, help="CSV to write")
    ap.add_argument("--curves", required=True, type=Path, help="PNG to write")
    ap.add_argument(
        "--floors-of", action="append", default=[], metavar="NAME", help="floors of this eval"
    )
    ap.add_argument(
        "--learning-curves", type=Path, help="PNG or HTML: dev bits/byte during training"
    )
    ap.add_argument("--curves-csv", type=Path, help="CSV of the learning-curve points")
    ap.add_argument(
        "--budget",
        action="append",
        type=float,
        default=[],
        metavar="SECONDS",
        help="equal-compute table: training seconds at which both dev curves are read",
    )
    ap.add_argument("--equal-compute", type=Path, help="CSV of the equal-compute table")
    return ap


def write_learning_curves(args, runs: dict, rows: list[dict]) -> None:
    """The dev learning curves (plot, CSV) and the equal-compute table, as asked for."""
    curves = learning_curves(runs)
    if args.equal_compute:
        eq = equal_compute(curves, args.budget)
        write_equal_compute(args.equal_compute, eq)
        for r in eq:
            LOG.info(
                "budget %6.0fs: ReGPT %s bits/byte (%ss), token LM %s (%ss)",
                r["budget_seconds"],
                r["regpt_dev_bits_per_byte"],
                r["regpt_seconds"],
                r["token_lm_dev_bits_per_byte"],
                r["token_lm_seconds"],
            )
    if args.learning_curves:
        plot_learning_curves(args.learning_curves, curves, rows)
    if args.curves_csv:
        write_curves_csv(args.curves_csv, curves)
    for name, pts in curves.items():
        if pts:
            LOG.info(
                "%-14s dev bits/byte %.4f -> %.4f (%d evals, %.0fs of training)",
                *(name, pts[0][2], pts[-1][2], len(pts), pts[-1][0]),
            )


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    evals, runs = _pairs(args.eval, "--eval"), _pairs(args.run, "--run")
    rows = table_rows(evals, dict(runs))
    rows += floor_rows(evals, args.floors_of)
    write_csv(args.table, rows)
    plot_curves(args.curves, runs)
    if args.learning_curves or args.curves_csv or args.equal_compute:
        write_learning_curves(args, dict(runs), rows)
    for r in rows:
        LOG.info(
            "%-10s acc@1 %.4f acc@10 %.4f %.4f bits/byte",
            *(r["model"], r.get("acc@1", 0), r.get("acc@10", 0), r.get("bits_per_byte", 0)),
        )


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
