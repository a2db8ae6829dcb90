"""The one private DeepSpeed API (ml_assets/model/deepspeed_ops.py) still has the effect training relies on.

Integration: DeepSpeed's op-compatibility probe, which the hook edits, runs the C compiler to test each op.
"""

from __future__ import annotations

import importlib

import pytest

from ml_assets.model.deepspeed_ops import SHM_COMM_OP, skip_shared_memory_allreduce

pytestmark = pytest.mark.integration


def test_skipping_the_shared_memory_op_keeps_deepspeed_from_building_it() -> None:
    import deepspeed.ops

    skip_shared_memory_allreduce()
    assert deepspeed.ops.__compatible_ops__[SHM_COMM_OP] is False
    # What init_distributed calls on CPU: with the op marked incompatible it builds and loads nothing.
    assert importlib.import_module("deepspeed.comm.torch").build_shm_op() is None
