"""Checks of the configuration that span several keys (stdlib only).

The schema (workflow/schemas/config.schema.yaml) checks each key on its own: its type and range.
:func:`validate` holds every check that relates two or more keys; the Snakefile calls it right
after the schema validation, before any rule is read or job planned, on config.yaml with the
overlays merged in. Each message names the keys it concerns.
"""

from __future__ import annotations

from collections.abc import Iterator


class ConfigError(ValueError):
    """A configuration whose keys contradict each other (one line per problem)."""


def _names(items) -> str:
    return ", ".join(items) or "none"


def _selfmem_tasks(sm: dict) -> Iterator[str]:
    for name in sm["run_tasks"]:
        if name not in sm["tasks"]:
            yield (
                f"selfmem.run_tasks names {name!r}, which selfmem.tasks does not define "
                f"(defined: {_names(sm['tasks'])})"
            )


def _selfmem_selector(sm: dict) -> Iterator[str]:
    sel = sm["selector"]
    if sel["encoder"] == "scratch":
        if sel["layers"] < 1:
            yield (
                "selfmem.selector.encoder: scratch builds an encoder of selfmem.selector.layers "
                "layers; set layers >= 1"
            )
        if sel["scratch"]["hidden"] % sel["scratch"]["heads"]:
            yield (
                "selfmem.selector.scratch.hidden must be a multiple of "
                "selfmem.selector.scratch.heads"
            )
    if sel["train_num_return_sequences"] > sel["train_num_beams"]:
        yield (
            f"selfmem.selector.train_num_return_sequences ({sel['train_num_return_sequences']}) "
            f"must not exceed selfmem.selector.train_num_beams ({sel['train_num_beams']})"
        )


def _selfmem_beams(sm: dict) -> Iterator[str]:
    for section in ("candidates", "loop"):
        s = sm[section]
        if s["num_return_sequences"] > s["num_beams"]:
            yield (
                f"selfmem.{section}.num_return_sequences ({s['num_return_sequences']}) must not "
                f"exceed selfmem.{section}.num_beams ({s['num_beams']})"
            )


def _selfmem_loop(sm: dict) -> Iterator[str]:
    loop = sm["loop"]
    for name in loop["run_variants"]:
        if name not in loop["variants"]:
            yield (
                f"selfmem.loop.run_variants names {name!r}, which selfmem.loop.variants does not "
                f"define (defined: {_names(loop['variants'])})"
            )
    if loop["num_return_sequences"] > sm["candidates"]["num_return_sequences"]:
        yield (
            "selfmem.loop.num_return_sequences must not exceed selfmem.candidates."
            "num_return_sequences (iteration 0's pool is the first candidates of part 1's)"
        )
    pool = loop["num_return_sequences"]
    variants = [(f"selfmem.loop.variants.{n}", v or {}) for n, v in loop["variants"].items()]
    for name, v in [("selfmem.loop", loop), *variants]:
        if v.get("beam_b", 1) > pool:
            yield (
                f"{name}.beam_b ({v['beam_b']}) must not exceed selfmem.loop."
                f"num_return_sequences ({pool}): Top-B keeps B children of each memory's "
                "candidate pool"
            )


def _selfmem_generator(sm: dict) -> Iterator[str]:
    gen = sm["generator"]
    if not gen["pretrained"] and gen["d_model"] % gen["attention_heads"]:
        yield "selfmem.generator.d_model must be a multiple of selfmem.generator.attention_heads"
    shares = {k: v for k, v in gen.items() if k.startswith("memory_") and k.endswith("_share")}
    if sum(shares.values()) > 1 + 1e-9:
        named = ", ".join(f"selfmem.generator.{k}" for k, v in shares.items() if v)
        yield f"the memory shares ({named}) add up to {sum(shares.values()):.2f} > 1"
    if "control" in sm["archs"] and "vanilla" not in sm["archs"]:
        yield (
            "selfmem.archs: control continues the trained vanilla generator of its seed; "
            "add vanilla to selfmem.archs"
        )


def _regpt(regpt: dict) -> Iterator[str]:
    model, depth = regpt["model"], regpt["negatives"]["depth"]
    if not model["pretrained_decoder"]:
        if model["hidden"] % model["heads"]:
            yield "regpt.model.hidden must be a multiple of regpt.model.heads"
        if model["max_len"] > model["max_positions"]:
            yield (
                f"regpt.model.max_len ({model['max_len']}) must not exceed "
                f"regpt.model.max_positions ({model['max_positions']})"
            )
    for stage in ("stage1", "stage2"):
        n = regpt[stage]["negatives"]
        if n > depth - 1:
            yield (
                f"regpt.{stage}.negatives ({n}) must be below regpt.negatives.depth ({depth}): "
                "the pool of each phrase holds the phrase itself and depth - 1 neighbours"
            )


def problems(config: dict) -> list[str]:
    """Every cross-key problem of ``config`` (config.yaml with the overlays merged in)."""
    sm, out = config["selfmem"], []
    for check in (_selfmem_tasks, _selfmem_selector, _selfmem_beams, _selfmem_loop):
        out += check(sm)
    out += _selfmem_generator(sm)
    out += _regpt(config["regpt"])
    return out


def validate(config: dict) -> None:
    """Raise :class:`ConfigError` naming every cross-key problem of ``config``."""
    found = problems(config)
    if found:
        raise ConfigError("\n".join(found))
