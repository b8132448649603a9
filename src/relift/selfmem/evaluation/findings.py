"""What a Selfmem comparison table (``comparison.json``) shows, in words, from its numbers.

``flags(table)``: the warnings a reader must see first, each present only when its condition
holds on the split read (test by default):

* ``collapse``: a row has fewer than 90% distinct outputs;
* ``memory-not-read``: a generator with the empty memory scores within 1 BLEU of itself with
  its BM25 memory, or the reference as memory does not beat the BM25 memory;
* ``below-copy``: a generator (or loop) row scores below copying the BM25 memory;
* ``below-switch``: a generator (or loop) row scores below the fuzzy-match switch.

``claims(table)``: the Selfmem premises checked on the reference row (the first generator with
BM25 memory), each with whether it holds and the numbers that say so (beating vanilla, and
beating the equal-compute control ``vanilla continued ...`` where the run has one); ``verdict(table)`` puts
them in one line. Rows are recognised by the labels that ``relift.selfmem.evaluation.compare``
and the workflow give them (``copy the BM25 memory``, ``fuzzy-match switch ...``, ``X + BM25
memory``, ``X + empty memory``, ``X + reference as memory (ORACLE)``, ``vanilla ...``).
"""

from __future__ import annotations

from dataclasses import dataclass

COPY_LABEL = "copy the BM25 memory"
SWITCH_PREFIX = "fuzzy-match switch"
BM25_SUFFIX = " + BM25 memory"
EMPTY_SUFFIX = " + empty memory"
ORACLE_SUFFIX = " + reference as memory (ORACLE)"
CONTROL_PREFIX = "vanilla continued"  # the equal-compute control (archs: control)
NOT_READ_MARGIN = 1.0  # BLEU: an empty memory this close to the BM25 memory = memory not read
SYSTEM_KINDS = ("generator", "loop")


@dataclass
class Flag:
    key: str
    title: str
    text: str
    rows: list[str]  # the labels of the rows it is about


@dataclass
class Claim:
    text: str
    holds: bool
    evidence: str


def rows_of(table: dict, split: str = "test") -> list[dict]:
    return [r for r in table.get("rows", []) if r.get("split") == split]


def find(rows: list[dict], label: str) -> dict | None:
    return next((r for r in rows if r.get("label") == label), None)


def copy_row(rows: list[dict]) -> dict | None:
    return find(rows, COPY_LABEL)


def switch_row(rows: list[dict]) -> dict | None:
    return next((r for r in rows if str(r.get("label", "")).startswith(SWITCH_PREFIX)), None)


def _generator_row(rows: list[dict], control: bool) -> dict | None:
    """The first generator row whose label starts with "vanilla": the plain vanilla row, or
    (``control``) the equal-compute control's."""
    for r in rows:
        label = str(r.get("label", ""))
        if r.get("kind") == "generator" and label.startswith("vanilla"):
            if label.startswith(CONTROL_PREFIX) == control:
                return r
    return None


def vanilla_row(rows: list[dict]) -> dict | None:
    return _generator_row(rows, control=False)


def control_row(rows: list[dict]) -> dict | None:
    """The equal-compute control: vanilla continued as long as the memory generator was."""
    return _generator_row(rows, control=True)


def systems(rows: list[dict]) -> list[dict]:
    """The rows that are results: generators and (non-ORACLE) loop variants."""
    return [r for r in rows if r.get("kind") in SYSTEM_KINDS and r.get("bleu") is not None]


def fmt(x, spec: str = ".2f", signed: bool = False) -> str:
    """A number as text, without a negative zero ("-0.00")."""
    if x is None:
        return "n/a"
    text = format(x, ("+" if signed else "") + spec)
    return text.replace("-", "+" if signed else "", 1) if float(text) == 0 else text


def _row_list(rows: list[dict]) -> str:
    return "; ".join(f"{r['label']} {fmt(r['bleu'])}" for r in rows)


def memory_not_read(rows: list[dict]) -> list[str]:
    """One sentence per memory generator whose memory-use diagnostics say it ignores memory."""
    out = []
    for gen in rows:
        label = str(gen.get("label", ""))
        if gen.get("kind") != "generator" or not label.endswith(BM25_SUFFIX):
            continue
        arch = label[: -len(BM25_SUFFIX)]
        empty, oracle = find(rows, arch + EMPTY_SUFFIX), find(rows, arch + ORACLE_SUFFIX)
        why = []
        if empty and empty.get("bleu") is not None and gen.get("bleu") is not None:
            if abs(empty["bleu"] - gen["bleu"]) <= NOT_READ_MARGIN:
                why.append(
                    f"with an empty memory it scores {fmt(empty['bleu'])}, within "
                    f"{NOT_READ_MARGIN:g} BLEU of its {fmt(gen['bleu'])} with BM25 memory"
                )
        if oracle and oracle.get("bleu") is not None and gen.get("bleu") is not None:
            if oracle["bleu"] <= gen["bleu"]:
                why.append(
                    f"the reference as memory ({fmt(oracle['bleu'])}) does not beat the BM25 "
                    f"memory ({fmt(gen['bleu'])})"
                )
        if why:
            out.append(f"{arch}: " + " and ".join(why))
    return out


