"""One source of values: every settings dataclass's defaults are config.yaml's values, and the
schema holds types and ranges only.

A CLI's defaults are what a person at a terminal gets; the workflow passes config.yaml's sections
(as ``--settings`` JSON). The test compares every field of every settings dataclass (with the
loop's TrainConfig under a CLI's ``*_DEFAULTS``) with config.yaml and names each difference, and
checks that every key of those sections is a field of the CLI that reads it (or a key the
workflow reads itself), so that a new setting touches config.yaml, the schema and the dataclass.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import yaml
from helpers import ROOT

from relift.regpt import settings as R
from relift.selfmem.evaluation.settings import CompareSettings
from relift.selfmem.generator import settings as G
from relift.selfmem.loop.settings import LOOP_WORKFLOW_KEYS, LoopSettings
from relift.selfmem.memory.settings import MemorySettings
from relift.selfmem.selector import settings as S
from relift.settings import _default
from relift.train import TrainConfig

CONFIG = yaml.safe_load((ROOT / "config.yaml").read_text())
SCHEMA = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())


@dataclass
class Case:
    """The dataclasses one CLI reads for some config sections."""

    name: str
    classes: tuple
    sections: tuple[str, ...]  # the first section holding a key gives its value
    defaults: dict = field(default_factory=dict)  # the CLI's *_DEFAULTS
    cli_only: tuple[str, ...] = ()  # fields without a config key (runtime or terminal only)
    workflow_keys: tuple[str, ...] = ()  # keys of the sections the workflow reads itself


def regpt_training(section: str, *own) -> Case:
    return Case(
        f"relift.regpt ({section})",
        (R.BackboneSettings, R.WindowSettings, *own, TrainConfig),
        (f"regpt.{section}", "regpt.model"),
        R.SECTION_DEFAULTS[section],
        # in_device unset = by stage (config.yaml sets it for stage 2 only)
        cli_only=("in_device",) if section == "stage1" else (),
        workflow_keys=R.WORKFLOW_KEYS[section]
        + (R.REGPT_ONLY_MODEL_KEYS if section == "baseline" else ()),
    )


CASES = [
    Case("relift.regpt.preprocess", (R.PreprocessSettings,), ("regpt.preprocess",)),
    Case("relift.regpt.tokenizer", (R.TokenizerSettings,), ("regpt.tokenizer",)),
    Case(
        "relift.regpt.embed",
        (R.EmbeddingSettings,),
        ("regpt.embeddings",),
        workflow_keys=R.WORKFLOW_KEYS["embeddings"],
    ),
    Case(
        "relift.regpt.negatives",
        (R.NegativesSettings,),
        ("regpt.negatives",),
        workflow_keys=R.WORKFLOW_KEYS["negatives"],
    ),
    regpt_training("stage1", R.ReGPTSettings),
    regpt_training("stage2", R.ReGPTSettings),
    regpt_training("baseline", R.BaselineSettings),
    Case(
        "relift.regpt.evaluate",
        (R.EvaluateSettings,),
        ("regpt.evaluate", "regpt.model", "regpt.stage1"),
        workflow_keys=R.WORKFLOW_KEYS["evaluate"],
    ),
    Case(
        "relift.regpt.generate",
        (R.GenerateSettings,),
        ("regpt.generate",),
        cli_only=("batch_size",),
        workflow_keys=R.WORKFLOW_KEYS["generate"],
    ),
    Case(
        "relift.selfmem.memory",
        (MemorySettings,),
        ("selfmem.memory",),
    ),
    Case(
        "relift.selfmem.generator.train",
        (G.GeneratorSettings, TrainConfig),
        ("selfmem.generator",),
        G.GENERATOR_TRAIN_DEFAULTS,
        cli_only=("eval_batch_size",),
        workflow_keys=("gpus", "warm_start_train"),
    ),
    Case(
        "relift.selfmem.generator.candidates",
        (G.CandidatesSettings,),
        ("selfmem.candidates",),
        workflow_keys=G.CANDIDATES_WORKFLOW_KEYS,
    ),
    Case(
        "relift.selfmem.evaluation.compare table",
        (CompareSettings,),
        ("selfmem.compare",),
    ),
    Case(
        "relift.selfmem.loop.run generate",
        (LoopSettings,),
        ("selfmem.loop", "selfmem.candidates"),
        workflow_keys=LOOP_WORKFLOW_KEYS,
    ),
    Case(
        "relift.selfmem.selector.cli",
        (S.SelectorSettings, TrainConfig),
        ("selfmem.selector",),
        S.SELECTOR_TRAIN_DEFAULTS,
        workflow_keys=S.WORKFLOW_KEYS,
    ),
    Case(
        "relift.selfmem.selector.scratch_encoder",
        (S.ScratchEncoderSettings,),
        ("selfmem.selector.scratch", "selfmem.selector"),
    ),
]


def section(dotted: str) -> dict:
    node = CONFIG
    for key in dotted.split("."):
        node = node[key]
    return node


def differences(case: Case) -> list[str]:
    """Each field whose default differs from config.yaml, or that config.yaml lacks."""
    out = []
    for cls in case.classes:
        for f in dataclasses.fields(cls):
            default = case.defaults.get(f.name, _default(f))
            where = next((s for s in case.sections if f.name in section(s)), None)
            if where is None:
                # the loop's own knobs (betas, eps, threads, ...) have no config key unless a
                # section names them; any other field must be declared CLI-only
                if cls is not TrainConfig and f.name not in case.cli_only:
                    out.append(
                        f"{case.name}: {cls.__name__}.{f.name} ({default!r}) has no key in {case.sections}"
                    )
                continue
            value = section(where)[f.name]
            if isinstance(default, tuple):
                default = list(default)
            if (
                value != default
                or type(value) is not type(default)
                and not (isinstance(value, int) and isinstance(default, float))
            ):
                out.append(
                    f"{case.name}: {cls.__name__}.{f.name} is {default!r}, "
                    f"config.yaml's {where}.{f.name} is {value!r}"
                )
    return out


def uncovered(case: Case) -> list[str]:
    """Keys of the CLI's own section that no field reads and the workflow does not take."""
    fields = {f.name for cls in case.classes for f in dataclasses.fields(cls)}
    keys = set(section(case.sections[0])) - fields - set(case.workflow_keys)
    return [
        f"{case.name}: {case.sections[0]}.{k} is no field of {case.classes}" for k in sorted(keys)
    ]


