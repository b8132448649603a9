"""Training throughput of ReGPT against a plain LlamaForCausalLM of the same size, same run.

Both models get the same decoder stack, batch, sequence length, optimizer (AdamW; fused on
CUDA) and precision (bf16 autocast on CUDA, fp32 on CPU). A ReGPT step is forward + stage-1
in-batch contrastive loss (gold phrases + 1 guarded pool negative each, deduplicated; scored
against the frozen phrase table) + backward + optimizer step; a baseline step is forward + full
softmax cross-entropy over its token vocabulary + backward + step. Prints tokens/s of each and
the ratio ReGPT / baseline (target >= 0.85).

Sizes:
  --size tiny    (default, CPU-friendly) 4 layers, d 256, seq 128, batch 16; table 32,000 x 384
  --size anchor  bench/ANCHORS.md's LM-training line: 12 layers, d 768, seq 1024, batch 16
                 (134M parameters with a 32k vocabulary) on CUDA; table 1,000,000 x 768 (paper)

  python bench/bench_regpt_train.py [--size tiny|anchor] [--steps N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

SIZES = {
    "tiny": {
        "layers": 4,
        "hidden": 256,
        "heads": 4,
        "inter": 688,
        "seq": 128,
        "batch": 16,
        "phrases": 32_000,
        "dim": 384,
        "vocab": 32_000,
    },
    "anchor": {
        "layers": 12,
        "hidden": 768,
        "heads": 12,
        "inter": 2048,
        "seq": 1024,
        "batch": 16,
        "phrases": 1_000_000,
        "dim": 768,
        "vocab": 32_000,
    },
}


def bench(step_fn, steps: int, warmup: int, sync) -> float:
    for _ in range(warmup):
        step_fn()
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        step_fn()
    sync()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size", choices=sorted(SIZES), default="tiny")
    ap.add_argument(
        "--steps", type=int, default=0, help="timed steps (default: 10 tiny, 30 anchor)"
    )
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--json", help="also write the numbers here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    s = SIZES[args.size]
    cuda = torch.cuda.is_available()
    if args.size == "anchor" and not cuda:
        raise SystemExit("--size anchor needs CUDA (bench/ANCHORS.md holds an H100 figure)")
    dev = torch.device("cuda" if cuda else "cpu")
    steps = args.steps or (30 if args.size == "anchor" else 10)
    amp = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if cuda
        else torch.autocast("cpu", enabled=False)
    )
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True

    from transformers import LlamaForCausalLM

    from relift.regpt.losses import ReGPTLoss
    from relift.regpt.model import ReGPT, llama_config

    g = torch.Generator().manual_seed(0)
    table = torch.randn(s["phrases"], s["dim"], generator=g).to(dev)
    pool_ids = np.random.default_rng(0).integers(
        0, s["phrases"], (s["phrases"], 101), dtype=np.int32
    )
    pool_scores = np.random.default_rng(1).uniform(0, 1, (s["phrases"], 101)).astype(np.float32)
    B, T = s["batch"], s["seq"]
    phr = torch.randint(3, s["phrases"], (B, T + 1), generator=g).to(dev)
    tok = torch.randint(3, s["vocab"], (B, T + 1), generator=g).to(dev)
    mask = torch.ones(B, T, dtype=torch.long, device=dev)
    fused = {"fused": True} if cuda else {}
    results = {}

    torch.manual_seed(0)
    cfg = llama_config(s["hidden"], s["layers"], s["heads"], s["inter"], max(T, 16))
    regpt = ReGPT(cfg, table).to(dev).train()
    opt = torch.optim.AdamW(regpt.parameters(), lr=1e-4, **fused)
    loss_fn = ReGPTLoss("inbatch", pool_ids, pool_scores, s["phrases"], negatives=1)
    batch = {"input_ids": phr[:, :-1], "attention_mask": mask, "labels": phr[:, 1:]}
    step_no = [0]

    def regpt_step():
        with amp:
            loss, _ = loss_fn(regpt, batch, step_no[0])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        step_no[0] += 1

    dt = bench(regpt_step, steps, args.warmup, sync)
    results["regpt_tokens_per_s"] = B * T * steps / dt
    results["regpt_params"] = sum(p.numel() for p in regpt.parameters())
    regpt = opt = None  # free memory before the baseline
    if cuda:
        torch.cuda.empty_cache()

    torch.manual_seed(0)
    lm = (
        LlamaForCausalLM(
            llama_config(
                s["hidden"], s["layers"], s["heads"], s["inter"], max(T, 16), vocab_size=s["vocab"]
            )
        )
        .to(dev)
        .train()
    )
    opt = torch.optim.AdamW(lm.parameters(), lr=1e-4, **fused)

    def lm_step():
        with amp:
            logits = lm(input_ids=tok[:, :-1], attention_mask=mask).logits
            loss = torch.nn.functional.cross_entropy(
                logits.float().flatten(0, 1), tok[:, 1:].flatten()
            )
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    dt = bench(lm_step, steps, args.warmup, sync)
    results["baseline_tokens_per_s"] = B * T * steps / dt
    results["baseline_params"] = sum(p.numel() for p in lm.parameters())
    results["ratio"] = results["regpt_tokens_per_s"] / results["baseline_tokens_per_s"]
    results.update(
        size=args.size,
        device=torch.cuda.get_device_name() if cuda else "cpu",
        threads=torch.get_num_threads(),
        steps=steps,
        batch=B,
        seq=T,
    )
    print(
        f"{args.size} on {results['device']}: ReGPT {results['regpt_tokens_per_s']:,.0f} tokens/s "
        f"({results['regpt_params'] / 1e6:.1f}M params), LlamaForCausalLM "
        f"{results['baseline_tokens_per_s']:,.0f} tokens/s ({results['baseline_params'] / 1e6:.1f}M "
        f"params); ratio {results['ratio']:.3f} (target >= 0.85)"
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
