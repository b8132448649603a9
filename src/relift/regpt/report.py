"""Summarise the ReGPT runs: an evaluation table (CSV) and the loss curves (PNG).

``--eval NAME=eval.json`` (repeatable, in table order) and ``--run NAME=model_folder``
(repeatable; reads ``metrics.jsonl`` and ``train_info.json`` of the folder). The table has one
row per evaluated model: acc@1, acc@10 (phrases for ReGPT, tokens for the baseline), bits per
byte of the held-out text, nll per token, tokens/bytes evaluated, the in-batch contrastive loss
(ReGPT only) and the training steps/tokens/seconds. The figure has one panel per run: training
loss against training tokens consumed (the losses differ in kind: stage 1 is contrastive over
in-batch candidates, stage 2 over 1 + d hard candidates, the baseline a full softmax).
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
        row = {"model": name, **{k: ev.get(k, "") for k in COLUMNS if k in ev}}
        info_path = runs.get(name, Path("/nonexistent")) / "train_info.json"
        if info_path.exists():
            info = json.loads(info_path.read_text())
            row.update(
                train_steps=info.get("steps"),
                train_tokens=info.get("tokens"),
                train_seconds=info.get("train_seconds"),
            )
        rows.append(row)
    return rows


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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m relift.regpt.report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--eval", action="append", required=True, metavar="NAME=JSON")
    ap.add_argument("--run", action="append", default=[], metavar="NAME=FOLDER")
    ap.add_argument("--table", required=True, type=Path, help="CSV to write")
    ap.add_argument("--curves", required=True, type=Path, help="PNG to write")
    args = ap.parse_args(argv)
    evals, runs = _pairs(args.eval, "--eval"), _pairs(args.run, "--run")
    rows = table_rows(evals, dict(runs))
    write_csv(args.table, rows)
    plot_curves(args.curves, runs)
    for r in rows:
        LOG.info(
            "%-10s acc@1 %.4f acc@10 %.4f %.4f bits/byte",
            r["model"],
            r.get("acc@1", 0),
            r.get("acc@10", 0),
            r.get("bits_per_byte", 0),
        )


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
