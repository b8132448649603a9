"""Deterministic micro-batches for the training loop: ``get(epoch, index)`` is a pure function
of (seed, epoch, index), which is what makes a resumed run consume exactly the data an
uninterrupted one would."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from relift.io import InputError


class BucketedBatches:
    """Deterministic, length-bucketed micro-batches: ``get(epoch, index)``.

    Per epoch: a permutation of the examples seeded by (seed, epoch); consecutive runs of
    ``bucket * batch_size`` examples are sorted by length and cut into batches (little padding);
    the batch order is shuffled again. ``collate(list_of_example_indices)`` builds a batch."""

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        seed: int,
        collate: Callable[[list[int]], Any],
        bucket: int = 50,
        drop_last: bool = False,
        max_tokens: int = 0,
    ):
        if batch_size < 1:
            raise InputError(f"batch size must be >= 1, got {batch_size}")
        if max_tokens < 0:
            raise InputError(f"max_tokens must be >= 0, got {max_tokens}")
        if len(lengths) == 0:
            raise InputError("no training examples")
        self.lengths = np.asarray(lengths)
        self.batch_size, self.seed, self.collate = batch_size, seed, collate
        self.bucket, self.drop_last, self.max_tokens = bucket, drop_last, max_tokens
        self._cache: tuple[int, list[np.ndarray]] | None = None
        n = len(self.lengths)
        self._len = n // batch_size if drop_last else -(-n // batch_size)
        if max_tokens:  # token budgets: as many batches per epoch as epoch 0 has
            self._len = len(self._plan(0))
        if self._len == 0:
            raise InputError(f"{n} examples do not fill one batch of {batch_size}")

    def __len__(self) -> int:
        return self._len

    def _cut(self, part: np.ndarray) -> list[np.ndarray]:
        """Length-sorted examples -> batches: ``batch_size`` each, or (``max_tokens``) as many as
        keep (examples x longest length) within the token budget (at least one)."""
        if not self.max_tokens:
            return [part[i : i + self.batch_size] for i in range(0, len(part), self.batch_size)]
        out, start = [], 0
        for i in range(1, len(part) + 1):
            if i == len(part) or (i + 1 - start) * self.lengths[part[i]] > self.max_tokens:
                out.append(part[start:i])
                start = i
        return out

    def _plan(self, epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch])
        perm = rng.permutation(len(self.lengths))
        span = self.bucket * self.batch_size
        if self.max_tokens:  # spans of about `bucket` token-budget batches
            mean = max(1.0, float(self.lengths.mean()))
            span = max(1, int(self.bucket * self.max_tokens / mean))
        batches = []
        for s in range(0, len(perm), span):
            part = perm[s : s + span]
            batches.extend(self._cut(part[np.argsort(self.lengths[part], kind="stable")]))
        if self.drop_last and not self.max_tokens:
            batches = [b for b in batches if len(b) == self.batch_size]
        order = rng.permutation(len(batches))
        return [batches[i] for i in order]

    def epoch_plan(self, epoch: int) -> list[np.ndarray]:
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        plan = self._plan(epoch)
        if len(plan) < self._len:  # token budgets: a shorter epoch repeats its first batches
            plan = plan + plan[: self._len - len(plan)]
        plan = plan[: self._len]
        self._cache = (epoch, plan)
        return plan

    def get(self, epoch: int, index: int):
        return self.collate(self.epoch_plan(epoch)[index].tolist())
