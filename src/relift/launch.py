"""Start a relift step on the resources of its job: plain, or through ``accelerate launch``.

    python -m relift.launch --gpus N [--dry-run] -- MODULE [ARGS ...]

With 0 or 1 GPUs this runs ``python -m MODULE ARGS`` in-process; with N > 1 GPUs it replaces
itself with ``accelerate launch --multi_gpu --num_processes N -m MODULE ARGS``, one process per
GPU. The module's own ``--deepspeed-config`` (ZeRO-2 for the ReGPT stages, as the original's
8xA100 runs) then applies to every rank through Accelerate's DeepSpeed plugin. The GPU count
comes from the job's ``resources.gpu``, so a cluster profile that grants more GPUs gets a
data-parallel run without touching the rules.
"""

from __future__ import annotations

import argparse
import os
import runpy
import shutil
import sys


def command(gpus: int, module: str, args: list[str]) -> list[str]:
    if gpus <= 1:
        return [sys.executable, "-m", module, *args]
    accelerate = shutil.which("accelerate") or os.path.join(
        os.path.dirname(sys.executable), "accelerate"
    )
    cmd = [accelerate, "launch", "--multi_gpu", "--num_processes", str(gpus), "--num_machines", "1"]
    return [*cmd, "-m", module, *args]


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if "--" not in argv:
        raise SystemExit("usage: python -m relift.launch --gpus N -- MODULE ARGS")
    split = argv.index("--")
    ap = argparse.ArgumentParser(
        prog="python -m relift.launch",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--gpus", type=int, default=0, help="GPUs granted to the job")
    ap.add_argument(
        "--dry-run", action="store_true", help="print the command instead of running it"
    )
    opts = ap.parse_args(argv[:split])
    module, *args = argv[split + 1 :]
    cmd = command(opts.gpus, module, args)
    if opts.dry_run:
        print(" ".join(cmd))
        return
    if opts.gpus <= 1:  # run in this process: no second interpreter start-up
        sys.argv = [module, *args]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        return
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main()
