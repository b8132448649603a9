"""Each setting declared once: a dataclass field is its default, its help text and its CLI flag.

A module that reads settings declares them as a dataclass whose field names are the keys of its
config.yaml section, with :func:`setting` for the help text::

    @dataclass
    class GeneratorSettings:
        d_model: int = setting(256, "hidden size of the from-scratch Transformer")
        copy: bool = setting(True, "pointer-generator head over the encoder input")

Its CLI calls ``add_settings(parser, GeneratorSettings, TrainConfig)``, which adds

- ``--settings JSON``: a JSON object of values, for example a whole config section passed by a
  Snakemake rule as one ``params:`` value (an unknown key is an error that names it);
- one flag per field (``--d-model``, ``--copy/--no-copy``), generated from the field's type and
  metadata, for people at a terminal; a flag overrides the JSON.

``settings_from_args(args, GeneratorSettings, TrainConfig)`` then returns one instance per class.
A key shared by several classes (``seed``, say) sets the field in each.

Defaults live in one place: a field's default IS config.yaml's value for its key. Where one CLI
serves several sections whose values differ (ReGPT stage 1 and stage 2) or reads the loop's
:class:`relift.train.TrainConfig` (whose own defaults are generic), the settings module next to
the dataclass holds the CLI's ``*_DEFAULTS`` dict: config.yaml's values of the keys that differ.
No CLI sets a default of its own, and the schema holds types and ranges, no values.
tests/test_defaults.py compares every field of every settings dataclass (under its CLI's
``*_DEFAULTS``) with config.yaml and names each difference; so a new setting touches config.yaml,
the schema and the dataclass, nothing else.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from typing import Any

from relift.io import InputError

_JSON_DEST = "_settings_json"


def setting(default: Any, help: str, *, choices: tuple | None = None) -> Any:
    """A dataclass field with its help text (and allowed values) in the metadata."""
    meta = {"help": help}
    if choices is not None:
        meta["choices"] = tuple(choices)
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def settings_json(section: dict, drop: tuple[str, ...] = ()) -> str:
    """A config section as the compact, key-sorted JSON a rule passes to ``--settings``."""
    return json.dumps(
        {k: v for k, v in section.items() if k not in drop}, sort_keys=True, separators=(",", ":")
    )


def _field_types(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _base(tp):
    """(scalar type, container) of an annotation: int, tuple[float, float], list[str], X | None."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _base(args[0])
    if origin in (tuple, list):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        n = (
            len(typing.get_args(tp))
            if origin is tuple and Ellipsis not in typing.get_args(tp)
            else None
        )
        return args[0] if args else str, (origin, n)
    return tp, None


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not JSON: {e}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object of settings")
    return value


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def add_settings(
    ap: argparse.ArgumentParser, *classes, defaults: dict | None = None, skip: tuple = ()
) -> None:
    """Add ``--settings`` and one flag per field of ``classes`` (fields in ``skip`` get none).

    ``defaults``: the CLI's ``*_DEFAULTS`` (config.yaml's values where they differ from the
    dataclass's), shown in ``--help``; :func:`settings_from_args` takes the same dict."""
    defaults = defaults or {}
    if not any(a.dest == _JSON_DEST for a in ap._actions):
        ap.add_argument(
            "--settings",
            dest=_JSON_DEST,
            type=_json_object,
            default={},
            metavar="JSON",
            help="a JSON object of the settings below (e.g. a config section); flags override it",
        )
    seen = {a.dest for a in ap._actions}
    for cls in classes:
        g = ap.add_argument_group(f"{cls.__name__} ({cls.__module__})")
        hints = _field_types(cls)
        for f in dataclasses.fields(cls):
            if f.name in skip or f.name in seen:
                continue
            seen.add(f.name)
            scalar, container = _base(hints[f.name])
            default = defaults.get(f.name, _default(f))
            kw: dict[str, Any] = {
                "dest": f.name,
                "default": argparse.SUPPRESS,
                "help": f"{f.metadata.get('help', '')} (default: {default!r})".strip(),
            }
            if "choices" in f.metadata:
                kw["choices"] = f.metadata["choices"]
            if scalar is bool and container is None:
                kw["action"] = argparse.BooleanOptionalAction
            else:
                kw["type"] = scalar
                if container is not None:
                    kw["nargs"] = container[1] or "*"
            g.add_argument("--" + f.name.replace("_", "-"), **kw)


def _coerce(cls, name: str, value: Any, hint) -> Any:
    scalar, container = _base(hint)
    where = f"--settings: {cls.__name__}.{name}"
    if value is None:
        return None
    if container is not None:
        if not isinstance(value, (list, tuple)):
            raise InputError(f"{where}: expected a list, got {value!r}")
        items = [_coerce_scalar(where, scalar, v) for v in value]
        origin, n = container
        if n is not None and len(items) != n:
            raise InputError(f"{where}: expected {n} values, got {len(items)}")
        return tuple(items) if origin is tuple else items
    return _coerce_scalar(where, scalar, value)


def _coerce_scalar(where: str, scalar, value: Any) -> Any:
    if scalar is bool:
        if not isinstance(value, bool):
            raise InputError(f"{where}: expected true or false, got {value!r}")
        return value
    if scalar is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if scalar is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if scalar is str and isinstance(value, str):
        return value
    if scalar in (int, float, str):
        raise InputError(f"{where}: expected {scalar.__name__}, got {value!r}")
    return value


def settings_from_args(args: argparse.Namespace, *classes, defaults: dict | None = None):
    """One instance per class: dataclass defaults < ``defaults`` < ``--settings`` < flags."""
    given = dict(getattr(args, _JSON_DEST, {}) or {})
    known = {f.name for cls in classes for f in dataclasses.fields(cls)}
    unknown = sorted(set(given) - known)
    if unknown:
        names = ", ".join(c.__name__ for c in classes)
        raise InputError(f"--settings: unknown setting(s) {unknown} (known to {names})")
    out = []
    for cls in classes:
        hints = _field_types(cls)
        vals = {}
        for f in dataclasses.fields(cls):
            if hasattr(args, f.name):
                value = getattr(args, f.name)
            elif f.name in given:
                value = _coerce(cls, f.name, given[f.name], hints[f.name])
            elif defaults and f.name in defaults:
                value = defaults[f.name]
            else:
                continue
            if "choices" in f.metadata and value not in f.metadata["choices"]:
                raise InputError(
                    f"{cls.__name__}.{f.name}: {value!r} is not one of {list(f.metadata['choices'])}"
                )
            if isinstance(value, list) and _base(hints[f.name])[1] == (tuple, 2):
                value = tuple(value)
            vals[f.name] = value
        out.append(cls(**vals))
    return out[0] if len(out) == 1 else tuple(out)
