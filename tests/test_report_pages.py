"""The comparison page's flags, the verdicts and the report's pages, on tables built by hand."""

from __future__ import annotations

import copy
import json

import pytest

from relift.report import landing, regpt
from relift.selfmem.evaluation import figures, findings
from relift.selfmem.evaluation.html import comparison_page

REF = "joint + BM25 memory"
SWITCH = "fuzzy-match switch (BM25 memory if match ≥ t, else vanilla)"


def row(label, kind, bleu, **kw):
    return {
        "split": "test",
        "label": label,
        "kind": kind,
        "seeds": 1,
        "bleu": bleu,
        "bleu_sd": 0.0,
        "chrf": bleu + 20,
        "distinct": 1.0,
        "collapsed": False,
        "equals_bm25_memory": 0.0,
        "note": "",
        **kw,
    }


def healthy_table() -> dict:
    """A run where every check passes: the generator reads its memory and beats every baseline."""
    rows = [
        row(
            "copy the BM25 memory",
            "baseline",
            30.0,
            delta_vs_ref=-10.0,
            p_value=1.0,
            ci95=[-12, -8],
        ),
        row(SWITCH, "baseline", 35.0, delta_vs_ref=-5.0, p_value=1.0, ci95=[-7, -3]),
        row(
            "vanilla (no memory)",
            "generator",
            32.0,
            delta_vs_ref=-8.0,
            p_value=1.0,
            ci95=[-9, -7],
            delta_vs_switch=-3.0,
            p_vs_switch=0.9,
        ),
        row(REF, "generator", 40.0, delta_vs_switch=5.0, p_vs_switch=0.001),
        row(
            "joint + empty memory",
            "diagnostic",
            20.0,
            delta_vs_ref=-20.0,
            p_value=1.0,
            ci95=[-22, -18],
        ),
        row(
            "joint + reference as memory (ORACLE)",
            "oracle",
            60.0,
            delta_vs_ref=20.0,
            p_value=0.001,
            ci95=[18, 22],
        ),
        row(
            "joint selfmem (iteration 1)",
            "loop",
            42.0,
            delta_vs_ref=2.0,
            p_value=0.01,
            ci95=[0.5, 3.5],
            delta_vs_switch=7.0,
            p_vs_switch=0.001,
        ),
    ]
    # vanilla beats neither baseline: keep it above both for the healthy run
    rows[2] |= {"bleu": 36.0, "delta_vs_ref": -4.0, "ci95": [-5, -3], "delta_vs_switch": 1.0}
    dev = [dict(r, split="dev") for r in rows]
    return {
        "task": "tm_ende",
        "reference_row": REF,
        "resamples": 100,
        "seeds": 1,
        "collapsed": [],
        "rows": rows + dev,
    }


def with_test(table: dict, label: str, **changes) -> dict:
    t = copy.deepcopy(table)
    for r in t["rows"]:
        if r["label"] == label and r["split"] == "test":
            r.update(changes)
    return t


def flag_keys(table: dict) -> set[str]:
    return {f.key for f in findings.flags(table)}


def test_healthy_table_raises_no_flag_and_the_page_says_which_checks_passed():
    t = healthy_table()
    assert flag_keys(t) == set()
    page = comparison_page(t)
    assert "Checks passed" in page and "every generator reads its memory" in page
    for title in ("Collapse</b>", "Memory not read</b>", "Below copying", "Below the fuzzy"):
        assert title not in page
    assert all(c.holds for c in findings.claims(t)), findings.claims(t)
    assert "Does not hold" not in findings.verdict(t)


def test_collapse_flag():
    t = with_test(healthy_table(), "joint selfmem (iteration 1)", collapsed=True, distinct=0.4)
    assert flag_keys(t) == {"collapse"}
    page = comparison_page(t)
    assert "<b>Collapse</b>" in page and "joint selfmem (iteration 1)" in page.split("Collapse")[1]


@pytest.mark.parametrize(
    "label, changes",
    [
        ("joint + empty memory", {"bleu": 39.5}),  # within 1 BLEU of the BM25 memory's 40
        ("joint + empty memory", {"bleu": 40.8}),  # within 1 BLEU, above
        ("joint + reference as memory (ORACLE)", {"bleu": 40.0}),  # does not beat BM25 memory
    ],
)
def test_memory_not_read_flag(label, changes):
    t = with_test(healthy_table(), label, **changes)
    assert flag_keys(t) == {"memory-not-read"}
    page = comparison_page(t)
    assert "<b>Memory not read</b>" in page
    assert "every generator reads its memory" not in page
    assert not next(c for c in findings.claims(t) if c.text == "reads its memory").holds


def test_empty_memory_just_over_one_bleu_below_is_read():
    t = with_test(healthy_table(), "joint + empty memory", bleu=38.9)
    assert "memory-not-read" not in flag_keys(t)


def test_below_copy_and_below_switch_flags():
    t = with_test(healthy_table(), REF, bleu=33.0, delta_vs_switch=-2.0, p_vs_switch=0.97)
    assert flag_keys(t) == {"below-switch"}
    t = with_test(t, REF, bleu=29.0)
    assert flag_keys(t) == {"below-copy", "below-switch"}
    page = comparison_page(t)
    assert (
        "<b>Below copying the memory</b>" in page and "<b>Below the fuzzy-match switch</b>" in page
    )
    tags = findings.row_flags(t)
    assert tags[REF] == ["below copy", "below switch"]
    assert tags["copy the BM25 memory"] == []


def test_dev_rows_do_not_raise_test_flags():
    t = healthy_table()
    for r in t["rows"]:
        if r["split"] == "dev" and r["label"] == REF:
            r.update(bleu=1.0, collapsed=True)
    assert flag_keys(t) == set()


