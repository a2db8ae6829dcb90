"""The one private DeepSpeed API ml-assets uses, kept here alone (tests/test_deepspeed_ops.py fails if it moves).

DeepSpeed's CPU communication backend JIT-builds a shared-memory all-reduce op (about 40 s on two cores) at
``deepspeed.init_distributed`` whenever its probe cache says the op is compatible. Only inference tensor
parallelism uses it, and DeepSpeed offers no public switch, so training marks it incompatible in that cache
(``deepspeed.ops.__compatible_ops__``): gloo then serves the collectives and nothing is compiled.
"""

from __future__ import annotations

SHM_COMM_OP = "deepspeed_shm_comm"


def skip_shared_memory_allreduce() -> None:
    """Keep DeepSpeed from building its shared-memory all-reduce op; call before ``init_distributed`` on CPU."""
    import deepspeed.ops

    compatible = deepspeed.ops.__compatible_ops__
    if SHM_COMM_OP not in compatible:
        raise RuntimeError(
            f"deepspeed.ops.__compatible_ops__ has no {SHM_COMM_OP!r} entry: DeepSpeed changed how it decides to "
            "build its shared-memory all-reduce; update ml_assets/model/deepspeed_ops.py"
        )
    compatible[SHM_COMM_OP] = False
