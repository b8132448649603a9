"""Selfmem task data: configurable fields, file/line/field errors, empty splits, aligned memories."""

from __future__ import annotations

import json

import pytest

from relift.io import InputError
from relift.selfmem.data import load_memory, load_split, one_line


def test_fields_are_configurable(tmp_path):
    p = tmp_path / "xsum.jsonl"
    p.write_text(json.dumps({"document": "A long text.", "summary": "Short.", "id": 3}) + "\n\n")
    split = load_split(p, "document", "summary")
    assert split.sources == ["A long text."] and split.targets == ["Short."] and split.lines == [1]
    assert len(split) == 1


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"src": "a", "trg": "b"}\n{"src": "a"}\n', "line 2, field 'trg': missing field"),
        ('{"src": "a", "trg": null}\n', "line 1, field 'trg': expected a string, found null"),
        ('{"src": "a", "trg": "b"}\nnot json\n', "line 2: not valid JSON"),
        ("\n\n", "split holds no examples"),
    ],
)
def test_errors_name_file_line_and_field(tmp_path, content, message):
    p = tmp_path / "bad.jsonl"
    p.write_text(content)
    with pytest.raises(InputError) as err:
        load_split(p)
    assert str(err.value).startswith(str(p)) and message in str(err.value)


def test_memory_alignment(tmp_path):
    p = tmp_path / "dev.jsonl"
    p.write_text("".join(json.dumps({"src": f"s{i}", "trg": f"t{i}"}) + "\n" for i in range(3)))
    split = load_split(p)
    mem = tmp_path / "dev.txt"
    mem.write_text("m0\n\nm2\n")  # an empty memory is a valid line
    assert load_memory(mem, split) == ["m0", "", "m2"]
    mem.write_text("m0\nm1\n")
    with pytest.raises(InputError, match="has 2 lines but 3 were expected"):
        load_memory(mem, split)
    assert one_line("a\nb\r\nc") == "a b c" and one_line("x  y") == "x  y"
