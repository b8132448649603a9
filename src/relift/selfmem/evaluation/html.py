"""The Selfmem comparison page (``comparison.html``) of one task, from its table
(``relift.selfmem.evaluation.compare.build_table``).

At the top, in words: the flags of the test split (``findings.flags``: collapse, memory not
read, below copying the memory, below the switch; a green line naming the checks that passed
when none is raised) and the one-line verdict (``findings.verdict``). Then per split (test
first) the main table: label, BLEU (with its 95% interval when the table has one, else ± sd over
seeds), Δ vs the reference row with p and the 95% interval of the difference, Δ vs the switch
with p, and distinct; and a details table with the rest: kind, seeds, chrF++, the share of
outputs equal to the BM25 memory, BLEU per fuzzy-match band (with its item count) and notes.
Last, for every generator and loop row, its paired bootstraps against copying the memory, the
switch, vanilla, the reference row and any further row the table names, overall and per band.
"""

from __future__ import annotations

import html

from relift.report.style import Raw, num, page, signed_cell, table
from relift.selfmem.evaluation import findings

SPLITS = ("test", "dev")
CHECKS = {
    "collapse": "no row collapsed (every row has at least 90% distinct outputs)",
    "memory-not-read": "every generator reads its memory",
    "below-copy": "no generator is below copying the BM25 memory",
    "below-switch": "no generator is below the fuzzy-match switch",
}


def bleu_cell(r: dict) -> str:
    if r.get("bleu") is None:
        return "–"
    text = num(r["bleu"])
    if r.get("bleu_ci95"):
        lo, hi = r["bleu_ci95"]
        return f"{text} [{num(lo)}, {num(hi)}]"
    if (r.get("seeds") or 1) > 1 and r.get("bleu_sd") is not None:
        return f"{text} ± {num(r['bleu_sd'])}"
    return text


def row_class(r: dict, reference: str) -> str:
    if r.get("label") == reference:
        return "reference"
    return {"baseline": "baseline", "diagnostic": "diagnostic", "oracle": "diagnostic"}.get(
        r.get("kind"), ""
    )


def flags_html(t: dict) -> str:
    raised = findings.flags(t, "test")
    out = [
        f"<div class='flag'><b>{html.escape(f.title)}</b> (test): {html.escape(f.text)}.</div>"
        for f in raised
    ]
    passed = [text for key, text in CHECKS.items() if key not in {f.key for f in raised}]
    if passed:
        out.append(
            "<div class='flag ok'><b>Checks passed</b> (test): "
            + html.escape("; ".join(passed))
            + ".</div>"
        )
    return "\n".join(out)


def main_table(t: dict, split: str) -> Raw:
    rows = findings.rows_of(t, split)
    head = ["row", "BLEU", "Δ vs reference (p) [95% interval]", "Δ vs switch (p)", "distinct"]
    body = [
        [
            r["label"],
            bleu_cell(r),
            signed_cell(r.get("delta_vs_ref"), r.get("p_value"), r.get("ci95"))
            if r.get("label") != t["reference_row"]
            else Raw("<i>reference</i>"),
            signed_cell(r.get("delta_vs_switch"), r.get("p_vs_switch")),
            num(r.get("distinct")),
        ]
        for r in rows
    ]
    classes = [row_class(r, t["reference_row"]) for r in rows]
    return table(head, body, numeric={1, 2, 3, 4}, row_classes=classes)


def band_names(rows: list[dict]) -> list[str]:
    names: list[str] = []
    for r in rows:
        for b in r.get("bands") or []:
            if b["band"] not in names:
                names.append(b["band"])
    return names


def band_cell(r: dict, band: str) -> str:
    b = next((b for b in r.get("bands") or [] if b["band"] == band), None)
    if b is None:
        return "–"
    return f"{num(b.get('bleu'))} (n {b.get('n', '?')})"


def details_table(t: dict, split: str) -> Raw:
    rows = findings.rows_of(t, split)
    bands = band_names(rows)
    head = ["row", "kind", "seeds", "BLEU sd", "chrF++", "= BM25 memory"]
    head += [f"BLEU {b}" for b in bands] + ["note"]
    body = []
    for r in rows:
        chrf = num(r.get("chrf")) + (
            f" ± {num(r['chrf_sd'])}" if (r.get("seeds") or 1) > 1 and r.get("chrf_sd") else ""
        )
        body.append(
            [r["label"], r.get("kind", ""), r.get("seeds", ""), num(r.get("bleu_sd")), chrf]
            + [num(r.get("equals_bm25_memory"))]
            + [band_cell(r, b) for b in bands]
            + [r.get("note", "")]
        )
    numeric = set(range(2, 6 + len(bands)))
    return table(head, body, numeric=numeric, row_classes=[row_class(r, "") for r in rows])


def tests_table(r: dict) -> Raw:
    """One row's paired bootstraps: one line per row it is tested against, overall and per
    fuzzy-match band (Δ BLEU with p; bold: p < 0.05)."""
    tests = r.get("tests") or []
    bands = [(b["band"], b["n"]) for b in (tests[0].get("bands") or [])] if tests else []
    head = ["against", "all"] + [f"{name} (n {n})" for name, n in bands]
    body = [
        [x["against"], signed_cell(x["delta"], x["p"], x.get("ci95"))]
        + [signed_cell(b["delta"], b["p"]) for b in x.get("bands") or []]
        for x in tests
    ]
    return table(head, body, numeric=set(range(1, 2 + len(bands))))


def method_note(t: dict) -> str:
    e = html.escape
    return (
        f"<p class='muted'>Δ and p: paired bootstrap ({t.get('resamples', '?')} resamples) of "
        f"corpus BLEU against the reference row <b>{e(t['reference_row'])}</b> (shaded blue); "
        "p is one-sided for “row is better”, the interval is the 95% interval of the "
        "difference; bold: p &lt; 0.05. Δ vs switch: the same test of each generator and loop "
        "row against the fuzzy-match switch. Training seeds: "
        f"{t.get('seeds', 1)} (scores are means over seeds; the bootstrap pools them). ORACLE "
        "rows use the reference: diagnostics, never results. Flags and the verdict read the "
        "test split; every threshold and iteration was chosen on dev.</p>"
    )


def comparison_page(t: dict) -> str:
    e = html.escape
    parts = [
        f"<h1>Selfmem comparison: {e(t['task'])}</h1>",
        flags_html(t),
        f"<div class='verdict'><b>In one line</b> (test): {e(findings.verdict(t, 'test'))}</div>",
    ]
    for s in SPLITS:
        if findings.rows_of(t, s):
            parts += [f"<h2>{s}</h2>", main_table(t, s)]
    parts.append(method_note(t))
    for s in SPLITS:
        if findings.rows_of(t, s):
            parts += [f"<h3>details: {s}</h3>", details_table(t, s)]
    for s in SPLITS:
        for r in findings.rows_of(t, s):
            if r.get("tests"):
                parts += [
                    f"<h3>paired bootstraps, {s}: {e(r['label'])}</h3>",
                    tests_table(r),
                ]
    return page(f"Selfmem comparison: {t['task']}", "\n".join(parts))
