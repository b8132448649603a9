"""The Selfmem loop (paper Algorithm 1) with Top-B memory beams and augmented memory: the CLI.

The generator G is frozen. Iteration 0 is the BM25 memory (part 1); for k >= 1

* ``memory_k``     = the selector's choice among ``candidates_{k-1}`` (``select``),
* ``candidates_k`` = G(x, memory_k), beam N returning K (``generate``, one job per beam slot),
* ``hypotheses_k`` = G(x, memory_k), the final beam (5, 1 returned) (``generate``; when the
  pools are decoded with the final beam, the best candidate of slot 0's pool is that very
  hypothesis and ``top1`` takes it instead of decoding again),

and dev and test are scored at every iteration (``score``). Everything in this module except
``generate`` is torch-free (the selection, the oracle scores and the scoring are light jobs).

The memory operations live in :mod:`relift.selfmem.loop.topb` (Top-B memory beam, augmented memory)
and :mod:`relift.selfmem.loop.oracle` (the oracle's Δ scores); the files of an iteration and their
formats in :mod:`relift.selfmem.loop.formats`.

``generate``'s decoding (:class:`relift.selfmem.loop.settings.LoopSettings`) comes as
``--settings JSON`` and/or one flag each.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from relift.io import LOG, InputError, run_cli, write_json_atomic
from relift.selfmem.loop.formats import (
    Beam,
    read_beams,
    read_pools,
    read_scores,
    same_splits,
    slot_files,
    split_map,
    write_beams,
    write_lines,
    write_pools,
    write_scores,
)
from relift.selfmem.loop.oracle import oracle_scores
from relift.selfmem.loop.settings import LoopSettings
from relift.selfmem.loop.topb import MODES, TokenCounter, combine_memory, select_topb
from relift.settings import add_settings, settings_from_args


# --------------------------------------------------------------------------- subcommands
def cmd_iter0(args) -> None:
    """Iteration 0: the BM25 memory as a one-slot beam, its candidate pool (part 1's candidates,
    first ``pool_size``) and its hypotheses (part 1's), copied into the iteration folder."""
    from relift.io import read_lines
    from relift.selfmem.data import load_split

    data = split_map(args.data, "--data")
    memory = split_map(args.memory, "--memory")
    cands = split_map(args.candidates, "--candidates")
    hyps = split_map(args.hypotheses, "--hypotheses")
    out_dir = Path(args.out_dir)
    for split in same_splits(
        {"--data": data, "--memory": memory, "--candidates": cands, "--hypotheses": hyps},
        ("--data", "--memory", "--candidates", "--hypotheses"),
    ):
        n = len(load_split(data[split], args.src_field, args.trg_field))
        mem = read_lines(memory[split], f"{split} memory", expected=n)
        pools = read_pools(cands[split], n, args.pool_size)
        hyp = read_lines(hyps[split], f"{split} hypotheses", expected=n)
        write_beams(out_dir / f"beams.{split}.jsonl", [[Beam(memory=m)] for m in mem])
        write_lines(out_dir / f"memory.{split}.txt", mem)
        write_pools(out_dir / "beam0" / f"candidates.{split}.jsonl", pools)
        write_lines(out_dir / f"hypotheses.{split}.txt", hyp)
        LOG.info("iteration 0 (%s): %d inputs, pools of <= %d", split, n, max(map(len, pools)))


def cmd_oracle_scores(args) -> None:
    """ORACLE scores: Δ (sentence BLEU / ROUGE mix) of every candidate against the reference."""
    from relift.selfmem.data import load_split

    data = split_map(args.data, "--data")
    cands = split_map(args.candidates, "--candidates")
    outs = split_map(args.output, "--output")
    for split in same_splits(
        {"--data": data, "--candidates": cands, "--output": outs},
        ("--data", "--candidates", "--output"),
    ):
        refs = load_split(data[split], args.src_field, args.trg_field).targets
        pools = read_pools(cands[split], len(refs))
        write_scores(outs[split], oracle_scores(pools, refs, args.metric))
        LOG.info("ORACLE scores of %d %s pools -> %s", len(pools), split, outs[split])


def _combiner(args):
    """``combine(previous memory, selected candidate)`` of ``--memory-mode`` (replace/augment,
    within ``--budget`` generator tokens)."""
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

    return combine


def _check_pool_sizes(paths: list[str], slot_pools: list, beam_b: int) -> None:
    """Top-B needs at least B candidates in every pool."""
    for path, sp in zip(paths, slot_pools, strict=True):
        for i, pool in enumerate(sp):
            if len(pool) < beam_b:
                raise InputError(
                    f"Top-B {beam_b} is larger than the {len(pool)} candidates of "
                    f"this pool (B must not exceed num_return_sequences)",
                    path=path,
                    line=i + 1,
                    field="candidates",
                )


def _slot_pools(split: str, beams_path, parents, cand_paths, score_paths, beam_b: int):
    """The candidate pools and their scores per input and memory slot (``[input][slot]``), read
    from one file per slot and checked against the beams of iteration k-1."""
    n_slots = len(parents[0])
    if len(cand_paths) != n_slots or len(score_paths) != n_slots:
        raise InputError(
            f"{split}: {n_slots} memory slots in {beams_path} but "
            f"{len(cand_paths)} --candidates and {len(score_paths)} --scores files"
        )
    slot_pools = [read_pools(p, len(parents)) for p in cand_paths]
    _check_pool_sizes(cand_paths, slot_pools, beam_b)
    slot_scores = [read_scores(s, sp) for s, sp in zip(score_paths, slot_pools, strict=True)]
    pools = [[slot_pools[s][i] for s in range(n_slots)] for i in range(len(parents))]
    sc = [[slot_scores[s][i] for s in range(n_slots)] for i in range(len(parents))]
    for i, p in enumerate(parents):
        if len(p) != n_slots:
            raise InputError(f"input {i} has {len(p)} slots, expected {n_slots}", path=beams_path)
    return pools, sc


def cmd_select(args) -> None:
    """Memory of iteration k from the beams, pools and scores of iteration k-1 (no references)."""
    beams = split_map(args.beams, "--beams")
    cands = slot_files(args.candidates, "--candidates")
    scores = slot_files(args.scores, "--scores")
    out_beams = split_map(args.out_beams, "--out-beams")
    out_mem = split_map(args.out_memory, "--out-memory")
    splits = same_splits(
        {
            "--beams": beams,
            "--candidates": cands,
            "--scores": scores,
            "--out-beams": out_beams,
            "--out-memory": out_mem,
        },
        ("--beams", "--candidates", "--scores", "--out-beams", "--out-memory"),
    )
    combine = _combiner(args)
    for split in splits:
        parents = read_beams(beams[split])
        pools, sc = _slot_pools(
            split, beams[split], parents, cands[split], scores[split], args.beam_b
        )
        new = select_topb(parents, pools, sc, args.beam_b, combine)
        write_beams(out_beams[split], new)
        write_lines(out_mem[split], [b[0].memory for b in new])
        changed = sum(b[0].memory != p[0].memory for b, p in zip(new, parents, strict=True))
        LOG.info(
            "%s: %d inputs, %d -> %d slots (%s), best memory changed for %d",
            split,
            len(new),
            len(parents[0]),
            args.beam_b,
            args.memory_mode,
            changed,
        )


def _generate_files(args) -> tuple[list[str], dict[str, dict]]:
    """The splits to decode and, per flag, its files by split (``data``, ``beams``, ``memory``,
    ``match``, ``out_jsonl``, ``out_txt``)."""
    files = {
        "data": split_map(args.data, "--data"),
        "beams": split_map(args.beams, "--beams"),
        "memory": split_map(args.memory, "--memory"),
        "match": split_map(args.match, "--match"),
        "out_jsonl": split_map(args.output_jsonl, "--output-jsonl"),
        "out_txt": split_map(args.output_txt, "--output-txt"),
    }
    if bool(files["beams"]) == bool(files["memory"]):
        raise InputError("give either --beams (with --slot) or --memory")
    if not files["out_jsonl"] and not files["out_txt"]:
        raise InputError("give --output-jsonl and/or --output-txt")
    splits = same_splits(
        {
            "--data": files["data"],
            "--beams": files["beams"],
            "--memory": files["memory"],
            "--output-jsonl": files["out_jsonl"],
            "--output-txt": files["out_txt"],
        },
        ("--data",),
    )
    return splits, files


def _split_memories(args, gen, files: dict, split: str, sp) -> list[str]:
    """The memory of every input of a split (slot ``--slot`` of its beams, or its memory file)
    as the generator reads it (its memory recipe, with the fuzzy-match scores). A loop memory
    is the generator's own output for the input, so its source is the input's source."""
    from relift.selfmem.data import load_memory
    from relift.selfmem.match import read_scores as read_match_scores

    if files["beams"]:
        slots = read_beams(files["beams"][split], len(sp))
        if any(args.slot >= len(b) for b in slots):
            raise InputError(f"slot {args.slot} does not exist", path=files["beams"][split])
        mems = [b[args.slot].memory for b in slots]
    else:
        mems = load_memory(files["memory"][split], sp)
    match = files["match"]
    scores = read_match_scores(match[split], len(sp)) if split in match else None
    return gen.memory_view(mems, scores, list(sp.sources))


def _write_generated(files: dict, split: str, res: list) -> None:
    """The pools (JSONL, with scores) and/or the best candidates (text) of a split."""
    if split in files["out_jsonl"]:
        write_pools(
            files["out_jsonl"][split],
            [c for c, _ in res],
            [[round(x, 6) for x in s] for _, s in res],
        )
    if split in files["out_txt"]:
        write_lines(files["out_txt"][split], [c[0] for c, _ in res])


def cmd_generate(args) -> None:
    """Decode every split with the frozen generator and the memory of one beam slot
    (``--beams``) or a memory file (``--memory``)."""
    import torch

    from relift.selfmem.data import load_split
    from relift.selfmem.generator.candidates import generate_candidates
    from relift.selfmem.generator.model import Generator

    st = settings_from_args(args, LoopSettings)
    if st.num_beams < 1 or not 1 <= st.num_return_sequences <= st.num_beams:
        raise InputError("need 1 <= num_return_sequences <= num_beams")
    if st.batch_size < 1:
        raise InputError("batch_size must be >= 1")
    splits, files = _generate_files(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    from relift.encoders import pick_device

    gen = Generator.load(args.generator, device=pick_device(args.device))
    for split in splits:
        sp = load_split(files["data"][split], args.src_field, args.trg_field)
        mems = _split_memories(args, gen, files, split, sp)
        t0 = time.time()
        res = generate_candidates(
            gen,
            sp.sources,
            mems if gen.spec.arch != "vanilla" else None,
            st.num_beams,
            st.num_return_sequences,
            st.batch_size,
        )
        _write_generated(files, split, res)
        LOG.info(
            "%s: %d inputs x %d (beam %d) in %.1fs",
            split,
            len(res),
            st.num_return_sequences,
            st.num_beams,
            time.time() - t0,
        )


def cmd_top1(args) -> None:
    """The best (first) candidate of every pool: the hypothesis of a pool decoded with the final
    beam (the same beam search as a decode returning one sequence)."""
    cands = split_map(args.candidates, "--candidates")
    outs = split_map(args.output_txt, "--output-txt")
    for split in same_splits(
        {"--candidates": cands, "--output-txt": outs}, ("--candidates", "--output-txt")
    ):
        pools = read_pools(cands[split])
        write_lines(outs[split], [p[0] for p in pools])
        LOG.info("%s: %d hypotheses (best candidate of each pool)", split, len(pools))


def cmd_score(args) -> None:
    """Corpus scores of the hypotheses and of the memory itself, per split."""
    from relift.io import read_lines
    from relift.score import parse_metrics, score
    from relift.selfmem.data import load_split

    data = split_map(args.data, "--data")
    hyps = split_map(args.hyp, "--hyp")
    mems = split_map(args.memory, "--memory")
    out_h = split_map(args.out_hyp, "--out-hyp")
    out_m = split_map(args.out_memory, "--out-memory")
    metrics = parse_metrics(args.metrics)
    for split in same_splits(
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
        h = score(read_lines(hyps[split], f"{split} hypotheses", expected=len(refs)), refs, metrics)
        m = score(read_lines(mems[split], f"{split} memory", expected=len(refs)), refs, metrics)
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


_MANY = {"action": "append", "metavar": "SPLIT=PATH"}  # a repeatable SPLIT=PATH flag


def _add_iter0_args(sub) -> None:
    p = sub.add_parser("iter0", help="iteration 0 (BM25 memory) from part 1's outputs")
    _common(p)
    p.add_argument("--data", required=True, **_MANY)
    p.add_argument("--memory", required=True, **_MANY)
    p.add_argument("--candidates", required=True, **_MANY)
    p.add_argument("--hypotheses", required=True, **_MANY)
    p.add_argument("--pool-size", type=int, default=0, help="candidates kept per pool (0 = all)")
    p.add_argument("--out-dir", required=True, type=Path)
    p.set_defaults(func=cmd_iter0)


def _add_oracle_scores_args(sub) -> None:
    p = sub.add_parser("oracle-scores", help="ORACLE: Δ of each candidate vs the reference")
    _common(p)
    p.add_argument("--data", required=True, **_MANY)
    p.add_argument("--candidates", required=True, **_MANY)
    p.add_argument("--metric", choices=("bleu", "rouge"), default="bleu")
    p.add_argument("--output", required=True, **_MANY)
    p.set_defaults(func=cmd_oracle_scores)


def _add_select_args(sub) -> None:
    p = sub.add_parser("select", help="memories of iteration k (Top-B, replace/augment)")
    p.add_argument("--beams", required=True, **_MANY, help="beams of iteration k-1")
    p.add_argument(
        "--candidates",
        required=True,
        **_MANY,
        help="pools of iteration k-1, once per slot in order",
    )
    p.add_argument("--scores", required=True, **_MANY, help="their scores, once per slot in order")
    p.add_argument("--beam-b", type=int, default=1, help="memories kept per input (B)")
    p.add_argument("--memory-mode", choices=MODES, default="replace")
    p.add_argument("--separator", default=" ", help="augment: text between memories")
    p.add_argument(
        "--budget", type=int, default=0, help="augment: generator tokens kept (tail; 0 = all)"
    )
    p.add_argument("--tokenizer", type=Path, help="generator (or tokenizer) folder: the budget")
    p.add_argument("--out-beams", required=True, **_MANY)
    p.add_argument("--out-memory", required=True, **_MANY)
    p.set_defaults(func=cmd_select)


def _add_generate_args(sub) -> None:
    p = sub.add_parser("generate", help="decode with the frozen generator")
    _common(p)
    p.add_argument("--generator", required=True, type=Path)
    p.add_argument("--data", required=True, **_MANY)
    p.add_argument("--beams", **_MANY, help="beams file per split (memory of --slot)")
    p.add_argument("--slot", type=int, default=0)
    p.add_argument("--memory", **_MANY, help="memory file per split")
    p.add_argument(
        "--match",
        **_MANY,
        help="fuzzy-match scores of each split's retrieved memory (memory/<split>.match.txt): "
        "a generator with a memory recipe reads every memory of that example with that score",
    )
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--output-jsonl", **_MANY)
    p.add_argument("--output-txt", **_MANY)
    add_settings(p, LoopSettings)
    p.set_defaults(func=cmd_generate)


def _add_top1_args(sub) -> None:
    p = sub.add_parser("top1", help="hypotheses = the best candidate of each pool")
    p.add_argument("--candidates", required=True, **_MANY)
    p.add_argument("--output-txt", required=True, **_MANY)
    p.set_defaults(func=cmd_top1)


def _add_score_args(sub) -> None:
    p = sub.add_parser("score", help="corpus scores of hypotheses and memory")
    _common(p)
    p.add_argument("--data", required=True, **_MANY)
    p.add_argument("--hyp", required=True, **_MANY)
    p.add_argument("--memory", required=True, **_MANY)
    p.add_argument("--metrics", default="bleu,chrf,ter")
    p.add_argument("--out-hyp", required=True, **_MANY)
    p.add_argument("--out-memory", required=True, **_MANY)
    p.set_defaults(func=cmd_score)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m relift.selfmem.loop.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="command", required=True)
    for add in (
        _add_iter0_args,
        _add_oracle_scores_args,
        _add_select_args,
        _add_generate_args,
        _add_top1_args,
        _add_score_args,
    ):
        add(sub)
    return ap


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
