"""Build DeepSpeed's JIT C++ ops once into TORCH_EXTENSIONS_DIR, so training runs and tests only load them.

    TORCH_EXTENSIONS_DIR=~/.cache/ml-assets/torch_extensions python scripts/warm_deepspeed_ops.py [--all]

What the training path needs on CPU: nothing by default (``torch_adam`` replaces DeepSpeed's fused Adam, and
the entrypoint marks the shared-memory all-reduce op, used only by inference tensor parallelism, incompatible:
``ml_assets/model/deepspeed_ops.py``).
``offload_optimizer=True`` needs ``cpu_adam``, which this script builds. ``--all`` also builds ``shm_comm``, for
other DeepSpeed users in the same environment (``deepspeed.init_distributed`` builds it on CPU otherwise).
On a GPU machine run it with DS_ACCELERATOR=cuda to build the CUDA flavours of the same ops.
"""

from __future__ import annotations

import argparse
import os
import time

DEFAULT_OPS = ("CPUAdamBuilder",)
EXTRA_OPS = ("ShareMemCommBuilder",)


def warm(builders: tuple[str, ...]) -> dict[str, float]:
    """Load (building if needed) each op; returns seconds per op."""
    from deepspeed.accelerator import get_accelerator

    timings = {}
    for name in builders:
        builder = get_accelerator().create_op_builder(name)
        if builder is None or not builder.is_compatible(verbose=False):
            print(f"{name}: not compatible with this machine, skipped", flush=True)
            continue
        started = time.perf_counter()
        builder.load(verbose=False)
        timings[builder.NAME] = time.perf_counter() - started
        print(f"{builder.NAME}: ready in {timings[builder.NAME]:.1f} s", flush=True)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--all", action="store_true", help="also build shm_comm")
    args = parser.parse_args()
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    if os.environ.get("TORCH_CUDA_ARCH_LIST", "").strip() == "9.0a":
        os.environ["TORCH_CUDA_ARCH_LIST"] = "9.0"  # the op builder cannot parse Hopper's "a" suffix
    where = os.environ.get("TORCH_EXTENSIONS_DIR", "~/.cache/torch_extensions (torch's default)")
    print(f"warming DeepSpeed ops ({os.environ['DS_ACCELERATOR']}) into {where}", flush=True)
    started = time.perf_counter()
    warm(DEFAULT_OPS + (EXTRA_OPS if args.all else ()))
    print(f"done in {time.perf_counter() - started:.1f} s", flush=True)


if __name__ == "__main__":
    main()
