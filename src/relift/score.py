"""Corpus metrics of relift: sacrebleu BLEU, chrF++ and TER, and ROUGE-1/2/Lsum.

* ``bleu``: sacrebleu corpus BLEU with its defaults (13a tokenisation, mixed case, exp smoothing);
* ``chrf``: chrF++ (``CHRF(word_order=2)``);
* ``ter``: sacrebleu TER with its defaults;
* ``rouge``: ROUGE-1/2/Lsum F1 (``rouge-score`` with ``use_stemmer=True``), averaged over lines
  and times 100; for ROUGE-Lsum a line is split into sentences after ``.``, ``!`` or ``?``
  followed by a space (the usual one-sentence-per-line preparation).

Each sacrebleu metric is reported as the sacrebleu command line does with ``-f json``
(``name``, ``score`` rounded to ``width`` decimals, ``signature``, and ``verbose_score`` for
BLEU), so ``relift score`` and ``sacrebleu REF -i HYP -m bleu chrf ter --chrf-word-order 2
-f json -w 2`` print the same numbers and signatures.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from relift.io import InputError, read_lines

METRICS = ("bleu", "chrf", "ter", "rouge")
DEFAULT_METRICS = ("bleu", "chrf", "ter")
# an output set with fewer distinct hypotheses than this share of its inputs has collapsed
COLLAPSE_BELOW = 0.9


def _sacrebleu_metric(name: str):
    from sacrebleu.metrics import BLEU, CHRF, TER

    return {"bleu": BLEU, "chrf": lambda: CHRF(word_order=2), "ter": TER}[name]()


def _sentences(text: str) -> str:
    return "\n".join(s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s)


def rouge(hyps: Sequence[str], refs: Sequence[str], width: int = 2) -> dict:
    from rouge_score import rouge_scorer

    types = ("rouge1", "rouge2", "rougeLsum")
    scorer = rouge_scorer.RougeScorer(list(types), use_stemmer=True)
    sums = {t: [0.0, 0.0, 0.0] for t in types}
    for h, r in zip(hyps, refs, strict=True):
        s = scorer.score(_sentences(r), _sentences(h))
        for t in types:
            sums[t][0] += s[t].precision
            sums[t][1] += s[t].recall
            sums[t][2] += s[t].fmeasure
    n = max(1, len(hyps))
    return {
        t: {
            "precision": round(100 * p / n, width),
            "recall": round(100 * rc / n, width),
            "score": round(100 * f / n, width),
        }
        for t, (p, rc, f) in sums.items()
    } | {"signature": "rouge-score|stemmer:porter|lsum-split:[.!?]"}


def score(
    hyps: Sequence[str],
    refs: Sequence[str],
    metrics: Sequence[str] = DEFAULT_METRICS,
    width: int = 2,
) -> dict:
    """Corpus scores of aligned hypothesis and reference lines."""
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise InputError(
            f"unknown metric(s) {', '.join(unknown)}; expected some of {', '.join(METRICS)}"
        )
    if len(hyps) != len(refs):
        raise InputError(
            f"{len(hyps)} hypotheses but {len(refs)} references (one line each, aligned)"
        )
    if not hyps:
        raise InputError("no lines to score")
    out: dict = {"lines": len(hyps)} | diversity(hyps)
    for m in metrics:
        if m == "rouge":
            out["rouge"] = rouge(hyps, refs, width)
            continue
        metric = _sacrebleu_metric(m)
        res = metric.corpus_score(list(hyps), [list(refs)])
        rec = {
            "name": res.name,
            "score": round(res.score, width),
            "signature": str(metric.get_signature()),
        }
        if m == "bleu":
            rec["verbose_score"] = (
                res.format(width=width, score_only=False).split(" = ", 1)[1].split(" ", 1)[1]
            )
        out[m] = rec
    return out


def primary_score(result: dict, metric: str) -> float:
    """The one number outputs are ranked by, from a :func:`score` result: BLEU (``metric``
    "bleu"), or the mean of ROUGE-1, ROUGE-2 and ROUGE-Lsum ("rouge")."""
    if metric == "bleu":
        return float(result["bleu"]["score"])
    r = result["rouge"]
    return (r["rouge1"]["score"] + r["rouge2"]["score"] + r["rougeLsum"]["score"]) / 3


def diversity(hyps: Sequence[str]) -> dict:
    """Distinct outputs per input, and the collapse flag (distinct share < ``COLLAPSE_BELOW``)."""
    share = len(set(hyps)) / max(1, len(hyps))
    return {"distinct": round(share, 4), "collapsed": share < COLLAPSE_BELOW}


def bleu_stats(hyps: Sequence[str], refs: Sequence[str]):
    """Per-sentence sacrebleu BLEU sufficient statistics, as an int array [n, 2 + 2·4]."""
    import numpy as np
    from sacrebleu.metrics import BLEU

    metric = BLEU()
    return np.asarray(metric._extract_corpus_statistics(list(hyps), [list(refs)]), dtype=np.int64)


def bleu_from_stats(stats) -> float:
    """Corpus BLEU of summed sufficient statistics (sacrebleu's own formula)."""
    from sacrebleu.metrics import BLEU

    return float(BLEU()._compute_score_from_stats(list(map(int, stats))).score)


def _seed_runs(outputs) -> list:
    """One output list, or one per seed, as a list of per-seed output lists."""
    return [outputs] if not outputs or isinstance(outputs[0], str) else list(outputs)


def paired_bootstrap(
    system: Sequence[str] | Sequence[Sequence[str]],
    baseline: Sequence[str] | Sequence[Sequence[str]],
    refs: Sequence[str],
    resamples: int = 1000,
    seed: int = 0,
) -> dict:
    """Paired bootstrap resampling (Koehn, 2004) of corpus BLEU over sacrebleu's sufficient
    statistics: both systems are scored on the same resampled sets of lines.

    Either side may be one run per training seed (a list of output lists): seed i of the system
    is paired with seed i of the baseline (a single run is paired with every seed), and each
    resampled line carries its statistics summed over the seeds, so that the test is over
    test items with the seeds pooled.

    ``p_value`` is one-sided for "system is better than baseline": (1 + #resamples where it is
    not) / (1 + resamples), as sacrebleu's ``paired_bs``. ``ci95`` is the 95% interval of the
    BLEU difference."""
    import numpy as np

    sys_runs, base_runs = _seed_runs(system), _seed_runs(baseline)
    n = max(len(sys_runs), len(base_runs))
    if len(sys_runs) not in (1, n) or len(base_runs) not in (1, n):
        raise InputError(
            f"paired bootstrap: {len(sys_runs)} system and {len(base_runs)} baseline seeds "
            "cannot be paired"
        )
    for runs in (sys_runs, base_runs):
        for run in runs:
            if len(run) != len(refs) or not refs:
                raise InputError(
                    "paired bootstrap needs aligned, non-empty outputs: "
                    f"{len(run)} output and {len(refs)} reference lines"
                )
    a = sum(bleu_stats(sys_runs[i % len(sys_runs)], refs) for i in range(n))
    b = sum(bleu_stats(base_runs[i % len(base_runs)], refs) for i in range(n))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(refs), size=(resamples, len(refs)))
    sa, sb = a[idx].sum(1), b[idx].sum(1)
    diffs = np.array([bleu_from_stats(x) - bleu_from_stats(y) for x, y in zip(sa, sb)])
    delta = bleu_from_stats(a.sum(0)) - bleu_from_stats(b.sum(0))
    return {
        "delta": round(delta, 2),
        "p_value": round(float((1 + (diffs <= 0).sum()) / (1 + resamples)), 4),
        "ci95": [
            round(float(np.percentile(diffs, 2.5)), 2),
            round(float(np.percentile(diffs, 97.5)), 2),
        ],
        "resamples": resamples,
        "seeds": n,
    }


