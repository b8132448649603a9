"""Candidate generation: sentences/s of relift's beam decoding against plain HF generate.

    python bench/bench_candidates.py [--generator results/selfmem/tm_ende/generator/joint]
        [--data results/data/tm/dev.jsonl] [--memory results/selfmem/tm_ende/memory/bm25/dev.txt]
        [--n 96] [--num-beams 4] [--batch-size 16]

relift (``relift.selfmem.candidates.generate_candidates``): inputs sorted by length so that a
batch pads little, a per-batch token budget from the source length, bf16 on CUDA. The baseline is
the straightforward loop: batches in input order, ``model.generate`` with the generator's
fixed ``max_target_length`` budget. Both decode the same inputs with the same beams and return
the same number of candidates. On a GPU, compare with the HF generate figure of
../shared/reference/gpu-anchors.md (53 sentences/s, Transformer-base, beam 50 returning 50):
the model and beam differ, so the printed ratio is a rough reference only.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from relift.encoders import pick_device
from relift.selfmem.candidates import generate_candidates
from relift.selfmem.data import load_memory, load_split
from relift.selfmem.model import Generator

ANCHOR_SENT_PER_S = 53.0


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--generator", type=Path, default=Path("results/selfmem/tm_ende/generator/joint")
    )
    ap.add_argument("--data", type=Path, default=Path("results/data/tm/dev.jsonl"))
    ap.add_argument(
        "--memory", type=Path, default=Path("results/selfmem/tm_ende/memory/bm25/dev.txt")
    )
    ap.add_argument("--n", type=int, default=96)
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

    t0 = time.perf_counter()
    base = []
    for s in range(0, len(src), args.batch_size):
        b_src = src[s : s + args.batch_size]
        b_mem = mem[s : s + args.batch_size] if mem else None
        res = gen.generate(
            b_src,
            b_mem,
            num_beams=k,
            num_return_sequences=k,
            max_new_tokens=gen.spec.max_target_length + 1,
        )
        base.extend(res)
    t_base = time.perf_counter() - t0
    if gen.device.type == "cuda":
        torch.cuda.synchronize()
    same = sum(o[0][0] == b[0][0] for o, b in zip(ours, base, strict=True)) / len(src)
    print(f"{'decoder':34s} {'sentences/s':>12s} {'ratio':>7s}")
    print(f"{'plain HF generate (input order)':34s} {len(src) / t_base:12.2f} {1.0:6.2f}x")
    print(
        f"{'relift (length-sorted, budgeted)':34s} {len(src) / t_ours:12.2f} {t_base / t_ours:6.2f}x"
    )
    print(f"same best candidate: {same:.0%}")
    if gen.device.type == "cuda":
        print(
            f"vs gpu-anchors HF generate figure ({ANCHOR_SENT_PER_S:.0f}/s): {len(src) / t_ours / ANCHOR_SENT_PER_S:.2f}x"
        )


if __name__ == "__main__":
    main()
