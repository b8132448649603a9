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
(``eos``/``max_new``/``max_bytes``). ``phrases`` are the phrase texts as in ``phrases.npy`` (a
phrase's leading space kept: ``' Python '``, not ``'Python '``).

``--baseline FOLDER`` (the token-level LM) decodes the same prompts with the same strategy,
temperature, top-k, top-p and seeds (``--baseline-output`` JSONL), and ``--metrics`` writes the
comparison as JSON: per model the bytes generated per second and per decoding step, distinct-2/3
(distinct word n-grams / all word n-grams, pooled over the samples), the repetition rate (share of
word 4-grams of a sample that repeat an earlier 4-gram of the same sample, averaged) and the bits
per byte of each model's continuations scored by BOTH models (continuation bits given the prompt
= bits(prompt + continuation) − bits(prompt), over the continuation's UTF-8 bytes).
``--max-bytes`` stops a sequence once its continuation has that many bytes (0 = off), so that
both models produce text of about the same length whatever their unit. ``--side-by-side`` writes a
CSV (prompt, ReGPT continuation, token-LM continuation) for the report.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from relift.encoders import pick_device
from relift.io import (
    LOG,
    InputError,
    read_jsonl,
    run_cli,
    write_json_atomic,
    write_jsonl_atomic,
)
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


def _step(model, ids, mask, pos, cache, use_cache):
    """One decoding step of ReGPT (scores over the phrase table) or a causal LM (logits)."""
    regpt = hasattr(model, "score_all")
    if use_cache:
        step_ids = ids if cache is None else ids[:, -1:]
        step_pos = pos if cache is None else pos[:, -1:]
        if regpt:
            q, cache = model(
                step_ids,
                attention_mask=mask,
                position_ids=step_pos,
                past_key_values=cache,
                use_cache=True,
                return_cache=True,
            )
            return model.score_all(q[:, -1].float()), cache
        out = model(
            input_ids=step_ids,
            attention_mask=mask,
            position_ids=step_pos,
            cache=cache,
            use_cache=True,
        )
        new_cache = getattr(out, "cache", None)
        if new_cache is None:
            new_cache = out.past_key_values
        return out.logits[:, -1].float(), new_cache
    if regpt:
        q = model(ids, attention_mask=mask, position_ids=pos)
        return model.score_all(q[:, -1].float()), None
    out = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False)
    return out.logits[:, -1].float(), None


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
    max_bytes: int = 0,
    id_bytes=None,
) -> tuple[list[list[int]], list[str]]:
    """Continue each prompt (ids, ``<s>`` included); returns (new ids, stop reasons).

    ``model``: a ReGPT model (whole-table scores) or a causal LM (logits). With ``max_bytes`` and
    ``id_bytes`` (UTF-8 bytes of each id's text) a sequence stops once its continuation holds
    ``max_bytes`` bytes."""
    model.eval()
    dev = model.phrase_table.device if hasattr(model, "phrase_table") else model.device
    B = len(prompts)
    n = max(len(p) for p in prompts)
    ids = torch.full((B, n), pad_id, dtype=torch.long, device=dev)
    mask = torch.zeros((B, n), dtype=torch.long, device=dev)
    for i, p in enumerate(prompts):
        ids[i, n - len(p) :] = torch.tensor(p, dtype=torch.long)
        mask[i, n - len(p) :] = 1
    gen = torch.Generator(device="cpu").manual_seed(seed)
    out = [[] for _ in range(B)]
    nbytes = [0] * B
    stop = ["max_new"] * B
    done = torch.zeros(B, dtype=torch.bool, device=dev)
    cache = None
    cur_ids, cur_mask = ids, mask
    for _ in range(max_new):
        pos = (cur_mask.cumsum(-1) - 1).clamp(min=0)
        scores, cache = _step(model, cur_ids, cur_mask, pos, cache, use_cache)
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
                    if max_bytes and id_bytes is not None:
                        nbytes[i] += int(id_bytes[int(nxt[i])])
                        if nbytes[i] >= max_bytes:
                            stop[i] = "max_bytes"
        done |= nxt == eos_id
        if max_bytes and id_bytes is not None:
            done |= torch.tensor([b >= max_bytes for b in nbytes], device=dev)
        if bool(done.all()):
            break
        cur_ids = torch.cat([cur_ids, nxt[:, None]], 1)
        cur_mask = torch.cat([cur_mask, torch.ones_like(nxt)[:, None]], 1)
    return out, stop


