"""Settings of the Selfmem loop CLI (``python -m relift.selfmem.loop.run``), declared once (see
:mod:`relift.settings`): its ``generate`` subcommand's decoding, whose defaults are config.yaml's
values (``selfmem.loop``'s pool beam; the batch size of ``selfmem.candidates``)."""

from __future__ import annotations

from dataclasses import dataclass

from relift.settings import setting

# keys of selfmem.loop the workflow reads itself: the iterations and variants to build, and each
# variant's selection (beam_b, memory_mode, separator, memory_budget: ``select``'s flags)
LOOP_WORKFLOW_KEYS = (
    "iterations",
    "beam_b",
    "memory_mode",
    "separator",
    "memory_budget",
    "variants",
    "run_variants",
)


@dataclass
class LoopSettings:
    """``selfmem.loop`` (and ``selfmem.candidates.batch_size``): how ``generate`` decodes a pool.
    The loop's final hypotheses are the same subcommand with ``selfmem.hypotheses``' values,
    which their rule passes."""

    num_beams: int = setting(5, "beam size of every iteration's candidate pool")
    num_return_sequences: int = setting(
        4, "candidates kept per input, best first (at most num_beams)"
    )
    batch_size: int = setting(16, "inputs per decoding batch (x num_beams sequences)")
