"""Beam candidates of a Selfmem generator: K hypotheses per input, with their scores.

For every example of a split (source + its memory, e.g. the BM25 memory), beam search with
``--num-beams`` beams returns ``--num-return-sequences`` hypotheses, best first. Inputs are
decoded in batches of similar source length. Outputs:

* ``--output-jsonl``: one record per input, ``{"id": i, "candidates": [...], "scores": [...]}``
  (scores: the beams' length-normalised log-probabilities);
* ``--output-txt``: the original code's N x K text layout: K lines per input, inputs in order
  (with K = 1 this is a plain hypothesis file, one line per input).

The paper uses 50 beams / 50 candidates for the selector's pool and beam 5 / 1 hypothesis for the
final output.

Settings (:class:`relift.selfmem.generator.settings.CandidatesSettings`: config.yaml's
``selfmem.candidates``) come as ``--settings JSON`` and/or one flag each.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from relift.io import LOG, InputError, atomic_path, run_cli, write_jsonl_atomic
from relift.selfmem.data import load_memory, load_split, one_line
from relift.selfmem.generator.settings import CandidatesSettings
from relift.selfmem.match import read_scores, read_sources
from relift.settings import add_settings, settings_from_args


def plan_batches(
    src_lengths: list[int], in_lengths: list[int], batch_size: int, batch_tokens: int = 0
) -> list[list[int]]:
    """Batches of input indices, sorted by source length (the decoding steps a batch needs).

    ``batch_tokens`` 0: ``batch_size`` inputs per batch. Otherwise a token budget: a batch takes
    inputs while (inputs x its longest encoder input, in tokens) stays within ``batch_tokens``, so
    that short inputs share one batch (fewer decoding steps, each over more rows) and long ones
    split; at least one input, at most 4 x ``batch_size``."""
    order = sorted(range(len(src_lengths)), key=lambda i: (src_lengths[i], in_lengths[i]))
    batches: list[list[int]] = []
    cur: list[int] = []
    longest = 0
    for i in order:
        wider = max(longest, in_lengths[i])
        full = (
            (len(cur) + 1) * wider > batch_tokens or len(cur) >= 4 * batch_size
            if batch_tokens
            else len(cur) >= batch_size
        )
        if cur and full:
            batches.append(cur)
            cur, wider = [], in_lengths[i]
        cur.append(i)
        longest = wider
    if cur:
        batches.append(cur)
    return batches


def input_lengths(gen, sources: list[str], memories: list[str] | None):
    """Source tokens and encoder-input tokens (source + memory) of every input."""
    tok = gen.tokenizer
    src = [len(x) for x in tok(sources, add_special_tokens=False)["input_ids"]]
    if memories is None:
        return src, list(src)
    mem = [len(x) for x in tok(memories, add_special_tokens=False)["input_ids"]]
    return src, [a + b for a, b in zip(src, mem, strict=True)]


def generate_candidates(
    gen,
    sources: list[str],
    memories: list[str] | None,
    num_beams: int,
    num_return_sequences: int,
    batch_size: int,
    length_penalty: float = 1.0,
    max_length_ratio: float = 2.0,
    log_every: int = 20,
    batch_tokens: int = 0,
):
    """``[(texts, scores)]`` per source, in input order.

    ``batch_tokens`` 0 (the default): length-sorted batches of ``batch_size`` inputs; N: a token
    budget of N encoder-input tokens per batch (:func:`plan_batches`). On a 2-core CPU a budget of
    ``batch_size`` x the mean input length decoded no faster than fixed batches (0.88-0.99x on the
    embedded default's generators, bench/bench_candidates.py), so it is not the default."""
    src_len, in_len = input_lengths(gen, sources, memories)
    batches = plan_batches(src_len, in_len, batch_size, batch_tokens)
    out: list = [None] * len(sources)
    t0 = time.time()
    done = 0
    for b, idx in enumerate(batches):
        res = gen.generate(
            [sources[i] for i in idx],
            [memories[i] for i in idx] if memories is not None else None,
            num_beams=num_beams,
            num_return_sequences=num_return_sequences,
            # the source lengths are known: the batch's budget without tokenising it again
            max_new_tokens=gen.output_budget(max(src_len[i] for i in idx), max_length_ratio),
            length_penalty=length_penalty,
        )
        for i, r in zip(idx, res, strict=True):
            out[i] = ([one_line(t) for t, _ in r], [float(sc) for _, sc in r])
        done += len(idx)
        if log_every and (b + 1) % log_every == 0:
            LOG.info(
                "%d/%d inputs decoded (%.1f inputs/s)",
                done,
                len(sources),
                done / (time.time() - t0),
            )
    return out


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m relift.selfmem.generator.candidates",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--generator", required=True, type=Path, help="generator folder (train_generator)"
    )
    ap.add_argument("--data", required=True, type=Path, help="split to decode (JSONL)")
    ap.add_argument(
        "--memory", type=Path, help="memories of that split, one per line (not for vanilla)"
    )
    ap.add_argument(
        "--match",
        type=Path,
        help="fuzzy-match scores of those memories, one per line (memory/<split>.match.txt): "
        "needed by a generator trained with a memory recipe (threshold, marker)",
    )
    ap.add_argument(
        "--memory-sources",
        type=Path,
        help="those memories' own sources, one per line (memory/<split>.source.txt): needed "
        "by a generator trained with memory_source",
    )
    ap.add_argument("--src-field", default="src")
    ap.add_argument("--trg-field", default="trg")
    ap.add_argument("--length-penalty", type=float, default=1.0)
    ap.add_argument(
        "--max-length-ratio",
        type=float,
        default=2.0,
        help="output budget: ratio x longest source of the batch + 10 tokens, capped by the "
        "generator's max_target_length (0 = the cap)",
    )
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ap.add_argument("--output-jsonl", required=True, type=Path)
    ap.add_argument("--output-txt", required=True, type=Path)
    add_settings(ap, CandidatesSettings)
    return ap


