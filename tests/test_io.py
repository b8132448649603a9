"""relift.io: clear input errors and atomic outputs."""

import json

import pytest

from relift.io import InputError, atomic_dir, atomic_path, read_jsonl, read_records


def write(p, data: bytes):
    p.write_bytes(data)
    return p


def test_jsonl_not_json_names_file_and_line(tmp_path):
    p = write(tmp_path / "a.jsonl", b'{"text": "ok"}\n{"text": oops}\n')
    with pytest.raises(InputError, match=r"a\.jsonl, line 2: not valid JSON"):
        list(read_jsonl(p, ("text",)))


@pytest.mark.parametrize(
    "line,msg",
    [
        (b'{"src": "x"}', "missing field"),
        (b'{"src": "x", "trg": null}', "found null"),
        (b'{"src": "x", "trg": 3}', "found int"),
        (b'["x"]', "expected a JSON object"),
    ],
)
def test_jsonl_fields(tmp_path, line, msg):
    p = write(tmp_path / "t.jsonl", b'{"src": "a", "trg": "b"}\n' + line + b"\n")
    with pytest.raises(InputError, match=msg) as err:
        list(read_jsonl(p, ("src", "trg")))
    assert err.value.line == 2


def test_non_utf8_and_huge_line(tmp_path):
    p = write(tmp_path / "c.txt", b"fine\nbad \xff byte\n")
    with pytest.raises(InputError, match=r"line 2: not valid UTF-8"):
        list(read_records(p, "text"))
    p = write(tmp_path / "d.txt", b"x" * (1 << 20 | 5) + b"\n")
    with pytest.raises(InputError, match=r"line 1: line is 1,048,582 bytes"):
        list(read_records(p, "text"))


def test_tsv_column_count(tmp_path):
    p = write(tmp_path / "e.tsv", b"a sentence\t1\nno id here\n")
    with pytest.raises(InputError, match=r"line 2: expected 2 tab-separated columns"):
        list(read_records(p, "tsv"))


def test_formats(tmp_path):
    import datasets

    (tmp_path / "a.txt").write_text("one\n\ntwo\n")
    assert [r["text"] for r in read_records(tmp_path / "a.txt", "text")] == ["one", "two"]
    (tmp_path / "a.tsv").write_text("one\tx1\ntwo\tx2\n")
    assert list(read_records(tmp_path / "a.tsv", "tsv"))[1] == {"id": "x2", "text": "two"}
    (tmp_path / "a.jsonl").write_text(json.dumps({"body": "one", "id": 7}) + "\n")
    assert list(read_records(tmp_path / "a.jsonl", "jsonl", "body")) == [{"id": "7", "text": "one"}]
    datasets.Dataset.from_dict({"text": ["one", "two"]}).save_to_disk(str(tmp_path / "ds"))
    assert [r["text"] for r in read_records(tmp_path / "ds", "hf_disk")] == ["one", "two"]
    with pytest.raises(InputError, match="column missing"):
        list(read_records(tmp_path / "ds", "hf_disk", "body"))
    with pytest.raises(InputError, match="does not exist"):
        list(read_records(tmp_path / "nope.txt", "text"))


def test_atomic_outputs_leave_nothing_on_failure(tmp_path):
    target = tmp_path / "out.npy"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "folder") as tmp:
        (tmp / "x").write_text("half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    with atomic_path(target) as tmp:
        tmp.write_text("whole")
    assert target.read_text() == "whole" and len(list(tmp_path.iterdir())) == 1


def test_temporaries_of_a_killed_writer_are_swept(tmp_path):
    """SIGKILL skips `finally`: the next writer of the same output removes what was left, and
    nothing of another output."""
    import tempfile

    stale_file = tempfile.mkstemp(prefix=".out.", suffix=".tmp.npy", dir=tmp_path)[1]
    stale_dir = tempfile.mkdtemp(prefix=".folder.", suffix=".tmp", dir=tmp_path)
    other = tempfile.mkstemp(prefix=".out.dev.", suffix=".tmp.npy", dir=tmp_path)[
        1
    ]  # out.dev.npy's
    with atomic_path(tmp_path / "out.npy") as tmp:
        tmp.write_text("whole")
    with atomic_dir(tmp_path / "folder") as tmp:
        (tmp / "x").write_text("whole")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(["folder", "out.npy", other.rsplit("/", 1)[1]])
    assert stale_file and stale_dir
