"""Generate continuations with a ReGPT model → JSONL.

Batched, KV-cached decoding: prompts are left-padded, the prefix runs once, and every new phrase
costs one decoder step for the whole batch. At each step the query is scored against the WHOLE
phrase table (exact maximum inner product), then the next phrase is picked greedily
(``--strategy greedy``) or sampled (``--strategy sample``) with ``--temperature``, ``--top-k``
and/or ``--top-p`` (nucleus). A sequence stops at ``</s>`` or after ``--max-new`` phrases.
``<unk>`` and ``<s>`` are never generated.

Prompts: ``--prompt`` (repeatable), ``--prompts-file`` (a text file, one prompt per line, or
JSONL with a ``text`` field), or ``--from-split`` (the first ``--prompt-words`` words of
``--num-prompts`` evenly spaced chunks of a split). Each output line: ``id``, ``prompt``,
``continuation``, ``phrases`` (the generated phrase texts), ``phrase_ids``, ``stop``
(``eos``/``max_new``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from relift.io import LOG, InputError, read_jsonl, run_cli, write_jsonl_atomic
from relift.regpt import data as D


def filter_logits(scores: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Set to -inf everything outside the top-k and outside the smallest top-p nucleus."""
    scores = scores.clone()
    if top_k and top_k < scores.shape[-1]:
        kth = torch.topk(scores, top_k, dim=-1).values[..., -1:]
        scores[scores < kth] = -float("inf")
    if top_p < 1.0:
        sorted_s, idx = torch.sort(scores, descending=True, dim=-1)
        probs = sorted_s.softmax(-1)
        cum = probs.cumsum(-1)
        remove = cum - probs > top_p  # keep the first token that crosses top_p
        sorted_s[remove] = -float("inf")
        scores = torch.full_like(scores, -float("inf")).scatter(-1, idx, sorted_s)
    return scores


@torch.no_grad()
def generate(
    model,
    prompts: list[list[int]],
    max_new: int = 32,
    strategy: str = "greedy",
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    seed: int = 0,
    eos_id: int = D.EOS,
    banned: tuple[int, ...] = (0, D.BOS),
    use_cache: bool = True,
    pad_id: int = 0,
) -> tuple[list[list[int]], list[str]]:
    """Continue each prompt (ids, ``<s>`` included); returns (new ids, stop reasons)."""
    model.eval()
    dev = model.phrase_table.device
    B = len(prompts)
    n = max(len(p) for p in prompts)
    ids = torch.full((B, n), pad_id, dtype=torch.long, device=dev)
    mask = torch.zeros((B, n), dtype=torch.long, device=dev)
    for i, p in enumerate(prompts):
        ids[i, n - len(p) :] = torch.tensor(p, dtype=torch.long)
        mask[i, n - len(p) :] = 1
    gen = torch.Generator(device="cpu").manual_seed(seed)
    out = [[] for _ in range(B)]
    stop = ["max_new"] * B
    done = torch.zeros(B, dtype=torch.bool, device=dev)
    cache = None
    cur_ids, cur_mask = ids, mask
    for _ in range(max_new):
        pos = (cur_mask.cumsum(-1) - 1).clamp(min=0)
        if use_cache:
            step_ids = cur_ids if cache is None else cur_ids[:, -1:]
            step_pos = pos if cache is None else pos[:, -1:]
            q, cache = model(
                step_ids,
                attention_mask=cur_mask,
                position_ids=step_pos,
                past_key_values=cache,
                use_cache=True,
                return_cache=True,
            )
        else:
            q = model(cur_ids, attention_mask=cur_mask, position_ids=pos)
        scores = model.score_all(q[:, -1].float())
        if banned:
            scores[:, list(banned)] = -float("inf")
        if strategy == "greedy":
            nxt = scores.argmax(-1)
        else:
            s = filter_logits(scores / max(temperature, 1e-6), top_k, top_p)
            nxt = torch.multinomial(s.softmax(-1).cpu(), 1, generator=gen)[:, 0].to(dev)
        nxt = torch.where(done, torch.full_like(nxt, eos_id), nxt)
        for i in range(B):
            if not done[i]:
                if int(nxt[i]) == eos_id:
                    stop[i] = "eos"
                else:
                    out[i].append(int(nxt[i]))
        done |= nxt == eos_id
        if bool(done.all()):
            break
        cur_ids = torch.cat([cur_ids, nxt[:, None]], 1)
        cur_mask = torch.cat([cur_mask, torch.ones_like(nxt)[:, None]], 1)
    return out, stop


