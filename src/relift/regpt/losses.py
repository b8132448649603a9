"""ReGPT's contrastive loss and its two candidate sets (pure functions, unit-tested).

InfoNCE over dot products with temperature τ (1 = none, as the original):

    L = −mean_t log( exp(q_t·e_{y_t}/τ) / Σ_{c∈C_t} exp(q_t·e_c/τ) )

over the positions t whose target ``y_t`` is a real phrase (labels ``-100``, pad and eos ids are
left out).

Candidate sets, given the gold ids of the kept positions:

* **hard** (stage 2): ``C_t`` = the gold phrase + ``d`` negatives from that phrase's row of the
  negatives pool (``negatives_ids.npy`` [V, depth], rank 0 = usually the phrase itself). The ``d``
  pool columns are drawn once per batch, without replacement, from columns ``1..depth-1``.
  False-negative guard: pool entries whose cosine (``negatives_scores.npy``) is above
  ``threshold``, and any entry equal to the phrase itself, are replaced by a phrase id drawn
  uniformly from the other ``V-1`` phrases.
* **in-batch** (stage 1): every gold phrase of the batch plus the ``d`` guarded pool negatives of
  every position, deduplicated; every query is scored against all of them, and the gold index of
  a position is where its phrase sits in that set.

* **full** (an option, not in the original): every query against the WHOLE phrase table, the
  objective that evaluation measures (affordable for tables of some 10k phrases).

Sampling-bias (logQ) correction (an option, not in the original): in-batch candidates are the
batch's gold phrases, i.e. drawn in proportion to their frequency, so plain InfoNCE learns
``log p(c | x) − log q(c)`` and a full-table softmax then over-rates rare phrases. With
``log_q`` (log unigram frequency of every phrase in the training text) the in-batch scores
become ``q·e_c / τ − log q(c)`` (Yi et al., 2019), whose optimum is ``log p(c | x)`` + const.

All randomness comes from the ``torch.Generator`` passed in, so a batch's candidates are a
function of (seed, step) and a resumed run draws exactly the same ones.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

IGNORE = -100


def target_mask(labels: torch.Tensor, ignore_ids: tuple[int, ...] = ()) -> torch.Tensor:
    """True where ``labels`` is a real target (not -100 and not one of ``ignore_ids``)."""
    keep = labels != IGNORE
    for i in ignore_ids:
        keep &= labels != i
    return keep


def info_nce(
    scores: torch.Tensor,
    gold_index: torch.Tensor,
    temperature: float = 1.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """Cross-entropy of ``scores [N, M]`` (dot products) with the gold column ``gold_index [N]``."""
    if temperature != 1.0:
        scores = scores / temperature
    return F.cross_entropy(scores.float(), gold_index, reduction=reduction)


def sample_columns(depth: int, d: int, generator: torch.Generator) -> torch.Tensor:
    """``d`` distinct pool columns from ``1..depth-1`` (column 0 is the phrase itself)."""
    if d > depth - 1:
        raise ValueError(
            f"cannot draw {d} negatives from a pool of depth {depth} (itself excluded)"
        )
    return 1 + torch.randperm(depth - 1, generator=generator)[:d]


def hard_negatives(
    gold: torch.Tensor,
    pool_ids,
    pool_scores,
    d: int,
    threshold: float,
    num_phrases: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """``[N, d]`` guarded pool negatives of the phrases ``gold [N]`` (see the module docstring).

    ``pool_ids`` / ``pool_scores`` are numpy arrays (memory-mapped is fine) or tensors
    ``[V, depth]``; only the rows of ``gold`` and the ``d`` drawn columns are read."""
    if d == 0:
        return torch.empty((len(gold), 0), dtype=torch.long)
    depth = pool_ids.shape[1]
    cols = sample_columns(depth, d, generator)
    g = gold.detach().to("cpu", torch.long)
    rows = g.numpy()
    c = cols.numpy()
    if isinstance(pool_ids, torch.Tensor):
        neg = pool_ids[g][:, cols].long()
        sc = pool_scores[g][:, cols].float()
    else:
        neg = torch.from_numpy(np.asarray(pool_ids[rows][:, c], dtype=np.int64))
        sc = torch.from_numpy(np.asarray(pool_scores[rows][:, c], dtype=np.float32))
    bad = (sc > threshold) | (neg == g[:, None])
    # uniform over the V-1 phrases other than the gold one: draw in [0, V-2], skip the gold id
    rnd = torch.randint(0, num_phrases - 1, neg.shape, generator=generator)
    rnd = rnd + (rnd >= g[:, None]).long()
    return torch.where(bad, rnd, neg)


def hard_candidates(
    gold: torch.Tensor,
    pool_ids,
    pool_scores,
    d: int,
    threshold: float,
    num_phrases: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """Stage 2: ``[N, 1 + d]`` candidate ids per position, the gold phrase in column 0."""
    neg = hard_negatives(gold, pool_ids, pool_scores, d, threshold, num_phrases, generator)
    return torch.cat([gold.detach().cpu().long()[:, None], neg], 1).to(gold.device)


def inbatch_candidates(
    gold: torch.Tensor,
    pool_ids,
    pool_scores,
    d: int,
    threshold: float,
    num_phrases: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stage 1: (unique candidate ids ``[M]`` sorted, gold index ``[N]`` into them)."""
    neg = hard_negatives(gold, pool_ids, pool_scores, d, threshold, num_phrases, generator)
    allc = torch.cat([gold.detach().cpu().long(), neg.reshape(-1)])
    uniq, inverse = torch.unique(allc, sorted=True, return_inverse=True)
    return uniq.to(gold.device), inverse[: len(gold)].to(gold.device)


