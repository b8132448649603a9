"""``python -m relift.selfmem.memory``: see :mod:`relift.selfmem.memory.cli`."""

from relift.io import run_cli
from relift.selfmem.memory.cli import main

raise SystemExit(run_cli(main))