def flags(table: dict, split: str = "test") -> list[Flag]:
    rows = rows_of(table, split)
    out = []
    collapsed = [r["label"] for r in rows if r.get("collapsed")]
    if collapsed:
        text = "fewer than 90% distinct outputs in: " + "; ".join(collapsed)
        out.append(Flag("collapse", "Collapse", text, collapsed))
    not_read = memory_not_read(rows)
    if not_read:
        labels = [s.split(":", 1)[0] + BM25_SUFFIX for s in not_read]
        out.append(Flag("memory-not-read", "Memory not read", ". ".join(not_read), labels))
    copy, sw = copy_row(rows), switch_row(rows)
    for key, title, base in (
        ("below-copy", "Below copying the memory", copy),
        ("below-switch", "Below the fuzzy-match switch", sw),
    ):
        if base is None or base.get("bleu") is None:
            continue
        below = [r for r in systems(rows) if r["bleu"] < base["bleu"]]
        if below:
            out.append(
                Flag(
                    key,
                    title,
                    f"{base['label']} scores {fmt(base['bleu'])}; below it: " + _row_list(below),
                    [r["label"] for r in below],
                )
            )
    return out


def reference_row(table: dict, split: str = "test") -> dict | None:
    return find(rows_of(table, split), table.get("reference_row", ""))


def _p(p) -> str:
    return "p n/a" if p is None else f"p {p:.3f}"


def _beats_by_ci(ref: dict, other: dict | None, name: str) -> Claim | None:
    """ref beats ``other`` when other's paired difference with ref (other − ref) has its whole
    95% interval below 0."""
    if other is None or other.get("bleu") is None or not other.get("ci95"):
        return None
    d, (lo, hi) = -other["delta_vs_ref"], other["ci95"]
    return Claim(
        f"beats {name}",
        hi < 0,
        f"{fmt(other['bleu'])}; Δ {fmt(d, signed=True)}, 95% interval "
        f"[{fmt(-hi, signed=True)}, {fmt(-lo, signed=True)}]",
    )


def _beats_switch(ref: dict, sw: dict | None) -> Claim | None:
    if sw is None or ref.get("delta_vs_switch") is None:
        return None
    p = ref.get("p_vs_switch")
    return Claim(
        "beats the fuzzy-match switch",
        p is not None and p < 0.05,
        f"{fmt(sw['bleu'])}; Δ {fmt(ref['delta_vs_switch'], signed=True)}, {_p(p)}",
    )


def _reads_memory(ref: dict, rows: list[dict]) -> Claim | None:
    label = str(ref.get("label", ""))
    if not label.endswith(BM25_SUFFIX):
        return None
    arch = label[: -len(BM25_SUFFIX)]
    empty, oracle = find(rows, arch + EMPTY_SUFFIX), find(rows, arch + ORACLE_SUFFIX)
    if empty is None and oracle is None:
        return None
    bad = any(s.startswith(f"{arch}:") for s in memory_not_read(rows))
    parts = [f"{n} {fmt(r['bleu'])}" for n, r in (("empty", empty), ("reference", oracle)) if r]
    return Claim("reads its memory", not bad, ", ".join(parts))


def best_loop_row(table: dict, split: str = "test") -> dict | None:
    """The loop variant (ORACLE excluded) with the best DEV BLEU, as its ``split`` row."""
    dev = [
        r for r in rows_of(table, "dev") if r.get("kind") == "loop" and r.get("bleu") is not None
    ]
    if not dev:
        return None
    best = max(dev, key=lambda r: r["bleu"])
    return find(rows_of(table, split), best["label"])


def _loop_beats_bm25(loop: dict | None) -> Claim | None:
    if loop is None or loop.get("delta_vs_ref") is None:
        return None
    p = loop.get("p_value")
    return Claim(
        "self memory beats BM25 memory",
        p is not None and p < 0.05,
        f"{loop['label']} {fmt(loop['bleu'])}; Δ {fmt(loop['delta_vs_ref'], signed=True)}, {_p(p)}",
    )


def claims(table: dict, split: str = "test") -> list[Claim]:
    """Selfmem's premises on the reference row (each left out when its rows are missing)."""
    rows = rows_of(table, split)
    ref = reference_row(table, split)
    if ref is None:
        return []
    found = [
        _reads_memory(ref, rows),
        _beats_by_ci(ref, vanilla_row(rows), "vanilla"),
        _beats_by_ci(ref, control_row(rows), "vanilla at equal compute"),
        _beats_by_ci(ref, copy_row(rows), "copying its memory"),
        _beats_switch(ref, switch_row(rows)),
        _loop_beats_bm25(best_loop_row(table, split)),
    ]
    return [c for c in found if c is not None]


def verdict(table: dict, split: str = "test") -> str:
    """One line: the reference row's score, then what holds and what does not."""
    ref = reference_row(table, split)
    if ref is None:
        return f"no row {table.get('reference_row')!r} on {split}"
    return holds_line(f"{ref['label']}: {split} BLEU {fmt(ref['bleu'])}.", claims(table, split))


def holds_line(head: str, cs) -> str:
    """``head``, then the claims that hold and those that do not, with their evidence."""
    held = [f"{c.text} ({c.evidence})" for c in cs if c.holds]
    failed = [f"{c.text} ({c.evidence})" for c in cs if not c.holds]
    parts = [head, "Holds: " + ("; ".join(held) if held else "none of the checks") + "."]
    if failed:
        parts.append("Does not hold: " + "; ".join(failed) + ".")
    return " ".join(parts)


def row_flags(table: dict, split: str = "test") -> dict[str, list[str]]:
    """label -> the short flags of that row (collapsed, memory not read, below copy/switch)."""
    rows = rows_of(table, split)
    out: dict[str, list[str]] = {r["label"]: [] for r in rows}
    for r in rows:
        if r.get("collapsed"):
            out[r["label"]].append("collapsed")
    for sentence in memory_not_read(rows):
        label = sentence.split(":", 1)[0] + BM25_SUFFIX
        if label in out:
            out[label].append("memory not read")
    for base, tag in ((copy_row(rows), "below copy"), (switch_row(rows), "below switch")):
        if base is not None and base.get("bleu") is not None:
            for r in systems(rows):
                if r["bleu"] < base["bleu"]:
                    out[r["label"]].append(tag)
    return out
