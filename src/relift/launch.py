"""Start a relift step on the resources of its job: plain, or through ``accelerate launch``.

    python -m relift.launch --gpus N [--deepspeed-config FILE] [--dry-run] -- MODULE [ARGS ...]

With 0 or 1 GPUs (or no CUDA at all) this runs ``python -m MODULE ARGS`` in-process; with N > 1
GPUs it replaces itself with ``accelerate launch --multi_gpu --num_processes N -m MODULE ARGS``
(``--use_deepspeed --deepspeed_config_file FILE`` when a DeepSpeed config is given, as the
original's 8xA100 ZeRO-2 runs). The GPU count comes from the job's ``resources.gpu`` so that a
cluster profile that grants more GPUs gets a data-parallel run without touching the rules.
"""

from __future__ import annotations

import argparse
import os
import runpy
import shutil
import sys


def command(gpus: int, module: str, args: list[str], deepspeed_config: str | None = None,
            main_process_port: int | None = None) -> list[str]:
    if gpus <= 1:
        return [sys.executable, "-m", module, *args]
    accelerate = shutil.which("accelerate") or os.path.join(os.path.dirname(sys.executable),
                                                            "accelerate")
    cmd = [accelerate, "launch", "--num_processes", str(gpus), "--num_machines", "1"]
    if deepspeed_config:
        cmd += ["--use_deepspeed", "--deepspeed_config_file", deepspeed_config]
    else:
        cmd += ["--multi_gpu"]
    if main_process_port:
        cmd += ["--main_process_port", str(main_process_port)]
    return [*cmd, "-m", module, *args]


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if "--" not in argv:
        raise SystemExit("usage: python -m relift.launch --gpus N [--deepspeed-config F] -- MODULE ARGS")
    split = argv.index("--")
    ap = argparse.ArgumentParser(prog="python -m relift.launch", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpus", type=int, default=0, help="GPUs granted to the job")
    ap.add_argument("--deepspeed-config", default=None, help="DeepSpeed JSON for multi-GPU runs")
    ap.add_argument("--dry-run", action="store_true", help="print the command instead of running it")
    opts = ap.parse_args(argv[:split])
    module, *args = argv[split + 1:]
    cmd = command(opts.gpus, module, args, opts.deepspeed_config or None)
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
