"""The report's landing page: what this run shows, generated from its numbers.

An HTML fragment that the workflow description (``workflow/report/workflow.rst``) includes, so
that ``snakemake --report`` opens on it: one line per system saying what holds and what does not
(``relift.selfmem.evaluation.findings``, ``relift.report.regpt``), the Selfmem headline table of
each task (test BLEU, the paired-bootstrap differences and the flags), the ReGPT headline (bits
per byte against the unigram and bigram floors; the equal-compute table) and the main figures.
Its ``<style>`` widens the report's description column and lets the rule graph wrap below it.

    python -m relift.report.landing --selfmem tm_ende=comparison.json --selfmem-bars
        tm_ende=bleu_bars.png --regpt-table eval_table.csv --regpt-equal equal_compute.csv
        --regpt-curves dev_curves.png --output landing.html
"""

from __future__ import annotations

import argparse
import datetime
import html
import json
from pathlib import Path

from relift.io import InputError, require_file, run_cli, write_text_atomic
from relift.report import regpt
from relift.report.style import CSS, Raw, png_data_uri, signed_cell, table
from relift.selfmem.evaluation import findings
from relift.selfmem.evaluation.html import bleu_cell, row_class

# the Snakemake report shows the description in a narrow column beside the rule graph, centred
# vertically: widen the column, wrap the graph below it and start at the top
REPORT_CSS = """
.prose:has(#relift-landing) { max-width: min(82rem, 100%); }
.flex:has(> .py-2 #relift-landing) { flex-wrap: wrap; }
.items-center:has(#relift-landing) { align-items: flex-start; }
#relift-landing table { width: auto; }
#relift-landing h1, #relift-landing h2, #relift-landing h3 { margin-top: .9rem; }
"""


def _e(x) -> str:
    return html.escape(str(x))


def selfmem_table(t: dict, split: str = "test") -> Raw:
    rows = findings.rows_of(t, split)
    tags = findings.row_flags(t, split)
    body = []
    for r in rows:
        ref = r["label"] == t["reference_row"]
        flag = ", ".join(tags.get(r["label"], []))
        body.append(
            [
                r["label"],
                bleu_cell(r),
                Raw("<i>reference</i>")
                if ref
                else signed_cell(r.get("delta_vs_ref"), r.get("p_value"), r.get("ci95")),
                signed_cell(r.get("delta_vs_switch"), r.get("p_vs_switch")),
                Raw(f"<span class='fails'>{_e(flag)}</span>") if flag else "",
            ]
        )
    head = [
        "row",
        f"{split} BLEU",
        "Δ vs reference (p) [95% interval]",
        "Δ vs switch (p)",
        "flags",
    ]
    classes = [row_class(r, t["reference_row"]) for r in rows]
    return table(head, body, numeric={1, 2, 3}, row_classes=classes)


def flags_line(t: dict) -> str:
    """The test flags in one box: what each is about (the rows, or how many); the table's last
    column marks the rows, the comparison page gives the numbers."""
    flags = findings.flags(t, "test")
    if not flags:
        return "<div class='flag ok'><b>Flags</b> (test): none raised.</div>"
    items = [
        f"<b>{_e(f.title)}</b>: "
        + _e("; ".join(f.rows) if len(f.rows) <= 2 else f"{len(f.rows)} rows")
        for f in flags
    ]
    return (
        "<div class='flag'><b>Flags</b> (test) · " + " · ".join(items) + ". Each row's flags are "
        "in the table's last column; the comparison page gives the numbers.</div>"
    )


def verdict_line(system: str, text: str) -> str:
    text = _e(text)
    for word, cls in (("Holds:", "holds"), ("Does not hold:", "fails")):
        text = text.replace(word, f"<span class='{cls}'>{word}</span>")
    return f"<div class='verdict'><b>{_e(system)}</b> — {text}</div>"


