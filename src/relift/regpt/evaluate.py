"""Evaluate a ReGPT model or the token-level baseline on a held-out split → JSON.

Both kinds of model are scored on the same chunks of text (the rows of the split, optionally an
evenly spaced subset: ``--max-chunks``), each as ``[<s>] + tokens`` cut into windows of at most
``--max-len`` inputs (see ``relift.regpt.data``), so every token of the text is predicted once.

ReGPT (a model folder with ``config.json`` of type relift-regpt):

* ``acc@1`` / ``acc@10``: the gold next phrase is the top-1 / among the top-10 of ALL V phrases
  (rank = number of phrases scoring strictly higher than the gold one);
* ``nll_per_token`` (nats) under the normalised softmax over the FULL phrase table, computed
  exactly with a chunked, streaming log-sum-exp (the table is never scored in one piece);
* ``bits_per_byte`` = Σ −log2 p(token) over the text's tokens / UTF-8 bytes of the text;
* ``inbatch_loss``: the original's contrastive loss (stage-1 in-batch candidates, 1 pool negative
  per position, seeded) on the same batches, for reference: it depends on the batch size.

Baseline (a ``LlamaForCausalLM`` folder, or ``relift-token-lm`` with its output bias, loaded
by ``relift.regpt.token_lm.load_token_lm``): next-token ``acc@1``/``acc@10`` (over its own 32k
tokens: not comparable with phrase accuracy), ``nll_per_token`` and ``bits_per_byte``.

``<eos>`` is never a target; an ``<unk>`` in the text is scored like any token and counted.

With ``--floors-train`` (and ``--floors-dev``) the JSON also holds ``floors``: the unigram and
bigram bits per byte of the same text under the model's own tokenizer, estimated on the training
split (``relift.regpt.floors``; the smoothing constant picked on dev).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from relift.encoders import pick_device
from relift.io import LOG, InputError, require_file, run_cli, write_json_atomic
from relift.regpt import data as D
from relift.regpt.losses import ReGPTLoss, target_mask

LN2 = math.log(2.0)


def streaming_logsumexp(
    queries: torch.Tensor, table: torch.Tensor, gold: torch.Tensor, table_chunk: int = 8192
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact ``log Σ_c exp(q·e_c)`` over all rows of ``table`` and the gold phrase's rank.

    Returns (nll [N] in nats, rank [N] = number of phrases scoring strictly above gold)."""
    q = queries.float()
    n = len(q)
    # the gold score as the chunked product computes it (ranks compare like with like)
    gold_score = torch.empty(n, device=q.device)
    for s in range(0, table.shape[0], table_chunk):
        inside = (gold >= s) & (gold < s + table_chunk)
        if inside.any():
            sc = q[inside] @ table[s : s + table_chunk].float().T
            gold_score[inside] = sc[torch.arange(len(sc), device=q.device), gold[inside] - s]
    lse = torch.full((n,), -math.inf, device=q.device)
    rank = torch.zeros(n, dtype=torch.long, device=q.device)
    for s in range(0, table.shape[0], table_chunk):
        sc = q @ table[s : s + table_chunk].float().T
        lse = torch.logaddexp(lse, torch.logsumexp(sc, dim=1))
        rank += (sc > gold_score[:, None]).sum(1)
    return lse - gold_score, rank