def test_every_dataclass_default_is_config_yaml_s_value():
    found = [d for case in CASES for d in differences(case)]
    assert not found, "\n".join(found)


def test_every_key_of_a_section_is_read_by_its_cli():
    found = [d for case in CASES for d in uncovered(case)]
    assert not found, "\n".join(found)


def test_a_cli_s_defaults_only_name_its_fields():
    for case in CASES:
        fields = {f.name for cls in case.classes for f in dataclasses.fields(cls)}
        assert set(case.defaults) <= fields, case.name


def schema_keys(schema: dict, path: str = "") -> set[str]:
    """Dotted keys of the schema's objects with fixed properties (maps of tasks and variants
    left out)."""
    out = set()
    for key, sub in schema.get("properties", {}).items():
        dotted = f"{path}.{key}" if path else key
        out.add(dotted)
        if sub.get("type") == "object" and "properties" in sub:
            out |= schema_keys(sub, dotted)
    return out


def config_keys(node: dict, schema: dict, path: str = "") -> set[str]:
    out = set()
    for key, value in node.items():
        dotted = f"{path}.{key}" if path else key
        out.add(dotted)
        sub = schema.get("properties", {}).get(key, {})
        if isinstance(value, dict) and "properties" in sub:
            out |= config_keys(value, sub, dotted)
    return out


def test_the_schema_has_types_and_ranges_but_no_values():
    """No `default:` in the schema (config.yaml holds every value), and the schema and
    config.yaml name the same keys."""

    def defaults(node, path=""):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "default":
                    yield path
                yield from defaults(v, f"{path}/{k}")
        elif isinstance(node, list):
            for v in node:
                yield from defaults(v, path)

    assert list(defaults(SCHEMA)) == []
    assert schema_keys(SCHEMA) == config_keys(CONFIG, SCHEMA)
