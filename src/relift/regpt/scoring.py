"""Scoring of ReGPT models and of the token-level baseline on held-out text.

Both kinds of model are scored on the same chunks of text, each as ``[<s>] + tokens`` cut into
windows (:mod:`relift.regpt.data`), so that every token of the text is predicted once:
:func:`eval_regpt` scores a ReGPT query against the WHOLE phrase table with an exact, streaming
log-sum-exp (:func:`streaming_logsumexp`), :func:`eval_causal_lm` a token LM's logits;
:func:`summarize` turns their sums into accuracy@1/@10, nats per token and bits per byte.
:func:`dev_eval_fn` is the training loop's dev evaluation (the learning curve) and
:func:`evaluate_folder` the held-out evaluation of a model folder
(``python -m relift.regpt.evaluate``).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from relift.io import InputError, require_file
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


def inbatch_reference_loss(model, negatives: tuple[Path, Path] | None, threshold, seed):
    """The original's stage-1 loss (1 pool negative per position, seeded), for reference."""
    if not negatives:
        return None
    ids, scores = negatives
    return ReGPTLoss(
        "inbatch",
        np.load(require_file(ids), mmap_mode="r"),
        np.load(require_file(scores), mmap_mode="r"),
        model.num_phrases,
        negatives=1,
        threshold=threshold,
        seed=seed,
    )


def evaluate_folder(
    folder: Path,
    texts: list[str],
    settings,
    device,
    phrase_embeddings: Path | None = None,
    negatives: tuple[Path, Path] | None = None,
    source: Path | None = None,
) -> tuple[dict, object]:
    """Score the ReGPT or token-LM model ``folder`` on ``texts`` (of the split ``source``;
    ``settings``: :class:`relift.regpt.settings.EvaluateSettings`): (its numbers, its
    tokenizer). ``negatives``: (ids, scores) of the pool, for ReGPT's in-batch reference loss."""
    from relift.regpt.model import load_tokenizer

    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    tok = load_tokenizer(folder)
    wins = D.windows(D.tokenize(texts, tok), settings.max_len)
    t0 = time.perf_counter()
    if is_regpt_folder(folder):
        from relift.regpt.model import ReGPT

        model = ReGPT.from_pretrained(folder, phrase_embeddings, device=device)
        loss_fn = inbatch_reference_loss(model, negatives, settings.threshold, settings.seed)
        bs, chunk = settings.batch_size, settings.table_chunk
        tot = eval_regpt(model, wins, bs, chunk, loss_fn, device)
        kind, units = "regpt", f"phrases ({model.num_phrases:,} in the table)"
    else:
        from relift.regpt.token_lm import load_token_lm

        try:
            model = load_token_lm(folder, device)
        except InputError as err:
            raise InputError(f"not a ReGPT or Llama model folder ({err})", path=folder) from None
        tot = eval_causal_lm(model, wins, settings.batch_size, device)
        kind, units = "baseline", f"tokens ({model.config.vocab_size:,} in the vocabulary)"
    dt = time.perf_counter() - t0
    if tot["tokens"] == 0:
        raise InputError("no tokens to evaluate", path=source)
    out = {"kind": kind, "chunks": len(texts), "windows": len(wins), "units": units}
    return {**out, **summarize(tot, n_bytes), "seconds": round(dt, 2)}, tok
