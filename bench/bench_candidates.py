"""Candidate generation: sentences/s of relift's beam decoding against plain HF generate.

    python bench/bench_candidates.py [--generator results/selfmem/tm_ende/generator/joint]
        [--data results/data/tm/dev.jsonl] [--memory results/selfmem/tm_ende/memory/dev.txt]
        [--n 200] [--num-beams 4] [--batch-size 16]

relift (``relift.selfmem.generator.candidates.generate_candidates``): inputs sorted by length so that a
batch pads little, a per-batch token budget from the source length, a beam-search cache that
does not reorder the cross-attention keys/values (shared by the beams of one input), the copy
head's keys computed once per call, bf16 on CUDA. The baseline is
the straightforward loop: batches in input order, ``model.generate`` with the generator's
fixed ``max_target_length`` budget. Both decode the same inputs with the same beams and return
the same number of candidates. On a GPU, compare with the HF generate figure of
bench/ANCHORS.md (53 sentences/s, Transformer-base, beam 50 returning 50):
the model and beam differ, so the printed ratio is a rough reference only.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from relift.encoders import pick_device
from relift.selfmem.data import load_memory, load_split, one_line
from relift.selfmem.generator.candidates import generate_candidates, input_lengths
from relift.selfmem.generator.model import Generator

ANCHOR_SENT_PER_S = 53.0


def plain_hf_generate(gen, src, mem, k: int, batch_size: int) -> list:
    """The baseline: batches in input order, transformers' ``generate`` with its own cache
    handling (every layer's cross-attention cache reordered at every step), the copy head's keys
    recomputed at every step, and the generator's fixed ``max_target_length`` budget."""
    from relift.selfmem.generator.model import CopyMBartForConditionalGeneration

    CopyMBartForConditionalGeneration.cache_copy_keys = False
    gen.model.eval()
    out = []
    try:
        for s in range(0, len(src), batch_size):
            enc = gen.encode_inputs(
                src[s : s + batch_size], mem[s : s + batch_size] if mem else None
            )
            with torch.no_grad():
                res = gen.model.generate(
                    **{n: v.to(gen.device) for n, v in enc.items()},
                    num_beams=k,
                    num_return_sequences=k,
                    do_sample=False,
                    max_new_tokens=gen.spec.max_target_length + 1,
                    early_stopping=True,
                    output_scores=True,
                    return_dict_in_generate=True,
                )
            texts = gen.decode(res.sequences)
            out.extend([texts[i * k : (i + 1) * k] for i in range(len(texts) // k)])
    finally:
        CopyMBartForConditionalGeneration.cache_copy_keys = True
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--generator", type=Path, default=Path("results/selfmem/tm_ende/generator/joint")
    )
    ap.add_argument("--data", type=Path, default=Path("results/data/tm/dev.jsonl"))
    ap.add_argument("--memory", type=Path, default=Path("results/selfmem/tm_ende/memory/dev.txt"))
    ap.add_argument("--n", type=int, default=200, help="inputs (default: the demo's dev split)")
    ap.add_argument("--num-beams", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()

    gen = Generator.load(args.generator, device=pick_device(args.device))
    split = load_split(args.data)
    mems = load_memory(args.memory, split) if gen.spec.arch != "vanilla" else None
    src = split.sources[: args.n]
    mem = mems[: args.n] if mems is not None else None
    k = args.num_beams
    print(f"{gen.spec.arch} generator on {gen.device}; {len(src)} inputs, beam {k} returning {k}")

    generate_candidates(gen, src[:8], mem[:8] if mem else None, k, k, args.batch_size, log_every=0)
    t0 = time.perf_counter()
    ours = generate_candidates(gen, src, mem, k, k, args.batch_size, log_every=0)
    t_ours = time.perf_counter() - t0
    # the token-budget option: batch_size x the mean encoder-input length per batch
    _, in_len = input_lengths(gen, src, mem)
    budget = args.batch_size * max(1, round(sum(in_len) / len(in_len)))
    t0 = time.perf_counter()
    budgeted = generate_candidates(
        gen, src, mem, k, k, args.batch_size, log_every=0, batch_tokens=budget
    )
    t_budget = time.perf_counter() - t0

    t0 = time.perf_counter()
    base = plain_hf_generate(gen, src, mem, k, args.batch_size)
    t_base = time.perf_counter() - t0
    if gen.device.type == "cuda":
        torch.cuda.synchronize()

    def same(res) -> float:
        return sum(o[0][0] == one_line(b[0]) for o, b in zip(res, base, strict=True)) / len(src)

    print(f"{'decoder':40s} {'sentences/s':>12s} {'ratio':>7s}")
    print(f"{'plain HF generate (input order)':40s} {len(src) / t_base:12.2f} {1.0:6.2f}x")
    print(
        f"{'relift (length-sorted batches, default)':40s} {len(src) / t_ours:12.2f} "
        f"{t_base / t_ours:6.2f}x"
    )
    print(
        f"{f'relift, token budget {budget}/batch':40s} {len(src) / t_budget:12.2f} "
        f"{t_base / t_budget:6.2f}x"
    )
    print(
        f"same best candidate as plain HF generate, of {len(src)} inputs: {same(ours):.1%} "
        f"(default), {same(budgeted):.1%} (token budget)"
    )
    if gen.device.type == "cuda":
        print(
            f"vs the HF generate figure of bench/ANCHORS.md ({ANCHOR_SENT_PER_S:.0f}/s): {len(src) / t_ours / ANCHOR_SENT_PER_S:.2f}x"
        )


if __name__ == "__main__":
    main()
