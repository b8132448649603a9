"""`relift score`: sacrebleu parity, the released Selfmem outputs' BLEU table, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from relift import cli
from relift.score import score

# the released Selfmem outputs (JRC-Acquis en-de test set; see the archive's README.md), shipped
# with the tests: 3.4 MB of text, 0.46 MB as xz
RELEASED = Path(__file__).parent / "fixtures" / "selfmem-jrc-ende-outputs.tar.xz"
HYPS = [
    "The cat sat on the mat .",
    "Das ist ein kleiner Test",
    "completely wrong",
    "Open the file now.",
]
REFS = [
    "The cat is sitting on the mat .",
    "Das ist ein Test",
    "a different sentence entirely",
    "Open the file.",
]


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> Path:
    """The folder of the released outputs, unpacked from tests/fixtures."""
    out = tmp_path_factory.mktemp("released")
    with tarfile.open(RELEASED) as tar:
        tar.extractall(out, filter="data")
    return out / "selfmem-jrc-ende-outputs"


def run_relift(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "relift.cli", *args], capture_output=True, text=True
    )


def write(path: Path, lines) -> Path:
    path.write_text("".join(x + "\n" for x in lines), encoding="utf-8")
    return path


@pytest.mark.slow  # > 5 s: make test runs it, make test-fast does not
def test_equals_sacrebleu_cli(tmp_path, released):
    # real text as well: 80 released hypotheses
    hyp = write(
        tmp_path / "hyp", HYPS + (released / "joint_retrieval.hyps").read_text().splitlines()[:80]
    )
    ref = write(tmp_path / "ref", REFS + (released / "refs").read_text().splitlines()[:80])
    ours = run_relift("score", "--hyp", str(hyp), "--ref", str(ref), "--metrics", "bleu,chrf,ter")
    assert ours.returncode == 0, ours.stderr
    ours = json.loads(ours.stdout)
    theirs = subprocess.run(
        [
            sys.executable,
            "-m",
            "sacrebleu",
            str(ref),
            "-i",
            str(hyp),
            "-m",
            "bleu",
            "chrf",
            "ter",
            "--chrf-word-order",
            "2",
            "-f",
            "json",
            "-w",
            "2",
        ],
        capture_output=True,
        text=True,
    )
    assert theirs.returncode == 0, theirs.stderr
    theirs = {d["name"]: d for d in json.loads(theirs.stdout)}
    for key, name in (("bleu", "BLEU"), ("chrf", "chrF2++"), ("ter", "TER")):
        assert ours[key]["name"] == name
        assert ours[key]["score"] == theirs[name]["score"]
        assert ours[key]["signature"] == theirs[name]["signature"]
    assert ours["bleu"]["verbose_score"] == theirs["BLEU"]["verbose_score"]
    assert "tok:13a" in ours["bleu"]["signature"] and "nw:2" in ours["chrf"]["signature"]


@pytest.mark.slow  # > 5 s: make test runs it, make test-fast does not
def test_reproduces_released_bleu_table(released, capsys):
    expected = {
        "bm25.memory": 38.89,
        "random.memory": 1.14,
        "joint_retrieval.hyps": 58.58,
        "dual_retrieval.hyps": 58.07,
        "joint_selfmem.hyps": 60.11,
        "dual_selfmem.hyps": 59.49,
    }
    for name, bleu in expected.items():
        assert (
            cli.main(
                [
                    "score",
                    "--hyp",
                    str(released / name),
                    "--ref",
                    str(released / "refs"),
                    "--metrics",
                    "bleu",
                ]
            )
            == 0
        )
        assert json.loads(capsys.readouterr().out)["bleu"]["score"] == bleu, name


def test_reproduces_released_chrf(released, capsys):
    assert (
        cli.main(
            [
                "score",
                "--hyp",
                str(released / "joint_selfmem.hyps"),
                "--ref",
                str(released / "refs"),
                "--metrics",
                "chrf",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["chrf"]["score"] == 73.25


def test_line_count_mismatch_is_a_clear_error(tmp_path, capsys):
    hyp, ref = write(tmp_path / "hyp", HYPS[:3]), write(tmp_path / "ref", REFS)
    assert cli.main(["score", "--hyp", str(hyp), "--ref", str(ref)]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("relift: error:")
        and "has 3 lines but the reference file" in err
        and "4" in err
    )
    assert cli.main(["score", "--hyp", str(tmp_path / "missing"), "--ref", str(ref)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert (
        cli.main(["score", "--hyp", str(ref), "--ref", str(ref), "--metrics", "bleu,meteor"]) == 2
    )
    assert "unknown metric(s) meteor" in capsys.readouterr().err


def test_rouge_and_ref_field(tmp_path, capsys):
    hyp = write(tmp_path / "hyp", HYPS)
    ref = tmp_path / "ref.jsonl"
    ref.write_text(
        "".join(json.dumps({"src": "x", "trg": r}) + "\n" for r in REFS), encoding="utf-8"
    )
    assert (
        cli.main(
            [
                "score",
                "--hyp",
                str(hyp),
                "--ref",
                str(ref),
                "--ref-field",
                "trg",
                "--metrics",
                "bleu,rouge",
                "--output",
                str(tmp_path / "s.json"),
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert json.loads((tmp_path / "s.json").read_text()) == out
    assert out["bleu"] == score(HYPS, REFS, ["bleu"])["bleu"]
    r = out["rouge"]
    assert set(r) == {"rouge1", "rouge2", "rougeLsum", "signature"}
    assert 0 < r["rouge2"]["score"] < r["rouge1"]["score"] < 100
    perfect = score(REFS, REFS, ["rouge"])["rouge"]
    assert perfect["rouge1"]["score"] == perfect["rougeLsum"]["score"] == 100.0


def test_console_script_entry_point():
    exe = Path(sys.executable).parent / "relift"
    if not exe.exists():
        pytest.skip("the relift console script is not installed in this environment")
    res = subprocess.run([str(exe), "score", "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "--metrics" in res.stdout


def test_primary_score_is_bleu_or_the_mean_rouge():
    from relift.score import primary_score

    assert primary_score({"bleu": {"score": 31.5}}, "bleu") == 31.5
    rouge = {"rouge1": {"score": 40.0}, "rouge2": {"score": 20.0}, "rougeLsum": {"score": 30.0}}
    assert primary_score({"rouge": rouge}, "rouge") == 30.0