def test_verdict_names_what_does_not_hold():
    t = with_test(
        healthy_table(), "vanilla (no memory)", bleu=41.0, delta_vs_ref=1.0, ci95=[-0.5, 2.5]
    )
    line = findings.verdict(t)
    assert line.startswith(f"{REF}: test BLEU 40.00.")
    assert "Does not hold: beats vanilla (41.00; Δ -1.00" in line


def test_verdict_reads_the_equal_compute_control():
    control = "vanilla continued, no memory (equal-compute control)"
    t = healthy_table()
    for split in ("test", "dev"):
        t["rows"].append(
            dict(
                row(control, "generator", 40.5, delta_vs_ref=0.5, p_value=0.3, ci95=[-1.0, 2.0]),
                split=split,
            )
        )
    rows = findings.rows_of(t)
    assert findings.vanilla_row(rows)["label"] == "vanilla (no memory)"
    assert findings.control_row(rows)["label"] == control
    line = findings.verdict(t)
    assert "Holds: reads its memory" in line and "beats vanilla (36.00" in line
    assert "Does not hold: beats vanilla at equal compute (40.50; Δ -0.50" in line


def test_main_and_details_tables_with_and_without_bands():
    t = healthy_table()
    page = comparison_page(t)
    assert "BLEU [0, 0.5)" not in page  # no bands: no band columns, no failure
    for r in t["rows"]:
        r["bands"] = [
            {"band": "[0, 0.5)", "lo": 0.0, "hi": 0.5, "n": 4, "bleu": 11.75},
            {"band": "[0.9, 1]", "lo": 0.9, "hi": 1.0, "n": 0, "bleu": None},
        ]
    page = comparison_page(t)
    assert "BLEU [0, 0.5)" in page and "11.75 (n 4)" in page and "– (n 0)" in page
    # the main table: BLEU, Δ vs reference with p and interval, Δ vs switch with p, distinct
    main = page.split("<h2>test</h2>")[1].split("</table>")[0]
    assert "-10.00 (p 1.000) [-12.00, -8.00]" in main and "+5.00 (p 0.001)" in main


def test_figures_draw_and_fall_back_without_data(tmp_path):
    t = healthy_table()
    figures.bleu_bars(t, tmp_path / "bars.png")
    figures.band_chart(t, tmp_path / "bands.png")  # no bands: a placeholder
    (tmp_path / "gen").mkdir()
    assert figures.read_dev_curve(tmp_path / "gen") is None
    (tmp_path / "gen" / "dev_curve.csv").write_text(
        "step,train_seconds,total_steps,total_train_seconds,bleu\n4,1.5,4,1.5,3.2\n8,3.0,8,3.0,5.1\n"
    )
    curve = figures.read_dev_curve(tmp_path / "gen")
    assert curve == [
        {"step": 4, "seconds": 1.5, "score": 3.2},
        {"step": 8, "seconds": 3.0, "score": 5.1},
    ]
    figures.learning_curves(t, {"joint": curve, "vanilla": None}, tmp_path / "curves.png", "bleu")
    for name in ("bars", "bands", "curves"):
        assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


REGPT_TABLE = [
    {"model": "stage1", "bits_per_byte": "2.9", "acc@1": "0.1"},
    {"model": "stage2", "bits_per_byte": "2.5", "acc@1": "0.2"},
    {"model": "baseline", "bits_per_byte": "2.2", "acc@1": "0.3"},
    {"model": "unigram floor (stage2)", "bits_per_byte": "2.8"},
    {"model": "bigram floor (stage2)", "bits_per_byte": "2.4"},
    {"model": "unigram floor (baseline)", "bits_per_byte": "2.7"},
    {"model": "bigram floor (baseline)", "bits_per_byte": "2.3"},
]
EQUAL = [
    {
        "budget_seconds": "60",
        "regpt_dev_bits_per_byte": "2.6",
        "token_lm_dev_bits_per_byte": "2.7",
        "regpt_minus_token_lm": "-0.1",
    },
    {
        "budget_seconds": "120",
        "regpt_dev_bits_per_byte": "2.5",
        "token_lm_dev_bits_per_byte": "2.4",
        "regpt_minus_token_lm": "0.1",
    },
]


def test_regpt_verdict_from_the_numbers():
    line = regpt.verdict(REGPT_TABLE, EQUAL)
    assert line.startswith("ReGPT stage 2: 2.500 bits per byte")
    held, failed = line.split("Does not hold:")
    assert "beats the unigram floor of its phrases (2.800)" in held
    assert "beats the bigram floor of its phrases (2.400)" in failed
    assert "beats the token LM (2.200 bits/byte)" in failed
    assert "60 s -0.100, 120 s +0.100" in failed


def test_landing_page_carries_verdicts_and_headlines(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps(healthy_table()))
    for name, rows in (("t.csv", REGPT_TABLE), ("e.csv", EQUAL)):
        keys = sorted({k for r in rows for k in r})
        lines = [",".join(keys)] + [",".join(r.get(k, "") for k in keys) for r in rows]
        (tmp_path / name).write_text("\n".join(lines) + "\n")
    out = tmp_path / "landing.html"
    landing.main(
        [
            "--selfmem",
            f"tm_ende={tmp_path / 'c.json'}",
            "--regpt-table",
            str(tmp_path / "t.csv"),
            "--regpt-equal",
            str(tmp_path / "e.csv"),
            "--output",
            str(out),
        ]
    )
    page = out.read_text()
    assert page.startswith("<div id='relift-landing' class='relift'><style>")
    assert "<b>Selfmem (tm_ende)</b>" in page and "<b>ReGPT</b>" in page
    assert "test BLEU 40.00" in page and "2.500" in page
    assert "<b>Flags</b> (test): none raised." in page
