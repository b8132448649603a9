"""Decoding with a ReGPT model or a token LM, and measures of the samples.

Batched, KV-cached decoding (:func:`generate`): prompts are left-padded, the prefix runs once,
and every new phrase costs one decoder step for the whole batch. At each step a ReGPT query is
scored against the WHOLE phrase table (exact maximum inner product), a token LM gives logits;
the next unit is picked greedily or sampled (temperature, top-k, nucleus). :func:`decode_all`
decodes a list of prompts into records; :func:`comparison` measures the samples of both models
(bytes per second and per step, distinct-n, repetition, cross-scored bits per byte). The CLI is
``python -m relift.regpt.generate``.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from relift.io import InputError, read_jsonl, require_file
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
    from relift.regpt.scoring import LN2, eval_causal_lm, eval_regpt

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


def decode_all(model, tok, prompts: list[str], settings) -> tuple[list[dict], dict]:
    """Decode every prompt in batches; records and timing (bytes, steps, seconds). ``settings``:
    :class:`relift.regpt.settings.GenerateSettings` (or any object with its fields)."""
    from relift.regpt.phrases import token_text

    ib = id_byte_lengths(tok) if settings.max_bytes else None
    recs, steps, nbytes, n_new = [], 0, 0, 0
    t0 = time.perf_counter()
    for s in range(0, len(prompts), settings.batch_size):
        part = prompts[s : s + settings.batch_size]
        enc = [[D.BOS] + list(x) for x in D.tokenize(part, tok)]
        new, stops = generate(
            model,
            enc,
            settings.max_new,
            settings.strategy,
            settings.temperature,
            settings.top_k,
            settings.top_p,
            settings.seed + s,
            max_bytes=settings.max_bytes,
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
                    "strategy": settings.strategy,
                }
            )
    dt = time.perf_counter() - t0
    return recs, {"seconds": dt, "steps": steps, "bytes": nbytes, "units": n_new}


def read_prompts(
    prompts: list[str], prompts_file: Path | None, from_split: Path | None, settings
) -> list[str]:
    """The prompts given, those of a file (a prompt per line, or JSONL with ``text``), and the
    first ``settings.prompt_words`` words of ``settings.num_prompts`` evenly spaced chunks of the
    split ``from_split``."""
    prompts = list(prompts or [])
    if prompts_file:
        path = Path(prompts_file)
        if path.suffix == ".jsonl":
            prompts += [rec["text"] for _, rec in read_jsonl(path, ("text",))]
        else:
            text = require_file(path).read_text(encoding="utf-8")
            prompts += [x for x in text.splitlines() if x.strip()]
    if from_split:
        from relift.regpt.scoring import pick_chunks

        chunks = pick_chunks(D.load_texts(from_split), settings.num_prompts)
        prompts += [" ".join(c.split()[: settings.prompt_words]) for c in chunks]
    if not prompts:
        raise InputError("no prompts: give --prompt, --prompts-file or --from-split")
    return prompts


def sample_measures(timing: dict, conts: list[str]) -> dict:
    """Speed and diversity of one model's samples (``timing``: from :func:`decode_all`)."""
    return {
        "bytes": timing["bytes"],
        "steps": timing["steps"],
        "decode_seconds": round(timing["seconds"], 3),
        "bytes_per_second": timing["bytes"] / max(timing["seconds"], 1e-9),
        "bytes_per_step": timing["bytes"] / max(1, timing["steps"]),
        "distinct_2": distinct_n(conts, 2),
        "distinct_3": distinct_n(conts, 3),
        "repetition_rate_4": repetition_rate(conts, 4),
    }


SETTINGS_RECORDED = ("strategy", "temperature", "top_k", "top_p", "max_new", "max_bytes", "seed")


def comparison(models: dict, prompts: list[str], settings) -> dict:
    """The metrics JSON: per model (``models``: name -> (model, tokenizer, records, timing)) its
    sample measures and the bits per byte of its continuations scored by every model."""
    out = {
        "prompts": len(prompts),
        "settings": {k: getattr(settings, k) for k in SETTINGS_RECORDED},
        "threads": torch.get_num_threads(),
    }
    for name, (_, _, recs, timing) in models.items():
        conts = [r["continuation"] for r in recs]
        m = sample_measures(timing, conts)
        for scorer, (sm, stok, _, _) in models.items():
            m[f"bits_per_byte_by_{scorer}"] = continuation_bpb(sm, stok, prompts, conts)
        out[name] = m
    for ratio in ("bytes_per_step", "bytes_per_second"):
        out[f"ratio_{ratio}"] = out["regpt"][ratio] / max(1e-9, out["token_lm"][ratio])
    return out