def logits_nll(logits: torch.Tensor, gold: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(nll [N] nats, rank [N]) of ``gold`` under a softmax over ``logits [N, V]``."""
    logits = logits.float()
    g = logits.gather(1, gold[:, None])
    nll = torch.logsumexp(logits, 1) - g[:, 0]
    rank = (logits > g).sum(1)
    return nll, rank


def bits_per_byte(nll_nats: float, n_bytes: int) -> float:
    return nll_nats / LN2 / n_bytes


def pick_chunks(texts: list[str], max_chunks: int) -> list[str]:
    """All texts, or ``max_chunks`` evenly spaced ones (the split is sorted by length)."""
    if not max_chunks or max_chunks >= len(texts):
        return texts
    idx = np.linspace(0, len(texts) - 1, max_chunks).round().astype(int)
    return [texts[i] for i in np.unique(idx)]


def _batches(wins, batch_size: int):
    order = np.argsort([len(w) for w in wins], kind="stable")
    for s in range(0, len(order), batch_size):
        yield D.collate([wins[i] for i in order[s : s + batch_size]])


@torch.no_grad()
def eval_regpt(
    model,
    wins,
    batch_size: int = 32,
    table_chunk: int = 8192,
    loss_fn=None,
    device: str | torch.device = "cpu",
    ignore_ids=(D.EOS,),
) -> dict:
    """Sums over ``wins``: nll (nats), hits@1/@10, token count; plus mean in-batch loss."""
    model.eval()
    tot = {"nll": 0.0, "hit1": 0, "hit10": 0, "tokens": 0, "unk": 0}
    ib, ib_n = 0.0, 0
    table = model.phrase_table
    for k, batch in enumerate(_batches(wins, batch_size)):
        batch = {n: t.to(device) for n, t in batch.items()}
        keep = target_mask(batch["labels"], ignore_ids)
        q = model(batch["input_ids"], attention_mask=batch["attention_mask"])
        gold = batch["labels"][keep]
        nll, rank = streaming_logsumexp(q[keep], table, gold, table_chunk)
        tot["nll"] += float(nll.double().sum())
        tot["hit1"] += int((rank < 1).sum())
        tot["hit10"] += int((rank < 10).sum())
        tot["tokens"] += int(keep.sum())
        tot["unk"] += int((gold == 0).sum())
        if loss_fn is not None:
            loss, _ = loss_fn(model, batch, k)
            ib += float(loss) * int(keep.sum())
            ib_n += int(keep.sum())
    if ib_n:
        tot["inbatch_loss"] = ib / ib_n
    return tot


@torch.no_grad()
def eval_causal_lm(model, wins, batch_size: int = 32, device="cpu", ignore_ids=(D.EOS,)) -> dict:
    model.eval()
    tot = {"nll": 0.0, "hit1": 0, "hit10": 0, "tokens": 0, "unk": 0}
    for batch in _batches(wins, batch_size):
        batch = {n: t.to(device) for n, t in batch.items()}
        keep = target_mask(batch["labels"], ignore_ids)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        gold = batch["labels"][keep]
        nll, rank = logits_nll(logits[keep], gold)
        tot["nll"] += float(nll.double().sum())
        tot["hit1"] += int((rank < 1).sum())
        tot["hit10"] += int((rank < 10).sum())
        tot["tokens"] += int(keep.sum())
        tot["unk"] += int((gold == 0).sum())
    return tot


def summarize(tot: dict, n_bytes: int) -> dict:
    n = max(1, tot["tokens"])
    out = {
        "acc@1": tot["hit1"] / n,
        "acc@10": tot["hit10"] / n,
        "nll_per_token": tot["nll"] / n,
        "bits_per_byte": bits_per_byte(tot["nll"], n_bytes),
        "tokens": tot["tokens"],
        "bytes": n_bytes,
        "bytes_per_token": n_bytes / n,
        "unk_tokens": tot["unk"],
    }
    if "inbatch_loss" in tot:
        out["inbatch_loss"] = tot["inbatch_loss"]
    return out


def dev_eval_fn(dev_path, dev_chunks: int, tok, max_len: int, evaluate, device_of):
    """The training loop's ``eval_fn`` for dev curves: ``dev_chunks`` evenly spaced chunks of
    ``dev_path``, scored by ``evaluate(model, windows, batch_size, device=...)`` (full-table
    ReGPT or the token LM) into accuracy@1/@10 and bits per byte; None without a dev split."""
    if not (dev_path and dev_chunks):
        return None
    texts = pick_chunks(D.load_texts(dev_path), dev_chunks)
    n_bytes = sum(len(t.encode()) for t in texts)
    wins = D.windows(D.tokenize(texts, tok), max_len)

    def eval_fn(m, step):
        s = summarize(evaluate(m, wins, 32, device=device_of(m)), n_bytes)
        return {
            "dev_acc@1": s["acc@1"],
            "dev_acc@10": s["acc@10"],
            "dev_bits_per_byte": s["bits_per_byte"],
        }

    return eval_fn


def is_regpt_folder(folder: Path) -> bool:
    cfg = folder / "config.json"
    return cfg.exists() and json.loads(cfg.read_text()).get("model_type") == "relift-regpt"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m relift.regpt.evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--model", required=True, type=Path, help="ReGPT or baseline model folder")
    ap.add_argument("--split", required=True, type=Path, help="held-out split folder (Arrow)")
    ap.add_argument(
        "--phrase-embeddings",
        type=Path,
        help="ReGPT: raw phrase embeddings (default: the path in config.json)",
    )
    ap.add_argument("--negatives-ids", type=Path, help="ReGPT: pool ids, for the in-batch loss")
    ap.add_argument(
        "--negatives-scores", type=Path, help="ReGPT: pool scores, for the in-batch loss"
    )
    ap.add_argument(
        "--threshold", type=float, default=0.9, help="false-negative guard (in-batch loss)"
    )
    ap.add_argument("--max-len", type=int, default=256, help="window length in tokens")
    ap.add_argument("--max-chunks", type=int, default=0, help="evenly spaced chunks (0 = all)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--table-chunk", type=int, default=8192, help="phrases scored at once")
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0, help="seed of the in-batch loss negatives")
    ap.add_argument("--floors-train", type=Path, help="training split: add unigram/bigram floors")
    ap.add_argument("--floors-dev", type=Path, help="dev split: picks the floors' smoothing")
    ap.add_argument("--output", required=True, type=Path, help="JSON to write")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    from relift.regpt.model import load_tokenizer

    texts = pick_chunks(D.load_texts(args.split), args.max_chunks)
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    folder = require_file(args.model, "model folder")
    tok = load_tokenizer(folder)
    wins = D.windows(D.tokenize(texts, tok), args.max_len)
    t0 = time.perf_counter()
    if is_regpt_folder(folder):
        from relift.regpt.model import ReGPT

        model = ReGPT.from_pretrained(folder, args.phrase_embeddings, device=device)
        loss_fn = None
        if args.negatives_ids and args.negatives_scores:
            loss_fn = ReGPTLoss(
                "inbatch",
                np.load(require_file(args.negatives_ids), mmap_mode="r"),
                np.load(require_file(args.negatives_scores), mmap_mode="r"),
                model.num_phrases,
                negatives=1,
                threshold=args.threshold,
                seed=args.seed,
            )
        tot = eval_regpt(model, wins, args.batch_size, args.table_chunk, loss_fn, device)
        kind, units = "regpt", f"phrases ({model.num_phrases:,} in the table)"
    else:
        from relift.regpt.token_lm import load_token_lm

        try:
            model = load_token_lm(folder, device)
        except InputError as err:
            raise InputError(f"not a ReGPT or Llama model folder ({err})", path=folder) from None
        tot = eval_causal_lm(model, wins, args.batch_size, device)
        kind, units = "baseline", f"tokens ({model.config.vocab_size:,} in the vocabulary)"
    dt = time.perf_counter() - t0
    out = {
        "model": str(args.model),
        "kind": kind,
        "split": str(args.split),
        "chunks": len(texts),
        "windows": len(wins),
        "units": units,
        **summarize(tot, n_bytes),
        "seconds": round(dt, 2),
    }
    if tot["tokens"] == 0:
        raise InputError("no tokens to evaluate", path=args.split)
    if args.floors_train:
        from relift.regpt.floors import floors

        if not args.floors_dev:
            raise InputError("--floors-train needs --floors-dev (the smoothing is picked on dev)")
        dev = D.load_texts(args.floors_dev)
        out["floors"] = floors(tok, D.load_texts(args.floors_train), dev, texts)
        LOG.info(
            "floors of this tokenization: unigram %.4f, bigram %.4f bits/byte",
            out["floors"]["unigram_bits_per_byte"],
            out["floors"]["bigram_bits_per_byte"],
        )
    write_json_atomic(args.output, out)
    LOG.info(
        "%s on %d chunks (%d tokens, %d bytes): acc@1 %.4f acc@10 %.4f %.4f bits/byte "
        "in %.1fs -> %s",
        kind,
        len(texts),
        out["tokens"],
        n_bytes,
        out["acc@1"],
        out["acc@10"],
        out["bits_per_byte"],
        dt,
        args.output,
    )


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