def _check_settings(st: CandidatesSettings) -> None:
    if st.num_beams < 1 or not 1 <= st.num_return_sequences <= st.num_beams:
        raise InputError(
            f"need 1 <= num_return_sequences ({st.num_return_sequences}) <= num_beams "
            f"({st.num_beams})"
        )
    if st.batch_size < 1:
        raise InputError("batch_size must be >= 1")
    if st.max_examples < 0:
        raise InputError("max_examples must be >= 0")


def _load_generator(args: argparse.Namespace):
    """The generator on ``--device`` (auto: cuda when available), with ``--threads``."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = (
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )

    from relift.selfmem.generator.model import Generator

    return Generator.load(args.generator, device=device)


def _inputs(args: argparse.Namespace, gen, max_examples: int) -> tuple[list[str], list[str] | None]:
    """The sources and the memories (as the generator reads them; None for vanilla) to decode,
    the first ``max_examples`` of them (0 = all)."""
    split = load_split(args.data, args.src_field, args.trg_field)
    memories = None
    if gen.spec.arch != "vanilla":
        if args.memory is None:
            raise InputError(f"the {gen.spec.arch} generator needs --memory")
        memories = load_memory(args.memory, split)
        scores = read_scores(args.match, len(split)) if args.match else None
        msrc = read_sources(args.memory_sources, len(split)) if args.memory_sources else None
        memories = gen.memory_view(memories, scores, msrc)
    sources = split.sources
    if max_examples:
        sources = sources[:max_examples]
        memories = memories[:max_examples] if memories is not None else None
    return sources, memories


def write_candidates(res: list, output_jsonl: Path, output_txt: Path) -> None:
    """``--output-jsonl`` (one record per input) and ``--output-txt`` (K lines per input)."""
    write_jsonl_atomic(
        output_jsonl,
        (
            {"id": i, "candidates": c, "scores": [round(x, 6) for x in s]}
            for i, (c, s) in enumerate(res)
        ),
    )
    with atomic_path(output_txt) as tmp:
        tmp.write_text("".join(t + "\n" for c, _ in res for t in c), encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    st = settings_from_args(args, CandidatesSettings)
    _check_settings(st)
    gen = _load_generator(args)
    sources, memories = _inputs(args, gen, st.max_examples)
    t0 = time.time()
    res = generate_candidates(
        gen,
        sources,
        memories,
        st.num_beams,
        st.num_return_sequences,
        st.batch_size,
        args.length_penalty,
        args.max_length_ratio,
    )
    dt = time.time() - t0
    write_candidates(res, args.output_jsonl, args.output_txt)
    LOG.info(
        "%s: %d inputs x %d candidates (beam %d) in %.1fs (%.2f inputs/s) -> %s",
        gen.spec.arch,
        len(res),
        st.num_return_sequences,
        st.num_beams,
        dt,
        len(res) / max(dt, 1e-9),
        args.output_jsonl,
    )


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
