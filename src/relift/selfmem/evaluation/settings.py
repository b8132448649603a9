"""Settings of the Selfmem evaluation CLIs, declared once (see :mod:`relift.settings`): a
dataclass mirrors one section of config.yaml, its defaults are the embedded default's values."""

from __future__ import annotations

from dataclasses import dataclass

from relift.settings import setting


@dataclass
class CompareSettings:
    """``selfmem.compare``: the paired bootstrap of the comparison table."""

    resamples: int = setting(1000, "bootstrap resamples of the paired tests and intervals")
    seed: int = setting(0, "random seed of the bootstrap resamples")