def read_prompts(args) -> list[str]:
    prompts = list(args.prompt or [])
    if args.prompts_file:
        path = Path(args.prompts_file)
        if path.suffix == ".jsonl":
            prompts += [rec["text"] for _, rec in read_jsonl(path, ("text",))]
        else:
            from relift.io import require_file

            prompts += [
                x for x in require_file(path).read_text(encoding="utf-8").splitlines() if x.strip()
            ]
    if args.from_split:
        from relift.regpt.evaluate import pick_chunks

        chunks = pick_chunks(D.load_texts(args.from_split), args.num_prompts)
        prompts += [" ".join(c.split()[: args.prompt_words]) for c in chunks]
    if not prompts:
        raise InputError("no prompts: give --prompt, --prompts-file or --from-split")
    return prompts


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m relift.regpt.generate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--model", required=True, type=Path, help="ReGPT model folder")
    ap.add_argument("--phrase-embeddings", type=Path, help="default: the path in config.json")
    ap.add_argument("--prompt", action="append", help="a prompt (repeatable)")
    ap.add_argument("--prompts-file", type=Path, help="text (a prompt per line) or .jsonl (text)")
    ap.add_argument("--from-split", type=Path, help="take prompts from a split folder")
    ap.add_argument("--num-prompts", type=int, default=8, help="--from-split: chunks used")
    ap.add_argument("--prompt-words", type=int, default=8, help="--from-split: words per prompt")
    ap.add_argument("--max-new", type=int, default=32, help="phrases to generate at most")
    ap.add_argument("--strategy", choices=("greedy", "sample"), default="greedy")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--top-k", type=int, default=0, help="sample among the k best (0 = all)")
    ap.add_argument("--top-p", type=float, default=1.0, help="nucleus mass (1 = off)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--output", required=True, type=Path, help="JSONL to write")
    args = ap.parse_args(argv)
    if args.max_new < 1 or not (0 < args.top_p <= 1) or args.top_k < 0 or args.temperature <= 0:
        raise InputError("need --max-new >= 1, 0 < --top-p <= 1, --top-k >= 0, --temperature > 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = (
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    from transformers import AutoTokenizer

    from relift.regpt.model import ReGPT

    model = ReGPT.from_pretrained(args.model, args.phrase_embeddings, device=device)
    tok = AutoTokenizer.from_pretrained(str(args.model))
    prompts = read_prompts(args)
    recs = []
    t0 = time.perf_counter()
    n_new = 0
    for s in range(0, len(prompts), args.batch_size):
        part = prompts[s : s + args.batch_size]
        enc = [[D.BOS] + list(x) for x in D.tokenize(part, tok)]
        new, stops = generate(
            model,
            enc,
            args.max_new,
            args.strategy,
            args.temperature,
            args.top_k,
            args.top_p,
            args.seed + s,
        )
        for k, (p, ids, why) in enumerate(zip(part, new, stops)):
            n_new += len(ids)
            recs.append(
                {
                    "id": s + k,
                    "prompt": p,
                    "continuation": tok.decode(ids),
                    "phrases": [tok.decode([i]) for i in ids],
                    "phrase_ids": ids,
                    "stop": why,
                    "strategy": args.strategy,
                }
            )
    dt = time.perf_counter() - t0
    write_jsonl_atomic(args.output, recs)
    LOG.info(
        "%d prompts, %d phrases in %.1fs (%.1f phrases/s) -> %s",
        len(recs),
        n_new,
        dt,
        n_new / max(dt, 1e-9),
        args.output,
    )


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
