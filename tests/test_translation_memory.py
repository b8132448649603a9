"""Tests for relift.data.translation_memory on tiny synthetic wheels (offline, fast)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import make_mo, make_wheel  # noqa: E402

from relift.data import translation_memory as tm
from relift.data import wheels
from relift.io import InputError

MO_ENTRIES = {
    "Save the current document to disk": "Das aktuelle Dokument auf der Festplatte speichern",
    "One file was deleted from the folder\x00%(n)s files were deleted from the folder": "Eine Datei wurde aus dem Ordner gelöscht\x00%(n)s Dateien wurden aus dem Ordner gelöscht",
    "menu\x04Open the selected item in a new window": "Das ausgewählte Element in einem neuen Fenster öffnen",
    "Too short": "Zu kurz",
}

PO_TEXT = r"""# German translation
msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\n"

#: views.py:10
msgid "Your password has been changed "
"successfully just now"
msgstr "Ihr Passwort wurde soeben "
"erfolgreich geändert"

#, fuzzy
msgid "This entry is fuzzy and must be skipped"
msgstr "Dieser Eintrag ist unscharf und muss übersprungen werden"

#, python-format
msgctxt "button"
msgid "Please confirm the \"new\" address now"
msgstr "Bitte bestätigen Sie jetzt die \"neue\" Adresse"

msgid "One message is waiting for you here"
msgid_plural "%d messages are waiting for you here"
msgstr[0] "Eine Nachricht wartet hier auf Sie"
msgstr[1] "%d Nachrichten warten hier auf Sie"

