"""The training loop's metrics: ``metrics.jsonl`` (one JSON record per event), ``metrics.csv``
(the same, long format ``step,kind,name,value``) and TensorBoard (``tb/``), each truncated to
the resumed step so that a resumed run has no duplicated rows."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from relift.io import LOG


def log_window(saved: dict | None = None) -> dict:
    """Running sums of the steps since the last log record (kept in checkpoints)."""
    return {"loss": 0.0, "n": 0, "tokens": 0, "time": 0.0, **(saved or {})}


def numbers(rec: dict):
    """The (name, value) pairs of a record that are numbers (not its step and kind)."""
    for k, v in rec.items():
        if k not in ("step", "kind") and isinstance(v, (int, float)):
            yield k, v


class MetricsWriter:
    """metrics.jsonl + metrics.csv (long format) + TensorBoard, truncated to ``resume_step``.
    ``enabled=False`` (processes other than the main one) writes nothing."""

    def __init__(self, out_dir: Path, resume_step: int, enabled: bool):
        self.enabled = enabled
        self.jsonl, self.csv = out_dir / "metrics.jsonl", out_dir / "metrics.csv"
        self.tb = None
        if not enabled:
            return
        keep = self.records_until(resume_step) if resume_step else []
        self.jsonl.write_text("".join(json.dumps(r) + "\n" for r in keep))
        with open(self.csv, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["step", "kind", "name", "value"])
            for r in keep:
                w.writerows([r["step"], r["kind"], k, v] for k, v in numbers(r))
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(
                str(out_dir / "tb"), purge_step=resume_step + 1 if resume_step else None
            )
        except Exception as err:  # tensorboard missing: the files still get written
            LOG.warning("no TensorBoard logging (%s)", err)

    def records_until(self, step: int) -> list[dict]:
        keep = []
        if self.jsonl.exists():
            for line in self.jsonl.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a torn last line of a killed run
                if rec.get("step", 0) <= step:
                    keep.append(rec)
        return keep

    def log(self, rec: dict) -> None:
        if not self.enabled:
            return
        with open(self.jsonl, "a") as fh:
            fh.write(json.dumps(rec) + "\n")
        with open(self.csv, "a", newline="") as fh:
            csv.writer(fh).writerows([rec["step"], rec["kind"], k, v] for k, v in numbers(rec))
        if self.tb is not None:
            for k, v in numbers(rec):
                self.tb.add_scalar(f"{rec['kind']}/{k}", v, rec["step"])
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
