"""relift.config_checks: the checks that relate several config keys, each message naming them."""

from __future__ import annotations

import copy

import pytest
import yaml
from helpers import ROOT

from relift.config_checks import ConfigError, problems, validate

DEFAULT = yaml.safe_load((ROOT / "config.yaml").read_text())


def with_changes(**changes) -> dict:
    """config.yaml with ``changes`` ({"selfmem.loop.beam_b": 9, ...}) applied."""
    cfg = copy.deepcopy(DEFAULT)
    for dotted, value in changes.items():
        *parents, key = dotted.split(".")
        node = cfg
        for p in parents:
            node = node[p]
        node[key] = value
    return cfg


# the shipped overlays as the README stacks them
STACKS = [
    ["cpu-science.yaml"],
    ["cpu-seeds.yaml"],
    ["paper-regpt.yaml"],
    ["paper-selfmem.yaml"],
    ["paper-selfmem.yaml", "paper-selfmem-loop.yaml"],
]


def test_the_embedded_default_and_the_shipped_overlays_pass():
    validate(DEFAULT)
    shipped = {p.name for p in (ROOT / "config").glob("*.yaml")}
    assert shipped == {name for stack in STACKS for name in stack}
    for stack in STACKS:
        cfg = copy.deepcopy(DEFAULT)
        for name in stack:
            _merge(cfg, yaml.safe_load((ROOT / "config" / name).read_text()))
        assert problems(cfg) == [], stack


def _merge(base: dict, over: dict) -> None:
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v
    tasks = base.get("selfmem", {}).get("tasks", {})
    for name in [n for n, t in tasks.items() if t is None]:
        del tasks[name]


CASES = {
    "run task not defined": (
        {"selfmem.run_tasks": ["nope"]},
        ["selfmem.run_tasks names 'nope', which selfmem.tasks does not define"],
    ),
    "run variant not defined": (
        {"selfmem.loop.run_variants": ["nope"]},
        ["selfmem.loop.run_variants names 'nope', which selfmem.loop.variants"],
    ),
    "scratch encoder without layers": (
        {"selfmem.selector.encoder": "scratch", "selfmem.selector.layers": 0},
        ["selfmem.selector.layers", "set layers >= 1"],
    ),
    "scratch width not a multiple of the heads": (
        {
            "selfmem.selector.encoder": "scratch",
            "selfmem.selector.scratch": {"hidden": 30, "heads": 4, "intermediate": 64},
        },
        ["selfmem.selector.scratch.hidden must be a multiple of selfmem.selector.scratch.heads"],
    ),
    "selector pool larger than its beam": (
        {"selfmem.selector.train_num_return_sequences": 9},
        ["selfmem.selector.train_num_return_sequences (9)", "selfmem.selector.train_num_beams"],
    ),
    "candidates larger than their beam": (
        {"selfmem.candidates.num_return_sequences": 9},
        [
            "selfmem.candidates.num_return_sequences (9) must not exceed selfmem.candidates.num_beams"
        ],
    ),
    "loop pool larger than part 1's": (
        {"selfmem.loop.num_return_sequences": 5, "selfmem.loop.num_beams": 5},
        ["selfmem.loop.num_return_sequences must not exceed selfmem.candidates."],
    ),
    "Top-B larger than the pool": (
        {"selfmem.loop.beam_b": 9},
        ["selfmem.loop.beam_b (9) must not exceed selfmem.loop.num_return_sequences"],
    ),
    "a variant's Top-B larger than the pool": (
        {
            "selfmem.loop.variants": {
                **DEFAULT["selfmem"]["loop"]["variants"],
                "wide": {"beam_b": 7},
            }
        },
        ["selfmem.loop.variants.wide.beam_b (7) must not exceed"],
    ),
    "generator width not a multiple of the heads": (
        {"selfmem.generator.d_model": 30},
        ["selfmem.generator.d_model must be a multiple of selfmem.generator.attention_heads"],
    ),
    "memory shares above 1": (
        {
            "selfmem.generator.memory_closest_share": 0.6,
            "selfmem.generator.memory_noise_share": 0.6,
        },
        ["selfmem.generator.memory_closest_share", "selfmem.generator.memory_noise_share", "> 1"],
    ),
    "the equal-compute control without vanilla": (
        {"selfmem.archs": ["joint", "control"]},
        ["selfmem.archs: control continues the trained vanilla generator", "add vanilla"],
    ),
    "ReGPT width not a multiple of the heads": (
        {"regpt.model.hidden": 30},
        ["regpt.model.hidden must be a multiple of regpt.model.heads"],
    ),
    "ReGPT windows longer than the positions": (
        {"regpt.model.max_len": 1024},
        ["regpt.model.max_len (1024) must not exceed regpt.model.max_positions (512)"],
    ),
    "more hard negatives than the pool holds": (
        {"regpt.stage2.negatives": 101},
        ["regpt.stage2.negatives (101) must be below regpt.negatives.depth (101)"],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_each_problem_names_its_keys(name):
    changes, fragments = CASES[name]
    found = problems(with_changes(**changes))
    assert len(found) == 1, found
    for fragment in fragments:
        assert fragment in found[0], (fragment, found[0])
    with pytest.raises(ConfigError):
        validate(with_changes(**changes))


def test_every_problem_is_reported_at_once():
    cfg = with_changes(**{"selfmem.loop.beam_b": 9, "regpt.model.hidden": 30})
    with pytest.raises(ConfigError) as e:
        validate(cfg)
    assert len(str(e.value).splitlines()) == 2


def test_a_pretrained_model_brings_its_own_sizes():
    assert (
        problems(with_changes(**{"regpt.model.pretrained_decoder": "x", "regpt.model.hidden": 30}))
        == []
    )
    assert (
        problems(
            with_changes(**{"selfmem.generator.pretrained": "x", "selfmem.generator.d_model": 30})
        )
        == []
    )