def bootstrap_interval(
    system: Sequence[str] | Sequence[Sequence[str]],
    refs: Sequence[str],
    resamples: int = 1000,
    seed: int = 0,
) -> list[float]:
    """95% bootstrap interval of one system's corpus BLEU (Koehn, 2004): the test items are
    resampled with replacement, each carrying its statistics summed over the seeds' runs."""
    import numpy as np

    runs = _seed_runs(system)
    if not refs or any(len(run) != len(refs) for run in runs):
        raise InputError("bootstrap interval needs aligned, non-empty outputs")
    stats = sum(bleu_stats(run, refs) for run in runs)
    idx = np.random.default_rng(seed).integers(0, len(refs), size=(resamples, len(refs)))
    vals = np.array([bleu_from_stats(x) for x in stats[idx].sum(1)])
    return [round(float(np.percentile(vals, 2.5)), 2), round(float(np.percentile(vals, 97.5)), 2)]


def score_files(
    hyp_path: str | os.PathLike,
    ref_path: str | os.PathLike,
    metrics: Sequence[str] = DEFAULT_METRICS,
    width: int = 2,
    ref_field: str | None = None,
) -> dict:
    """Score two aligned files; with ``ref_field`` the references come from that field of a
    JSONL file (e.g. a task split's ``trg``)."""
    hyps = read_lines(hyp_path, "hypothesis file")
    if ref_field:
        from relift.io import read_jsonl

        refs = [rec[ref_field] for _, rec in read_jsonl(ref_path, (ref_field,))]
    else:
        refs = read_lines(ref_path, "reference file")
    if len(hyps) != len(refs):
        raise InputError(
            f"hypothesis file has {len(hyps)} lines but the reference file {ref_path} has "
            f"{len(refs)}; they must be aligned line by line",
            path=hyp_path,
        )
    return score(hyps, refs, metrics, width)


def parse_metrics(spec: str) -> list[str]:
    out = [m.strip().lower() for m in spec.split(",") if m.strip()]
    if not out:
        raise InputError("--metrics names no metric")
    unknown = [m for m in out if m not in METRICS]
    if unknown:
        raise InputError(
            f"unknown metric(s) {', '.join(unknown)} in --metrics; expected some of "
            f"{', '.join(METRICS)}"
        )
    return out
