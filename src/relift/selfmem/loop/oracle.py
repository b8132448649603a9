"""ORACLE selection scores: Δ of each candidate against its input's reference.

Δ is sentence BLEU (sacrebleu, 0-100) for ``bleu`` tasks and the mean of ROUGE-1/2/L F1 (x100,
stemmed) for ``rouge`` tasks. The selector's training targets use it too; the loop uses it only
for the clearly labelled oracle variant (the ceiling a selector could reach).
"""

from __future__ import annotations

from collections.abc import Sequence

from relift.io import InputError


def delta_scores(candidates: Sequence[str], reference: str, metric: str = "bleu") -> list[float]:
    """Δ(c, y) of each candidate against the reference: sentence BLEU (sacrebleu, 0-100) for
    ``bleu`` tasks, the mean of ROUGE-1/2/L F1 (x100, stemmed) for ``rouge`` tasks."""
    if metric == "bleu":
        return [_sentence_bleu().sentence_score(c, [reference]).score for c in candidates]
    if metric == "rouge":
        scorer = _rouge_scorer()
        out = []
        for c in candidates:
            s = scorer.score(reference, c)
            out.append(
                100 * (s["rouge1"].fmeasure + s["rouge2"].fmeasure + s["rougeL"].fmeasure) / 3
            )
        return out
    raise InputError(f"unknown metric {metric!r}; expected bleu or rouge")


_CACHE: dict = {}


def _sentence_bleu():
    if "bleu" not in _CACHE:
        from sacrebleu.metrics import BLEU

        _CACHE["bleu"] = BLEU(effective_order=True)
    return _CACHE["bleu"]


def _rouge_scorer():
    if "rouge" not in _CACHE:
        from rouge_score import rouge_scorer

        _CACHE["rouge"] = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    return _CACHE["rouge"]


def oracle_scores(
    pools: Sequence[Sequence[str]], references: Sequence[str], metric: str = "bleu"
) -> list[list[float]]:
    """ORACLE selection scores: Δ of every candidate against its input's reference. Only the
    oracle variant (the ceiling a selector could reach) uses them."""
    if len(pools) != len(references):
        raise InputError(f"{len(pools)} pools but {len(references)} references")
    return [delta_scores(p, r, metric) for p, r in zip(pools, references, strict=True)]
