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

Settings (:class:`relift.regpt.settings.GenerateSettings`: config.yaml's ``regpt.generate``) come
as ``--settings JSON`` and/or one flag each; the decoding itself is :mod:`relift.regpt.decoding`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from relift.encoders import pick_device
from relift.io import LOG, InputError, run_cli, write_json_atomic, write_jsonl_atomic
from relift.regpt.decoding import comparison, decode_all, read_prompts
from relift.regpt.settings import GenerateSettings
from relift.settings import add_settings, settings_from_args


def parser() -> argparse.ArgumentParser:
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
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--baseline", type=Path, help="token-level LM folder: decode it too")
    ap.add_argument("--baseline-output", type=Path, help="JSONL of the token LM's samples")
    ap.add_argument("--metrics", type=Path, help="JSON: speed, diversity, cross bits/byte")
    ap.add_argument("--side-by-side", type=Path, help="CSV: prompt, ReGPT, token LM")
    ap.add_argument("--output", required=True, type=Path, help="JSONL to write")
    add_settings(ap, GenerateSettings)
    return ap


def check(st: GenerateSettings) -> None:
    if st.max_new < 1 or not (0 < st.top_p <= 1) or st.top_k < 0 or st.temperature <= 0:
        raise InputError("need --max-new >= 1, 0 < --top-p <= 1, --top-k >= 0, --temperature > 0")


def log_timing(name: str, recs: list, timing: dict, unit: str, path) -> None:
    LOG.info(
        "%s: %d prompts, %d %s, %d bytes in %.1fs (%.1f bytes/s, %.2f bytes/step) -> %s",
        *(name, len(recs), timing["units"], unit, timing["bytes"], timing["seconds"]),
        timing["bytes"] / max(timing["seconds"], 1e-9),
        timing["bytes"] / max(1, timing["steps"]),
        path,
    )


def write_side_by_side(path: Path, recs: list[dict], brecs: list[dict]) -> None:
    import csv

    from relift.io import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "prompt", "regpt", "token_lm"])
        for a, b in zip(recs, brecs):
            w.writerow([a["id"], a["prompt"], a["continuation"], b["continuation"]])


def log_comparison(out: dict) -> None:
    for name in ("regpt", "token_lm"):
        m = out[name]
        LOG.info(
            "%-8s %.1f bytes/s, %.2f bytes/step, distinct-2 %.3f, distinct-3 %.3f, rep-4 %.3f, "
            "bits/byte by ReGPT %.3f, by the token LM %.3f",
            *(name, m["bytes_per_second"], m["bytes_per_step"], m["distinct_2"], m["distinct_3"]),
            *(m["repetition_rate_4"], m["bits_per_byte_by_regpt"], m["bits_per_byte_by_token_lm"]),
        )


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    st = settings_from_args(args, GenerateSettings)
    check(st)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    from relift.regpt.model import ReGPT, load_tokenizer
    from relift.regpt.token_lm import load_token_lm

    model = ReGPT.from_pretrained(args.model, args.phrase_embeddings, device=device)
    tok = load_tokenizer(args.model)
    prompts = read_prompts(args.prompt, args.prompts_file, args.from_split, st)
    recs, timing = decode_all(model, tok, prompts, st)
    write_jsonl_atomic(args.output, recs)
    log_timing("ReGPT", recs, timing, "phrases", args.output)
    if not args.baseline:
        return
    base = load_token_lm(args.baseline, device)  # a biased head (output_bias) loads with it
    btok = load_tokenizer(args.baseline)
    brecs, btiming = decode_all(base, btok, prompts, st)
    for r in brecs:
        r["tokens"], r["token_ids"] = r.pop("phrases"), r.pop("phrase_ids")
    if args.baseline_output:
        write_jsonl_atomic(args.baseline_output, brecs)
    models = {"regpt": (model, tok, recs, timing), "token_lm": (base, btok, brecs, btiming)}
    out = comparison(models, prompts, st)
    if args.metrics:
        write_json_atomic(args.metrics, out)
    if args.side_by_side:
        write_side_by_side(args.side_by_side, recs, brecs)
    log_comparison(out)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