def selfmem_section(task: str, t: dict) -> str:
    parts = [f"<h2>Selfmem, task {_e(task)}: test BLEU</h2>", flags_line(t)]
    parts.append(selfmem_table(t))
    parts.append(
        f"<p class='muted'>Paired bootstrap ({t.get('resamples', '?')} resamples) against the "
        f"reference row <b>{_e(t['reference_row'])}</b> (blue); p one-sided for “row is "
        f"better”; bold: p &lt; 0.05. Seeds: {t.get('seeds', 1)}. ORACLE rows (grey) use the "
        "reference: diagnostics, not results.</p>"
    )
    return "\n".join(parts)


def regpt_section(rows: list[dict], equal: list[dict]) -> str:
    parts = [
        "<h2>ReGPT: bits per byte on the held-out split, against the n-gram floors</h2>",
        regpt.headline_table(rows),
        "<p class='muted'>Floors: add-k unigram and Kneser–Ney bigram models of each model's own "
        "units (ReGPT: its phrases; token LM: its tokens), estimated on the training split. "
        "Lower is better; a negative difference beats the floor.</p>",
    ]
    if equal:
        parts += [
            "<h3>Equal compute: dev bits per byte at equal training seconds</h3>",
            regpt.equal_compute_table(equal),
        ]
    return "\n".join(parts)


def figures_section(figures: list[tuple[str, Path]]) -> str:
    if not figures:
        return ""
    parts = ["<h2>Figures</h2>"]
    for title, path in figures:
        parts.append(f"<h3>{_e(title)}</h3><img alt='{_e(title)}' src='{png_data_uri(path)}'>")
    return "\n".join(parts)


def landing(selfmem: dict[str, dict], regpt_rows, equal, figures) -> str:
    """The fragment: verdicts first, then the headline tables, then the figures."""
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    parts = [
        "<h1>What this run shows</h1>",
        f"<p class='muted'>Generated from this run's outputs ({when}): every number and every "
        "verdict below is computed from them. Details: the pages listed at the end.</p>",
    ]
    for task, t in selfmem.items():
        parts.append(verdict_line(f"Selfmem ({task})", findings.verdict(t, "test")))
    if regpt_rows is not None:
        parts.append(verdict_line("ReGPT", regpt.verdict(regpt_rows, equal)))
    parts += [selfmem_section(task, t) for task, t in selfmem.items()]
    if regpt_rows is not None:
        parts.append(regpt_section(regpt_rows, equal))
    parts.append(figures_section(figures))
    body = "\n".join(p for p in parts if p)
    return (
        f"<div id='relift-landing' class='relift'><style>{CSS}{REPORT_CSS}</style>\n"
        f"{body}\n</div>\n"
    )


def _pairs(items: list[str], flag: str) -> dict[str, Path]:
    out = {}
    for it in items:
        name, sep, path = it.partition("=")
        if not sep or not name or not path:
            raise InputError(f"{flag} expects TASK=PATH, got {it!r}")
        out[name] = Path(path)
    return out


def _json(path: Path) -> dict:
    try:
        return json.loads(require_file(path, "comparison table").read_text())
    except json.JSONDecodeError as err:
        raise InputError(f"not valid JSON ({err.msg})", path=path) from None


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m relift.report.landing",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--selfmem", action="append", default=[], metavar="TASK=COMPARISON_JSON")
    ap.add_argument("--selfmem-bars", action="append", default=[], metavar="TASK=PNG")
    ap.add_argument("--regpt-table", type=Path, help="eval_table.csv")
    ap.add_argument("--regpt-equal", type=Path, help="equal_compute.csv")
    ap.add_argument("--regpt-curves", type=Path, help="PNG of the dev curves")
    ap.add_argument("--output", required=True, type=Path)
    args = ap.parse_args(argv)
    selfmem = {task: _json(p) for task, p in _pairs(args.selfmem, "--selfmem").items()}
    rows = regpt.read_csv(args.regpt_table) if args.regpt_table else None
    equal = regpt.read_csv(args.regpt_equal) if args.regpt_equal else []
    figures = [
        (f"Selfmem, task {task}: every row's test BLEU", p)
        for task, p in _pairs(args.selfmem_bars, "--selfmem-bars").items()
    ]
    if args.regpt_curves:
        figures.append(
            ("ReGPT: dev bits per byte during training, with the floors", args.regpt_curves)
        )
    write_text_atomic(args.output, landing(selfmem, rows, equal, figures))


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
