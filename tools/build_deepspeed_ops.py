"""Build, once, the DeepSpeed ops that relift's CPU ZeRO-2 run JIT-compiles, into the cache
that later runs load them from (``TORCH_EXTENSIONS_DIR``; ``make install`` sets it to
``.venv/torch_extensions``).

    DS_ACCELERATOR=cpu TORCH_EXTENSIONS_DIR=.venv/torch_extensions python tools/build_deepspeed_ops.py

On CPU, ZeRO-2 with a client optimizer (torch AdamW / relift's Lamb) needs one op: the shared-
memory communication op ``deepspeed_shm_comm`` that DeepSpeed's torch backend loads when it
starts (``deepspeed.comm.torch.build_shm_op``). A second call finds it built and returns at once.
Exit status 1, with the reason, when DeepSpeed is missing or the build fails.
"""

from __future__ import annotations

import os
import sys
import time

OPS = ("ShareMemCommBuilder",)  # what tests/test_train_loop.py's ZeRO-2 runs load


def main() -> int:
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    if "TORCH_EXTENSIONS_DIR" not in os.environ:
        os.environ["TORCH_EXTENSIONS_DIR"] = os.path.join(sys.prefix, "torch_extensions")
    t0 = time.perf_counter()
    try:
        from deepspeed.accelerator import get_accelerator
    except Exception as err:
        print(
            f"deepspeed is not importable ({type(err).__name__}: {err}); "
            "install it with: pip install -e '.[deepspeed]'",
            file=sys.stderr,
        )
        return 1
    acc = get_accelerator()
    for name in OPS:
        builder = acc.create_op_builder(name)
        if builder is None or not builder.is_compatible(verbose=True):
            print(
                f"DeepSpeed op {name} cannot be built here ({acc.device_name()} accelerator)",
                file=sys.stderr,
            )
            return 1
        t = time.perf_counter()
        builder.load(verbose=False)
        print(
            f"{builder.NAME}: ready in {os.environ['TORCH_EXTENSIONS_DIR']} "
            f"({time.perf_counter() - t:.1f} s)"
        )
    print(f"DeepSpeed ops built or found in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
