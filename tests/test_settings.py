"""relift.settings: one dataclass field gives a setting its default, flag, help and JSON key."""

import argparse
from dataclasses import dataclass

import pytest

from relift.io import InputError
from relift.settings import add_settings, setting, settings_from_args, settings_json
from relift.train.fingerprint import RUN_ONLY, run_fingerprint


@dataclass
class Model:
    d_model: int = setting(256, "hidden size")
    copy: bool = setting(True, "copy head")
    positions: str = setting("sinusoidal", "position embeddings", choices=("sinusoidal", "learned"))
    seed: int = setting(0, "random seed")


@dataclass
class Loop:
    lr: float = setting(1e-3, "peak learning rate")
    betas: tuple[float, float] = setting((0.9, 0.999), "Adam betas")
    seed: int = setting(0, "random seed")


def parse(argv, **kw):
    ap = argparse.ArgumentParser()
    add_settings(ap, Model, Loop, **kw)
    return ap, settings_from_args(ap.parse_args(argv), Model, Loop, **kw)


def test_defaults_json_and_flags_in_order():
    _, (m, lp) = parse([])
    assert (m, lp) == (Model(), Loop())
    section = {"d_model": 128, "copy": False, "lr": 2, "betas": [0.9, 0.98], "seed": 3}
    _, (m, lp) = parse(["--settings", settings_json(section), "--d-model", "64"])
    assert m.d_model == 64  # a flag overrides the JSON
    assert m.copy is False and lp.lr == 2.0 and isinstance(lp.lr, float)
    assert lp.betas == (0.9, 0.98) and m.seed == lp.seed == 3  # a shared key sets both
    _, (m, _) = parse(["--no-copy"])
    assert m.copy is False
    _, (_, lp) = parse([], defaults={"lr": 5e-3})
    assert lp.lr == 5e-3


def test_help_comes_from_the_field():
    ap, _ = parse([])
    text = ap.format_help()
    assert "--d-model" in text and "hidden size (default: 256)" in text
    assert "--copy, --no-copy" in text and "--settings JSON" in text


@pytest.mark.parametrize(
    "section, message",
    [
        ({"d_modle": 1}, "unknown setting(s) ['d_modle']"),
        ({"d_model": "big"}, "Model.d_model: expected int"),
        ({"copy": "yes"}, "Model.copy: expected true or false"),
        ({"betas": [0.9]}, "Loop.betas: expected 2 values"),
        ({"positions": "rotary"}, "'rotary' is not one of"),
    ],
)
def test_bad_settings_name_the_key(section, message):
    with pytest.raises(InputError, match=None) as e:
        parse(["--settings", settings_json(section)])
    assert message in str(e.value)


def test_settings_json_is_canonical_and_drops_keys():
    assert settings_json({"b": 1, "a": 2, "gpus": 1}, drop=("gpus",)) == '{"a":2,"b":1}'


def test_fingerprint_ignores_what_does_not_change_the_result(tmp_path):
    """relift.train.fingerprint: settings as strings without the run-only keys, inputs stamped
    by size and mtime, code hashed; another value, input or module file changes it."""
    data = tmp_path / "train.jsonl"
    data.write_text("x\n")
    fp = run_fingerprint(Model(), Loop(), {"threads": 4, "output": "o"}, inputs=[data])
    assert fp["settings"]["d_model"] == "256" and fp["settings"]["betas"] == "(0.9, 0.999)"
    assert not set(fp["settings"]) & set(RUN_ONLY)
    assert run_fingerprint(Model(d_model=8), Loop(), inputs=[data]) != fp
    data.write_text("xy\n")
    assert run_fingerprint(Model(), Loop(), inputs=[data])["inputs"] != fp["inputs"]
    code = run_fingerprint(code=("relift.settings",))["code"]
    assert code == run_fingerprint(code=("relift.settings",))["code"]
    assert code != run_fingerprint(code=("relift.codedeps",))["code"]