#~ msgid "An obsolete entry that is commented out"
#~ msgstr "Ein veralteter Eintrag der auskommentiert ist"
"""

PO_PAIRS = [
    ("One message is waiting for you here", "Eine Nachricht wartet hier auf Sie"),
    ('Please confirm the "new" address now', 'Bitte bestätigen Sie jetzt die "neue" Adresse'),
    (
        "Your password has been changed successfully just now",
        "Ihr Passwort wurde soeben erfolgreich geändert",
    ),
]


def test_mo_entries_plural_and_context():
    got = dict(tm.mo_entries(make_mo(MO_ENTRIES)))
    assert got == {
        "Save the current document to disk": "Das aktuelle Dokument auf der Festplatte speichern",
        "One file was deleted from the folder": "Eine Datei wurde aus dem Ordner gelöscht",
        "Open the selected item in a new window": "Das ausgewählte Element in einem neuen Fenster öffnen",
        "Too short": "Zu kurz",
    }


def test_po_entries_continuation_escapes_fuzzy_header():
    assert sorted(tm.po_entries(PO_TEXT.encode("utf-8"))) == PO_PAIRS


def test_po_entries_latin1_and_syntax_error():
    latin = 'msgid ""\nmsgstr "Content-Type: text/plain; charset=ISO-8859-1\\n"\n\nmsgid "a"\nmsgstr "ä"\n'
    assert tm.po_entries(latin.encode("latin-1")) == [("a", "ä")]
    with pytest.raises(tm.PoSyntaxError, match="line 2"):
        tm.po_entries(b'msgid "a"\nbogus line\n')


def test_wheel_reads_mo_and_falls_back_to_po(tmp_path):
    mo_wheel = make_wheel(
        tmp_path,
        "alpha",
        {
            "alpha/locale/de/LC_MESSAGES/alpha.mo": make_mo(MO_ENTRIES),
            # a .po next to the .mo of the same domain is ignored
            "alpha/locale/de/LC_MESSAGES/alpha.po": 'msgid "Only in the po file here ok"\nmsgstr "x"\n',
            # other languages are ignored
            "alpha/locale/fr/LC_MESSAGES/alpha.mo": make_mo(
                {"French entry is ignored here": "Non"}
            ),
        },
    )
    entries, stats = tm.wheel_entries(mo_wheel)
    assert stats["mo"] == 1 and stats["po"] == 0
    assert (
        "One file was deleted from the folder",
        "Eine Datei wurde aus dem Ordner gelöscht",
    ) in entries
    assert all("Only in the po" not in e[0] and "French" not in e[0] for e in entries)

    po_wheel = make_wheel(tmp_path, "beta", {"beta/locale/de_DE/LC_MESSAGES/beta.po": PO_TEXT})
    entries, stats = tm.wheel_entries(po_wheel)
    assert stats["po"] == 1 and sorted(entries) == PO_PAIRS


def test_tryton_layout_po(tmp_path):
    wheel = make_wheel(
        tmp_path,
        "trytond",
        {
            "trytond/ir/locale/de.po": PO_TEXT,
            "trytond/ir/locale/fr.po": 'msgid "French entry is ignored here"\nmsgstr "Non"\n',
            "trytond/ir/locale/de.json": "{}",
        },
    )
    entries, stats = tm.wheel_entries(wheel)
    assert stats["po"] == 1 and sorted(entries) == PO_PAIRS


def test_unreadable_member_is_skipped_and_bad_zip_is_an_error(tmp_path):
    wheel = make_wheel(tmp_path, "gamma", {"gamma/locale/de/LC_MESSAGES/g.mo": b"not a mo file"})
    entries, stats = tm.wheel_entries(wheel)
    assert entries == [] and stats["unreadable"] == 1
    bad = tmp_path / "broken-1.0-py3-none-any.whl"
    bad.write_bytes(b"truncated")
    with pytest.raises(InputError, match="cannot read wheel"):
        tm.wheel_entries(bad)


GOOD = ("Save the current document to disk", "Das aktuelle Dokument auf der Festplatte speichern")


@pytest.mark.parametrize(
    ("src", "trg", "reason"),
    [
        ("Save the document", "Das Dokument speichern", "too few words"),
        (
            "Delete %s %(name)s {name} {0} $1 items",
            "Lösche %s %(name)s {name} {0} $1 Elemente",
            "too few words",
        ),
        ("Click <b>here</b> to save the document", "Klicken Sie <b>hier</b> zum Speichern", "tag"),
        ("Save the document &amp; close the window", "Speichern &amp; Fenster schließen", "entity"),
        (
            "Hello {{ user }}, save the document now",
            "Hallo {{ user }}, jetzt speichern",
            "template",
        ),
        (
            "See https://example.org for more details today",
            "Siehe https://example.org für mehr",
            "url",
        ),
        (
            "Run `make` to build the whole project now",
            "Führen Sie `make` aus, um alles zu bauen",
            "backtick",
        ),
        (
            "First line of the message\\nsecond line",
            "Erste Zeile der Nachricht\\nzweite Zeile",
            "escape",
        ),
        (
            "First line of the message\nsecond line",
            "Erste Zeile der Nachricht\nzweite Zeile",
            "newline",
        ),
        ("Save the current document to disk", "Save the current  document to disk", "untranslated"),
        ("Save the current document to disk " * 20, "Speichern", "too long"),
        (GOOD[0], "Das aktuelle Dokument speichern " * 20, "too long"),
        (GOOD[0], "", "empty msgstr"),
        (*GOOD, None),
        ("Delete %(count)s selected files from the archive", "%(count)s Dateien löschen", None),
    ],
)
def test_filter_rules(src, trg, reason):
    assert tm.reject_reason(src, trg, min_words=5, max_chars=120) == reason


def test_placeholders_do_not_count_as_words():
    assert tm.count_words("Delete %s %(name)s {name} {0} $1 %1$s items") == 2
    assert tm.count_words("It's the user's choice") == 4


def _pairs_wheels(folder: Path, n: int = 40) -> None:
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
    entries = {
        f"Please open the {words[i % 8]} window number {i} now": f"Bitte Fenster {words[i % 8]} Nummer {i} jetzt öffnen"
        for i in range(n)
    }
    make_wheel(folder, "bbb", {"bbb/locale/de/LC_MESSAGES/bbb.mo": make_mo(entries)})
    # same English in an earlier wheel (by file name) wins; whitespace is normalised
    make_wheel(
        folder,
        "aaa",
        {
            "aaa/locale/de/LC_MESSAGES/aaa.mo": make_mo(
                {
                    "Please open the  alpha window number 0 now": "ERSTE Übersetzung gewinnt hier",
                    "Just a short one": "Nur kurz",
                }
            )
        },
    )


def test_extract_pairs_deduplicates_first_wins(tmp_path):
    _pairs_wheels(tmp_path)
    pairs = tm.extract_pairs(tm.list_wheels(tmp_path))
    assert len(pairs) == 40
    assert len({s for s, _ in pairs}) == 40
    assert pairs[0] == (
        "Please open the alpha window number 0 now",
        "ERSTE Übersetzung gewinnt hier",
    )


def _read_splits(out: Path) -> dict[str, list[dict]]:
    return {
        name: [json.loads(line) for line in (out / f"{name}.jsonl").read_text().splitlines()]
        for name in tm.SPLITS
    }


def test_build_splits_disjoint_and_deterministic(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _pairs_wheels(wheels)
    args = ["build", "--wheels", str(wheels), "--dev-size", "5", "--test-size", "7"]
    tm.main([*args, "--out-dir", str(tmp_path / "a"), "--seed", "13"])
    tm.main([*args, "--out-dir", str(tmp_path / "b"), "--seed", "13"])
    tm.main([*args, "--out-dir", str(tmp_path / "c"), "--seed", "14"])
    a, b, c = (_read_splits(tmp_path / x) for x in "abc")
    assert [len(a[s]) for s in tm.SPLITS] == [28, 5, 7]
    assert all(set(r) == {"src", "trg"} for s in tm.SPLITS for r in a[s])
    srcs = [{r["src"] for r in a[s]} for s in tm.SPLITS]
    assert not (srcs[0] & srcs[1] or srcs[0] & srcs[2] or srcs[1] & srcs[2])
    assert len(set.union(*srcs)) == 40
    assert a == b
    assert a["test"] != c["test"]
    assert sorted(os.listdir(tmp_path / "a")) == ["dev.jsonl", "test.jsonl", "train.jsonl"]


def test_too_few_pairs(tmp_path):
    _pairs_wheels(tmp_path, n=10)
    with pytest.raises(InputError, match="only 10 pairs"):
        tm.build(tmp_path, tmp_path / "out", seed=1, dev_size=5, test_size=5)
    assert not (tmp_path / "out").exists()


def test_cli_empty_wheel_folder_exits_2(tmp_path):
    (tmp_path / "wheels").mkdir()
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "relift.data.translation_memory",
            "build",
            "--wheels",
            str(tmp_path / "wheels"),
            "--out-dir",
            str(out),
            "--seed",
            "1",
            "--dev-size",
            "1",
            "--test-size",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "relift: error:" in proc.stderr and "no wheels" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def test_manifest_mismatch_is_an_error(tmp_path):
    _pairs_wheels(tmp_path)
    (tmp_path / tm.MANIFEST).write_text(
        json.dumps({"wheels": [{"file": "aaa-1.0-py3-none-any.whl", "sha256": "0" * 64}]})
    )
    with pytest.raises(InputError, match="sha256"):
        tm.build(tmp_path, tmp_path / "out", seed=1, dev_size=1, test_size=1)


def test_download_runs_pip_and_writes_manifest(tmp_path, monkeypatch):
    calls = []

    def fake_run(cmd, check):
        calls.append(cmd)
        dest = Path(cmd[cmd.index("-d") + 1])
        assert dest.parent == tmp_path and dest != tmp_path / "wheels"  # a temporary sibling
        for pin in cmd[cmd.index("-d") + 2 :]:
            name, version = pin.split("==")
            (dest / f"{name}-{version}-py3-none-any.whl").write_bytes(pin.encode())
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(wheels.subprocess, "run", fake_run)
    tm.main(["download", "--out-dir", str(tmp_path / "wheels"), "--pins", "a==1", "b==2"])
    assert calls == [
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            "3.11",
            "-d",
            calls[0][9],
            "a==1",
            "b==2",
        ]
    ]
    manifest = json.loads((tmp_path / "wheels" / tm.MANIFEST).read_text())
    assert [w["file"] for w in manifest["wheels"]] == [
        "a-1-py3-none-any.whl",
        "b-2-py3-none-any.whl",
    ]
    assert manifest["wheels"][0]["sha256"] == wheels.sha256(
        tmp_path / "wheels" / "a-1-py3-none-any.whl"
    )
    assert sorted(os.listdir(tmp_path)) == ["wheels"]


def test_download_failure_leaves_nothing(tmp_path, monkeypatch):
    def fake_run(cmd, check):
        (Path(cmd[cmd.index("-d") + 1]) / "half.whl").write_bytes(b"x")
        return subprocess.CompletedProcess(cmd, 1)

    monkeypatch.setattr(wheels.subprocess, "run", fake_run)
    with pytest.raises(InputError, match="pip download failed"):
        tm.download(tmp_path / "wheels", ["a==1"])
    assert os.listdir(tmp_path) == []


def test_default_pins():
    assert len(tm.DEFAULT_PINS) == 16 and "wtforms==3.3.2" in tm.DEFAULT_PINS


@pytest.mark.skipif(
    os.environ.get("RELIFT_NETWORK_TESTS") != "1",
    reason="set RELIFT_NETWORK_TESTS=1 to download from PyPI",
)
def test_real_wtforms_wheel(tmp_path):
    tm.download(tmp_path / "wheels", ["wtforms==3.3.2"])
    assert len(tm.extract_pairs(tm.list_wheels(tmp_path / "wheels"))) >= 15  # default filter: 16
    # wtforms' German catalog has 30 messages, most of them short: count with --min-words 1
    counts = tm.build(
        tmp_path / "wheels", tmp_path / "out", seed=1, dev_size=1, test_size=1, min_words=1
    )
    assert sum(counts.values()) >= 20