# ---------------------------------------------------------------------- measuring samples
def word_ngrams(text: str, n: int) -> list[tuple[str, ...]]:
    w = text.split()
    return [tuple(w[i : i + n]) for i in range(len(w) - n + 1)]


def distinct_n(texts: list[str], n: int) -> float:
    """Distinct word n-grams / all word n-grams, pooled over ``texts`` (0 when there are none)."""
    grams = [g for t in texts for g in word_ngrams(t, n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repetition_rate(texts: list[str], n: int = 4) -> float:
    """Mean over texts of the share of word n-grams that repeat an earlier n-gram of the text."""
    rates = []
    for t in texts:
        grams = word_ngrams(t, n)
        if grams:
            rates.append(1 - len(set(grams)) / len(grams))
    return sum(rates) / len(rates) if rates else 0.0


def text_bits(model, tok, text: str, max_len: int = 256) -> float:
    """Bits of ``[<s>] + ids(text)`` under ``model`` (ReGPT: full-table softmax)."""
    from relift.regpt.evaluate import LN2, eval_causal_lm, eval_regpt

    ids = D.tokenize([text], tok)
    if len(ids[0]) == 0:
        return 0.0
    wins = D.windows(ids, max_len)
    if hasattr(model, "score_all"):
        tot = eval_regpt(model, wins, device=model.phrase_table.device)
    else:
        tot = eval_causal_lm(model, wins, device=model.device)
    return tot["nll"] / LN2


def continuation_bpb(model, tok, prompts: list[str], conts: list[str]) -> float:
    """Bits per byte of the continuations given their prompts (see the module docstring)."""
    bits, nbytes = 0.0, 0
    for p, c in zip(prompts, conts):
        if not c:
            continue
        bits += text_bits(model, tok, p + c) - text_bits(model, tok, p)
        nbytes += len(c.encode("utf-8"))
    return bits / max(1, nbytes)


def id_byte_lengths(tok) -> list[int]:
    from relift.regpt.phrases import phrase_table

    return [len(x.encode("utf-8")) for x in phrase_table(tok)]


def decode_all(model, tok, prompts: list[str], args) -> tuple[list[dict], dict]:
    """Decode every prompt in batches; records and timing (bytes, steps, seconds)."""
    from relift.regpt.phrases import token_text

    ib = id_byte_lengths(tok) if args.max_bytes else None
    recs, steps, nbytes, n_new = [], 0, 0, 0
    t0 = time.perf_counter()
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
            max_bytes=args.max_bytes,
            id_bytes=ib,
        )
        for k, (p, ids, why) in enumerate(zip(part, new, stops)):
            n_new += len(ids)
            # the continuation as it follows the prompt: decode prompt + continuation together
            # and cut the prompt off (a lone decode would drop the first phrase's space)
            pids = enc[k][1:]
            full = tok.decode(pids + ids, skip_special_tokens=True)
            head = tok.decode(pids, skip_special_tokens=True)
            cont = full[len(head) :] if full.startswith(head) else tok.decode(ids)
            nbytes += len(cont.encode("utf-8"))
            steps += len(ids) + (why == "eos")
            recs.append(
                {
                    "id": s + k,
                    "prompt": p,
                    "continuation": cont,
                    "phrases": [token_text(t) for t in tok.convert_ids_to_tokens(ids)],
                    "phrase_ids": ids,
                    "stop": why,
                    "strategy": args.strategy,
                }
            )
    dt = time.perf_counter() - t0
    return recs, {"seconds": dt, "steps": steps, "bytes": nbytes, "units": n_new}


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
    ap.add_argument("--max-bytes", type=int, default=0, help="stop at N continuation bytes")
    ap.add_argument("--baseline", type=Path, help="token-level LM folder: decode it too")
    ap.add_argument("--baseline-output", type=Path, help="JSONL of the token LM's samples")
    ap.add_argument("--metrics", type=Path, help="JSON: speed, diversity, cross bits/byte")
    ap.add_argument("--side-by-side", type=Path, help="CSV: prompt, ReGPT, token LM")
    ap.add_argument("--output", required=True, type=Path, help="JSONL to write")
    args = ap.parse_args(argv)
    if args.max_new < 1 or not (0 < args.top_p <= 1) or args.top_k < 0 or args.temperature <= 0:
        raise InputError("need --max-new >= 1, 0 < --top-p <= 1, --top-k >= 0, --temperature > 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    from relift.regpt.model import ReGPT, load_tokenizer

    model = ReGPT.from_pretrained(args.model, args.phrase_embeddings, device=device)
    tok = load_tokenizer(args.model)
    prompts = read_prompts(args)
    recs, timing = decode_all(model, tok, prompts, args)
    write_jsonl_atomic(args.output, recs)
    LOG.info(
        "ReGPT: %d prompts, %d phrases, %d bytes in %.1fs (%.1f bytes/s, %.2f bytes/step) -> %s",
        len(recs),
        timing["units"],
        timing["bytes"],
        timing["seconds"],
        timing["bytes"] / max(timing["seconds"], 1e-9),
        timing["bytes"] / max(1, timing["steps"]),
        args.output,
    )
    if not args.baseline:
        return
    from relift.regpt.token_lm import load_token_lm

    base = load_token_lm(args.baseline, device)  # a biased head (output_bias) loads with it
    btok = load_tokenizer(args.baseline)
    brecs, btiming = decode_all(base, btok, prompts, args)
    for r in brecs:
        r["tokens"] = r.pop("phrases")
        r["token_ids"] = r.pop("phrase_ids")
    if args.baseline_output:
        write_jsonl_atomic(args.baseline_output, brecs)
    models = {"regpt": (model, tok, recs, timing), "token_lm": (base, btok, brecs, btiming)}
    out = {
        "prompts": len(prompts),
        "settings": {
            k: getattr(args, k)
            for k in ("strategy", "temperature", "top_k", "top_p", "max_new", "max_bytes", "seed")
        },
        "threads": torch.get_num_threads(),
    }
    for name, (_, _, rr, tm) in models.items():
        conts = [r["continuation"] for r in rr]
        m = {
            "bytes": tm["bytes"],
            "steps": tm["steps"],
            "decode_seconds": round(tm["seconds"], 3),
            "bytes_per_second": tm["bytes"] / max(tm["seconds"], 1e-9),
            "bytes_per_step": tm["bytes"] / max(1, tm["steps"]),
            "distinct_2": distinct_n(conts, 2),
            "distinct_3": distinct_n(conts, 3),
            "repetition_rate_4": repetition_rate(conts, 4),
        }
        for scorer, (sm, stok, _, _) in models.items():
            m[f"bits_per_byte_by_{scorer}"] = continuation_bpb(sm, stok, prompts, conts)
        out[name] = m
    out["ratio_bytes_per_step"] = out["regpt"]["bytes_per_step"] / max(
        1e-9, out["token_lm"]["bytes_per_step"]
    )
    out["ratio_bytes_per_second"] = out["regpt"]["bytes_per_second"] / max(
        1e-9, out["token_lm"]["bytes_per_second"]
    )
    if args.metrics:
        write_json_atomic(args.metrics, out)
    if args.side_by_side:
        import csv

        from relift.io import atomic_path

        with atomic_path(args.side_by_side) as tmp, open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["id", "prompt", "regpt", "token_lm"])
            for a, b in zip(recs, brecs):
                w.writerow([a["id"], a["prompt"], a["continuation"], b["continuation"]])
    for name in models:
        m = out[name]
        LOG.info(
            "%-8s %.1f bytes/s, %.2f bytes/step, distinct-2 %.3f, distinct-3 %.3f, rep-4 %.3f, "
            "bits/byte by ReGPT %.3f, by the token LM %.3f",
            name,
            m["bytes_per_second"],
            m["bytes_per_step"],
            m["distinct_2"],
            m["distinct_3"],
            m["repetition_rate_4"],
            m["bits_per_byte_by_regpt"],
            m["bits_per_byte_by_token_lm"],
        )


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