def hard_loss(
    queries: torch.Tensor,
    table: torch.Tensor,
    cand: torch.Tensor,
    temperature: float = 1.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """Stage-2 loss: ``queries [N, d]`` against their own candidates ``cand [N, K]`` (gold first)."""
    emb = table[cand].to(queries.dtype)  # [N, K, d]
    scores = torch.einsum("nd,nkd->nk", queries, emb)
    gold = torch.zeros(len(cand), dtype=torch.long, device=queries.device)
    return info_nce(scores, gold, temperature, reduction)


def inbatch_loss(
    queries: torch.Tensor,
    table: torch.Tensor,
    cand: torch.Tensor,
    gold_index: torch.Tensor,
    temperature: float = 1.0,
    reduction: str = "mean",
    log_q: torch.Tensor | None = None,
) -> torch.Tensor:
    """Stage-1 loss: every query against every candidate ``cand [M]`` (``log_q [V]``: subtract
    the candidates' log sampling frequency after the temperature, see the module docstring)."""
    scores = queries @ table[cand].to(queries.dtype).T
    if log_q is None:
        return info_nce(scores, gold_index, temperature, reduction)
    scores = scores.float() / temperature - log_q[cand].to(scores.device)[None, :]
    return info_nce(scores, gold_index, 1.0, reduction)


def full_loss(
    queries: torch.Tensor,
    table: torch.Tensor,
    gold: torch.Tensor,
    temperature: float = 1.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """Every query against the whole table (the softmax that evaluation uses when τ = 1)."""
    return info_nce(queries @ table.to(queries.dtype).T, gold, temperature, reduction)


class ReGPTLoss:
    """The training loss of one stage, as the shared loop wants it: ``loss_fn(model, batch, step)``.

    ``batch``: ``input_ids``, ``attention_mask``, ``labels`` (``-100`` = no target). The negatives
    of step ``s`` come from a generator seeded with ``(seed, s)``."""

    def __init__(
        self,
        stage: str,
        pool_ids,
        pool_scores,
        num_phrases: int,
        negatives: int = 1,
        threshold: float = 0.9,
        temperature: float = 1.0,
        seed: int = 0,
        ignore_ids: tuple[int, ...] = (2,),
        log_q: torch.Tensor | None = None,
    ):
        if stage not in ("inbatch", "hard", "full"):
            raise ValueError(f"unknown stage {stage!r}")
        self.log_q = log_q
        self.stage, self.pool_ids, self.pool_scores = stage, pool_ids, pool_scores
        self.num_phrases, self.d, self.threshold = num_phrases, negatives, threshold
        self.temperature, self.seed, self.ignore_ids = temperature, seed, tuple(ignore_ids)

    def generator(self, step: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 1_000_003 + step)

    def __call__(self, model, batch: dict, step: int):
        from relift.train import unwrap

        labels = batch["labels"]
        keep = target_mask(labels, self.ignore_ids)
        q = model(batch["input_ids"], attention_mask=batch["attention_mask"])
        q = q[keep]
        gold = labels[keep]
        table = unwrap(model).phrase_table
        gen = self.generator(step)
        args = (self.pool_ids, self.pool_scores, self.d, self.threshold, self.num_phrases, gen)
        if self.stage == "hard":
            cand = hard_candidates(gold, *args)
            loss = hard_loss(q, table, cand, self.temperature)
            ncand = cand.shape[1]
        elif self.stage == "full":
            loss = full_loss(q, table, gold, self.temperature)
            ncand = table.shape[0]
        else:
            cand, gidx = inbatch_candidates(gold, *args)
            loss = inbatch_loss(q, table, cand, gidx, self.temperature, log_q=self.log_q)
            ncand = len(cand)
        return loss, {"tokens": int(keep.sum()), "candidates": ncand}
