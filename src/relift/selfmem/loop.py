"""The Selfmem loop (paper Algorithm 1) with Top-B memory beams and augmented memory.

The generator G is frozen. Iteration 0 is the BM25 memory (part 1); for k >= 1

* ``memory_k``     = the selector's choice among ``candidates_{k-1}`` (``select``),
* ``candidates_k`` = G(x, memory_k), beam N returning K (``generate``, one job per beam slot),
* ``hypotheses_k`` = G(x, memory_k), the final beam (5, 1 returned) (``generate``; when the
  pools are decoded with the final beam, the best candidate of slot 0's pool is that very
  hypothesis and ``top1`` takes it instead of decoding again),

and dev and test are scored at every iteration (``score``). Everything in this module except
``generate`` is torch-free (the selection, the oracle scores and the scoring are light jobs).

Top-B memory beam search (``beam_b`` = B; B = 1 is the paper): every input keeps B memories
(slots). Each slot's memory produced a pool of candidates; each slot spawns its top-B children by
score, and the B best of the (at most) B x B children survive, ranked by the child's own score --
the SELECTOR's score of (source, child) (raw logit: comparable across pools since the
cross-encoder scores each pair on its own) or, for the clearly labelled oracle variant, sentence
BLEU against the reference. :func:`select_topb` never sees a reference: the scores arrive
precomputed (``cand_scores.<split>.jsonl``). Children whose resulting memory text is identical
are merged (the first in rank order is kept) so that the B survivors differ whenever the pools
allow it; when fewer than B distinct children exist, duplicates (then the best child) fill the
beam, so every input always keeps exactly B memories, best first. The hypothesis comes from the best surviving memory (slot 0,
``memory.<split>.txt``).

Augmented memory (``memory_mode: augment``): ``memory_k = memory_{k-1} + separator +
selected_k`` instead of ``selected_k``, truncated to ``budget`` generator-tokenizer tokens by
keeping the MOST RECENT part (the tail: the newest selection survives whole, the oldest part of
the memory -- at the start, the BM25 memory -- is cut first; a cut inside a word moves on to the
next word boundary). Keeping the tail also matters for the joint generator, whose
``source </s> memory`` truncation would otherwise cut the newest part.

Files of one iteration (``results/selfmem/<task>/<arch>/<variant>/iter<k>/``):

* ``beams.<split>.jsonl``: ``{"id": i, "beams": [{"memory", "selected", "score", "parent"}, ...]}``
  (B entries, best first; iteration 0 holds one, the BM25 memory),
* ``memory.<split>.txt``: the best memory per input (one line each),
* ``beam<b>/candidates.<split>.jsonl``: part 1's candidate format ``{"id", "candidates",
  "scores"}`` generated from slot b's memory; ``beam<b>/cand_scores.<split>.jsonl``:
  ``{"id", "scores"}`` of the selector (or the oracle) for those candidates,
* ``hypotheses.<split>.txt``, ``scores.<split>.json`` (hypotheses vs references, as
  ``relift score``) and ``memory_scores.<split>.json`` (the memory itself vs references: the
  paper's memory BLEU).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from relift.io import (
    LOG,
    InputError,
    atomic_path,
    read_jsonl,
    run_cli,
    write_json_atomic,
    write_jsonl_atomic,
)

MODES = ("replace", "augment")


# --------------------------------------------------------------------------- file formats
def read_pools(
    path: str | os.PathLike, expected: int | None = None, pool_size: int = 0
) -> list[list[str]]:
    """Candidate pools of a candidates JSONL (part 1's format), one per input, in input order.

    Record ``n`` (0-based) must have ``"id": n``: a shuffled or partial file would silently give
    an input another input's candidates (the public fork's bug). ``pool_size`` keeps only the
    first (best) candidates of each pool (0 = all)."""
    pools = []
    for lineno, rec in read_jsonl(path):
        if rec.get("id") != len(pools):
            raise InputError(
                f"expected id {len(pools)} (records in input order), found {rec.get('id')!r}",
                path=path,
                line=lineno,
                field="id",
            )
        cands = rec.get("candidates")
        if not isinstance(cands, list) or not cands or not all(isinstance(c, str) for c in cands):
            raise InputError(
                "expected a non-empty list of strings", path=path, line=lineno, field="candidates"
            )
        pools.append(cands[:pool_size] if pool_size else cands)
    if expected is not None and len(pools) != expected:
        raise InputError(
            f"{len(pools)} candidate pools but the split has {expected} inputs", path=path
        )
    return pools


def write_pools(path: str | os.PathLike, pools: Sequence[Sequence[str]], scores=None) -> None:
    write_jsonl_atomic(
        path,
        (
            {
                "id": i,
                "candidates": list(p),
                "scores": list(scores[i]) if scores is not None else [],
            }
            for i, p in enumerate(pools)
        ),
    )


def read_scores(path: str | os.PathLike, pools: Sequence[Sequence[str]]) -> list[list[float]]:
    """Scores aligned with ``pools``: record n has id n and one number per candidate."""
    out: list[list[float]] = []
    for lineno, rec in read_jsonl(path):
        i = len(out)
        if rec.get("id") != i:
            raise InputError(
                f"expected id {i}, found {rec.get('id')!r}", path=path, line=lineno, field="id"
            )
        if i >= len(pools):
            raise InputError(f"more score records than the {len(pools)} pools", path=path)
        s = rec.get("scores")
        if not isinstance(s, list) or len(s) != len(pools[i]):
            raise InputError(
                f"expected {len(pools[i])} scores (one per candidate of input {i})",
                path=path,
                line=lineno,
                field="scores",
            )
        out.append([float(x) for x in s])
    if len(out) != len(pools):
        raise InputError(f"{len(out)} score records for {len(pools)} pools", path=path)
    return out


def write_scores(path: str | os.PathLike, scores: Sequence[Sequence[float]]) -> None:
    write_jsonl_atomic(
        path, ({"id": i, "scores": [round(x, 6) for x in s]} for i, s in enumerate(scores))
    )


@dataclass
class Beam:
    """One surviving memory of an input."""

    memory: str
    selected: str = ""  # the candidate chosen at this iteration ("" at iteration 0)
    score: float | None = None  # its selector (or oracle) score
    parent: int | None = None  # slot of the previous iteration it came from


def read_beams(path: str | os.PathLike, expected: int | None = None) -> list[list[Beam]]:
    out: list[list[Beam]] = []
    for lineno, rec in read_jsonl(path):
        if rec.get("id") != len(out):
            raise InputError(
                f"expected id {len(out)}, found {rec.get('id')!r}", path=path, line=lineno
            )
        beams = rec.get("beams")
        if not isinstance(beams, list) or not beams:
            raise InputError("expected a non-empty list", path=path, line=lineno, field="beams")
        try:
            out.append([Beam(**b) for b in beams])
        except TypeError as err:
            raise InputError(f"bad beam entry ({err})", path=path, line=lineno) from None
    if expected is not None and len(out) != expected:
        raise InputError(f"{len(out)} inputs but {expected} expected", path=path)
    return out


def write_beams(path: str | os.PathLike, beams: Sequence[Sequence[Beam]]) -> None:
    write_jsonl_atomic(
        path,
        (
            {
                "id": i,
                "beams": [
                    {
                        "memory": b.memory,
                        "selected": b.selected,
                        "score": None if b.score is None else round(b.score, 6),
                        "parent": b.parent,
                    }
                    for b in bs
                ],
            }
            for i, bs in enumerate(beams)
        ),
    )


def write_lines(path: str | os.PathLike, lines: Sequence[str]) -> None:
    from relift.selfmem.data import one_line

    with atomic_path(path) as tmp:
        tmp.write_text("".join(one_line(x) + "\n" for x in lines), encoding="utf-8")


# --------------------------------------------------------------------------- oracle / Δ
def delta_scores(candidates: Sequence[str], reference: str, metric: str = "bleu") -> list[float]:
    """Δ(c, y) of each candidate against the reference: sentence BLEU (sacrebleu, 0-100) for
    ``bleu`` tasks, the mean of ROUGE-1/2/L F1 (x100, stemmed) for ``rouge`` tasks."""
    if metric == "bleu":
        return [_sentence_bleu().sentence_score(c, [reference]).score for c in candidates]
    if metric == "rouge":
        scorer = _rouge_scorer()
        out = []
        for c in candidates:
            s = scorer.score(reference, c)
            out.append(
                100 * (s["rouge1"].fmeasure + s["rouge2"].fmeasure + s["rougeL"].fmeasure) / 3
            )
        return out
    raise InputError(f"unknown metric {metric!r}; expected bleu or rouge")


_CACHE: dict = {}


def _sentence_bleu():
    if "bleu" not in _CACHE:
        from sacrebleu.metrics import BLEU

        _CACHE["bleu"] = BLEU(effective_order=True)
    return _CACHE["bleu"]


def _rouge_scorer():
    if "rouge" not in _CACHE:
        from rouge_score import rouge_scorer

        _CACHE["rouge"] = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    return _CACHE["rouge"]


def oracle_scores(
    pools: Sequence[Sequence[str]], references: Sequence[str], metric: str = "bleu"
) -> list[list[float]]:
    """ORACLE selection scores: Δ of every candidate against its input's reference. Only the
    oracle variant (the ceiling a selector could reach) uses them."""
    if len(pools) != len(references):
        raise InputError(f"{len(pools)} pools but {len(references)} references")
    return [delta_scores(p, r, metric) for p, r in zip(pools, references, strict=True)]


# --------------------------------------------------------------------------- augment
class TokenCounter:
    """Token offsets of a text under the generator's tokenizer (no special tokens)."""

    def __init__(self, offsets_fn: Callable[[str], list[tuple[int, int]]]):
        self.offsets = offsets_fn

    def count(self, text: str) -> int:
        return len(self.offsets(text))

    @classmethod
    def whitespace(cls) -> TokenCounter:
        return cls(lambda t: [m.span() for m in re.finditer(r"\S+", t)])

    @classmethod
    def from_generator(cls, path: str | os.PathLike) -> TokenCounter:
        """The tokenizer saved in a generator (or tokenizer) folder: ``tokenizer.json`` through
        the light ``tokenizers`` library when present, else transformers' AutoTokenizer."""
        path = Path(path)
        if (path / "tokenizer.json").exists():
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(str(path / "tokenizer.json"))
            return cls(lambda t: tok.encode(t, add_special_tokens=False).offsets)
        from relift.selfmem.tokenizer import load_tokenizer

        hf = load_tokenizer(path)
        return cls(
            lambda t: hf(t, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        )


def truncate_to_budget(text: str, budget: int, counter: TokenCounter) -> str:
    """The most recent part (tail) of ``text`` that fits in ``budget`` tokens (0 = no limit);
    a cut inside a word moves on to the next word boundary."""
    if budget <= 0:
        return text
    offs = counter.offsets(text)
    drop = len(offs) - budget
    while drop > 0:  # re-tokenisation at the cut can merge differently: check again
        start = max(1, offs[drop][0])
        while start < len(text) and not text[start - 1].isspace():
            start += 1  # inside a word: skip to the next boundary
        text = text[start:].lstrip()
        offs = counter.offsets(text)
        drop = len(offs) - budget
    return text


def combine_memory(
    previous: str,
    selected: str,
    mode: str,
    separator: str = " ",
    budget: int = 0,
    counter: TokenCounter | None = None,
) -> str:
    """``replace``: the selected candidate; ``augment``: previous + separator + selected,
    truncated to ``budget`` tokens (tail kept)."""
    if mode == "replace":
        return selected
    if mode != "augment":
        raise InputError(f"unknown memory_mode {mode!r}; expected one of {', '.join(MODES)}")
    if not selected.strip():
        text = previous  # an empty selection adds nothing
    elif not previous.strip():
        text = selected
    else:
        text = f"{previous}{separator}{selected}"
    if budget > 0:
        if counter is None:
            raise InputError("augmented memory with a token budget needs the generator tokenizer")
        text = truncate_to_budget(text, budget, counter)
    return text


# --------------------------------------------------------------------------- Top-B selection
def select_topb(
    parents: Sequence[Sequence[Beam]],
    pools: Sequence[Sequence[Sequence[str]]],
    scores: Sequence[Sequence[Sequence[float]]],
    beam_b: int,
    combine: Callable[[str, str], str] = lambda prev, sel: sel,
) -> list[list[Beam]]:
    """One step of the memory beam: ``parents[i][s]`` is slot s of input i, ``pools[i][s]`` the
    candidates generated from it and ``scores[i][s]`` their selection scores. Every slot spawns
    its top-B children; the B best children of input i survive (exactly B, best first).

    Ties are broken by slot order, then by the generator's candidate order (beam rank). The
    function sees only scores: it cannot read a reference."""
    if beam_b < 1:
        raise InputError(f"beam_b must be >= 1, got {beam_b}")
    if not len(parents) == len(pools) == len(scores):
        raise InputError(
            f"{len(parents)} inputs with beams, {len(pools)} with pools, {len(scores)} with scores"
        )
    out: list[list[Beam]] = []
    for i, (par, pool, sc) in enumerate(zip(parents, pools, scores, strict=True)):
        if not len(par) == len(pool) == len(sc):
            raise InputError(
                f"input {i}: {len(par)} memory slots, {len(pool)} candidate pools, "
                f"{len(sc)} score lists"
            )
        children = []  # (score, slot, rank, memory, candidate)
        for s, (parent, cands, cs) in enumerate(zip(par, pool, sc, strict=True)):
            if len(cands) != len(cs):
                raise InputError(
                    f"input {i}, slot {s}: {len(cands)} candidates but {len(cs)} scores"
                )
            top = sorted(range(len(cands)), key=lambda j: (-cs[j], j))[:beam_b]
            for j in top:
                children.append((cs[j], s, j, combine(parent.memory, cands[j]), cands[j]))
        if not children:
            raise InputError(f"input {i} has no candidates")
        children.sort(key=lambda c: (-c[0], c[1], c[2]))
        seen, kept, dups = set(), [], []
        for c in children:
            (dups if c[3] in seen else kept).append(c)
            seen.add(c[3])
        kept = (kept + dups)[:beam_b]  # distinct memories first
        while len(kept) < beam_b:  # fewer children than B: repeat the best one
            kept.append(kept[0])
        kept.sort(key=lambda c: (-c[0], c[1], c[2]))  # best first
        out.append([Beam(memory=m, selected=c, score=float(v), parent=s) for v, s, _, m, c in kept])
    return out


# --------------------------------------------------------------------------- CLI helpers
def _split_map(values: list[str] | None, flag: str) -> dict[str, str]:
    """``["dev=path", "test=path"]`` -> ``{"dev": "path", "test": "path"}``."""
    out: dict[str, str] = {}
    for v in values or []:
        name, sep, path = v.partition("=")
        if not sep or not name or not path:
            raise InputError(f"{flag} expects SPLIT=PATH, got {v!r}")
        if name in out:
            raise InputError(f"{flag} gives split {name!r} twice")
        out[name] = path
    return out


def _same_splits(maps: dict[str, dict], required: Sequence[str]) -> list[str]:
    splits = None
    for flag, m in maps.items():
        if flag not in required and not m:
            continue
        if splits is None:
            splits = list(m)
        elif set(m) != set(splits):
            raise InputError(f"{flag} names splits {sorted(m)}, expected {sorted(splits)}")
    if not splits:
        raise InputError("no split given")
    return splits


def _slot_files(values: list[str] | None, flag: str) -> dict[str, list[str]]:
    """``SPLIT=PATH`` given once per slot, in slot order."""
    out: dict[str, list[str]] = {}
    for v in values or []:
        name, sep, path = v.partition("=")
        if not sep or not name or not path:
            raise InputError(f"{flag} expects SPLIT=PATH, got {v!r}")
        out.setdefault(name, []).append(path)
    return out


# --------------------------------------------------------------------------- subcommands
def cmd_iter0(args) -> None:
    """Iteration 0: the BM25 memory as a one-slot beam, its candidate pool (part 1's candidates,
    first ``pool_size``) and its hypotheses (part 1's), copied into the iteration folder."""
    from relift.selfmem.data import load_split, read_lines

    data = _split_map(args.data, "--data")
    memory = _split_map(args.memory, "--memory")
    cands = _split_map(args.candidates, "--candidates")
    hyps = _split_map(args.hypotheses, "--hypotheses")
    out_dir = Path(args.out_dir)
    for split in _same_splits(
        {"--data": data, "--memory": memory, "--candidates": cands, "--hypotheses": hyps},
        ("--data", "--memory", "--candidates", "--hypotheses"),
    ):
        n = len(load_split(data[split], args.src_field, args.trg_field))
        mem = read_lines(memory[split], n, what=f"{split} memory")
        pools = read_pools(cands[split], n, args.pool_size)
        hyp = read_lines(hyps[split], n, what=f"{split} hypotheses")
        write_beams(out_dir / f"beams.{split}.jsonl", [[Beam(memory=m)] for m in mem])
        write_lines(out_dir / f"memory.{split}.txt", mem)
        write_pools(out_dir / "beam0" / f"candidates.{split}.jsonl", pools)
        write_lines(out_dir / f"hypotheses.{split}.txt", hyp)
        LOG.info("iteration 0 (%s): %d inputs, pools of <= %d", split, n, max(map(len, pools)))


def cmd_oracle_scores(args) -> None:
    """ORACLE scores: Δ (sentence BLEU / ROUGE mix) of every candidate against the reference."""
    from relift.selfmem.data import load_split

    data = _split_map(args.data, "--data")
    cands = _split_map(args.candidates, "--candidates")
    outs = _split_map(args.output, "--output")
    for split in _same_splits(
        {"--data": data, "--candidates": cands, "--output": outs},
        ("--data", "--candidates", "--output"),
    ):
        refs = load_split(data[split], args.src_field, args.trg_field).targets
        pools = read_pools(cands[split], len(refs))
        write_scores(outs[split], oracle_scores(pools, refs, args.metric))
        LOG.info("ORACLE scores of %d %s pools -> %s", len(pools), split, outs[split])


def cmd_select(args) -> None:
    """Memory of iteration k from the beams, pools and scores of iteration k-1 (no references)."""
    beams = _split_map(args.beams, "--beams")
    cands = _slot_files(args.candidates, "--candidates")
    scores = _slot_files(args.scores, "--scores")
    out_beams = _split_map(args.out_beams, "--out-beams")
    out_mem = _split_map(args.out_memory, "--out-memory")
    splits = _same_splits(
        {
            "--beams": beams,
            "--candidates": cands,
            "--scores": scores,
            "--out-beams": out_beams,
            "--out-memory": out_mem,
        },
        ("--beams", "--candidates", "--scores", "--out-beams", "--out-memory"),
    )
    if args.budget < 0:
        raise InputError(
            f"--budget {args.budget}: a memory budget is at least 1 token (0 = no limit)"
        )
    counter = None
    if args.memory_mode == "augment" and args.budget > 0:
        if not args.tokenizer:
            raise InputError("--memory-mode augment with --budget needs --tokenizer")
        counter = TokenCounter.from_generator(args.tokenizer)

    def combine(prev: str, sel: str) -> str:
        return combine_memory(prev, sel, args.memory_mode, args.separator, args.budget, counter)

    for split in splits:
        parents = read_beams(beams[split])
        n_slots = len(parents[0])
        if len(cands[split]) != n_slots or len(scores[split]) != n_slots:
            raise InputError(
                f"{split}: {n_slots} memory slots in {beams[split]} but "
                f"{len(cands[split])} --candidates and {len(scores[split])} --scores files"
            )
        slot_pools = [read_pools(p, len(parents)) for p in cands[split]]
        for path, sp in zip(cands[split], slot_pools, strict=True):
            for i, pool in enumerate(sp):
                if len(pool) < args.beam_b:
                    raise InputError(
                        f"Top-B {args.beam_b} is larger than the {len(pool)} candidates of "
                        f"this pool (B must not exceed num_return_sequences)",
                        path=path,
                        line=i + 1,
                        field="candidates",
                    )
        slot_scores = [read_scores(s, sp) for s, sp in zip(scores[split], slot_pools, strict=True)]
        pools = [[slot_pools[s][i] for s in range(n_slots)] for i in range(len(parents))]
        sc = [[slot_scores[s][i] for s in range(n_slots)] for i in range(len(parents))]
        for i, p in enumerate(parents):
            if len(p) != n_slots:
                raise InputError(
                    f"input {i} has {len(p)} slots, expected {n_slots}", path=beams[split]
                )
        new = select_topb(parents, pools, sc, args.beam_b, combine)
        write_beams(out_beams[split], new)
        write_lines(out_mem[split], [b[0].memory for b in new])
        changed = sum(b[0].memory != p[0].memory for b, p in zip(new, parents, strict=True))
        LOG.info(
            "%s: %d inputs, %d -> %d slots (%s), best memory changed for %d",
            split,
            len(new),
            n_slots,
            args.beam_b,
            args.memory_mode,
            changed,
        )


def cmd_generate(args) -> None:
    """Decode every split with the frozen generator and the memory of one beam slot
    (``--beams``) or a memory file (``--memory``)."""
    import torch

    from relift.selfmem.candidates import generate_candidates
    from relift.selfmem.data import load_memory, load_split
    from relift.selfmem.model import Generator

    data = _split_map(args.data, "--data")
    beams = _split_map(args.beams, "--beams")
    memory = _split_map(args.memory, "--memory")
    out_jsonl = _split_map(args.output_jsonl, "--output-jsonl")
    out_txt = _split_map(args.output_txt, "--output-txt")
    if bool(beams) == bool(memory):
        raise InputError("give either --beams (with --slot) or --memory")
    if not out_jsonl and not out_txt:
        raise InputError("give --output-jsonl and/or --output-txt")
    splits = _same_splits(
        {
            "--data": data,
            "--beams": beams,
            "--memory": memory,
            "--output-jsonl": out_jsonl,
            "--output-txt": out_txt,
        },
        ("--data",),
    )
    if args.threads:
        torch.set_num_threads(args.threads)
    from relift.encoders import pick_device

    gen = Generator.load(args.generator, device=pick_device(args.device))
    for split in splits:
        sp = load_split(data[split], args.src_field, args.trg_field)
        if beams:
            slots = read_beams(beams[split], len(sp))
            if any(args.slot >= len(b) for b in slots):
                raise InputError(f"slot {args.slot} does not exist", path=beams[split])
            mems = [b[args.slot].memory for b in slots]
        else:
            mems = load_memory(memory[split], sp)
        t0 = time.time()
        res = generate_candidates(
            gen,
            sp.sources,
            mems if gen.spec.arch != "vanilla" else None,
            args.num_beams,
            args.num_return_sequences,
            args.batch_size,
        )
        if split in out_jsonl:
            write_pools(
                out_jsonl[split], [c for c, _ in res], [[round(x, 6) for x in s] for _, s in res]
            )
        if split in out_txt:
            write_lines(out_txt[split], [c[0] for c, _ in res])
        LOG.info(
            "%s: %d inputs x %d (beam %d) in %.1fs",
            split,
            len(res),
            args.num_return_sequences,
            args.num_beams,
            time.time() - t0,
        )


def cmd_top1(args) -> None:
    """The best (first) candidate of every pool: the hypothesis of a pool decoded with the final
    beam (the same beam search as a decode returning one sequence)."""
    cands = _split_map(args.candidates, "--candidates")
    outs = _split_map(args.output_txt, "--output-txt")
    for split in _same_splits(
        {"--candidates": cands, "--output-txt": outs}, ("--candidates", "--output-txt")
    ):
        pools = read_pools(cands[split])
        write_lines(outs[split], [p[0] for p in pools])
        LOG.info("%s: %d hypotheses (best candidate of each pool)", split, len(pools))


def cmd_score(args) -> None:
    """Corpus scores of the hypotheses and of the memory itself, per split."""
    from relift.score import parse_metrics, score
    from relift.selfmem.data import load_split, read_lines

    data = _split_map(args.data, "--data")
    hyps = _split_map(args.hyp, "--hyp")
    mems = _split_map(args.memory, "--memory")
    out_h = _split_map(args.out_hyp, "--out-hyp")
    out_m = _split_map(args.out_memory, "--out-memory")
    metrics = parse_metrics(args.metrics)
    for split in _same_splits(
        {
            "--data": data,
            "--hyp": hyps,
            "--memory": mems,
            "--out-hyp": out_h,
            "--out-memory": out_m,
        },
        ("--data", "--hyp", "--memory", "--out-hyp", "--out-memory"),
    ):
        refs = load_split(data[split], args.src_field, args.trg_field).targets
        h = score(read_lines(hyps[split], len(refs), what=f"{split} hypotheses"), refs, metrics)
        m = score(read_lines(mems[split], len(refs), what=f"{split} memory"), refs, metrics)
        write_json_atomic(out_h[split], h)
        write_json_atomic(out_m[split], m)
        LOG.info(
            "%s: hypothesis %s, memory %s",
            split,
            json.dumps(
                {k: v["score"] for k, v in h.items() if isinstance(v, dict) and "score" in v}
            ),
            json.dumps(
                {k: v["score"] for k, v in m.items() if isinstance(v, dict) and "score" in v}
            ),
        )


def _common(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--src-field", default="src")
    ap.add_argument("--trg-field", default="trg")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m relift.selfmem.loop",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="command", required=True)
    many = {"action": "append", "metavar": "SPLIT=PATH"}

    p = sub.add_parser("iter0", help="iteration 0 (BM25 memory) from part 1's outputs")
    _common(p)
    p.add_argument("--data", required=True, **many)
    p.add_argument("--memory", required=True, **many)
    p.add_argument("--candidates", required=True, **many)
    p.add_argument("--hypotheses", required=True, **many)
    p.add_argument("--pool-size", type=int, default=0, help="candidates kept per pool (0 = all)")
    p.add_argument("--out-dir", required=True, type=Path)
    p.set_defaults(func=cmd_iter0)

    p = sub.add_parser("oracle-scores", help="ORACLE: Δ of each candidate vs the reference")
    _common(p)
    p.add_argument("--data", required=True, **many)
    p.add_argument("--candidates", required=True, **many)
    p.add_argument("--metric", choices=("bleu", "rouge"), default="bleu")
    p.add_argument("--output", required=True, **many)
    p.set_defaults(func=cmd_oracle_scores)

    p = sub.add_parser("select", help="memories of iteration k (Top-B, replace/augment)")
    p.add_argument("--beams", required=True, **many, help="beams of iteration k-1")
    p.add_argument(
        "--candidates", required=True, **many, help="pools of iteration k-1, once per slot in order"
    )
    p.add_argument("--scores", required=True, **many, help="their scores, once per slot in order")
    p.add_argument("--beam-b", type=int, default=1, help="memories kept per input (B)")
    p.add_argument("--memory-mode", choices=MODES, default="replace")
    p.add_argument("--separator", default=" ", help="augment: text between memories")
    p.add_argument(
        "--budget", type=int, default=0, help="augment: generator tokens kept (tail; 0 = all)"
    )
    p.add_argument("--tokenizer", type=Path, help="generator (or tokenizer) folder: the budget")
    p.add_argument("--out-beams", required=True, **many)
    p.add_argument("--out-memory", required=True, **many)
    p.set_defaults(func=cmd_select)

    p = sub.add_parser("generate", help="decode with the frozen generator")
    _common(p)
    p.add_argument("--generator", required=True, type=Path)
    p.add_argument("--data", required=True, **many)
    p.add_argument("--beams", **many, help="beams file per split (memory of --slot)")
    p.add_argument("--slot", type=int, default=0)
    p.add_argument("--memory", **many, help="memory file per split")
    p.add_argument("--num-beams", type=int, default=5)
    p.add_argument("--num-return-sequences", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--output-jsonl", **many)
    p.add_argument("--output-txt", **many)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("top1", help="hypotheses = the best candidate of each pool")
    p.add_argument("--candidates", required=True, **many)
    p.add_argument("--output-txt", required=True, **many)
    p.set_defaults(func=cmd_top1)

    p = sub.add_parser("score", help="corpus scores of hypotheses and memory")
    _common(p)
    p.add_argument("--data", required=True, **many)
    p.add_argument("--hyp", required=True, **many)
    p.add_argument("--memory", required=True, **many)
    p.add_argument("--metrics", default="bleu,chrf,ter")
    p.add_argument("--out-hyp", required=True, **many)
    p.add_argument("--out-memory", required=True, **many)
    p.set_defaults(func=cmd_score)

    args = ap.parse_args(argv)
    if getattr(args, "num_beams", 1) < 1 or not (
        1 <= getattr(args, "num_return_sequences", 1) <= getattr(args, "num_beams", 1)
    ):
        raise InputError("need 1 <= num_return_sequences <= num_beams")
    args.func(args)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
