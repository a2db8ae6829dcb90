"""What the parts of an exported graph share: opsets, the names that wire them, constants and the input types.

Every name inside the graph has a '/', so no feature column (a graph input) can clash with one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17  # ai.onnx: what torch's TorchScript exporter writes by default; onnxruntime runs it
ML_OPSET = 3  # ai.onnx.ml: LabelEncoder (string <-> int64/float), TreeEnsembleRegressor with float64 tensors
NUMERIC, CATEGORICAL = "pre/numeric", "pre/categorical"  # Preprocessing.transform's two matrices
TREE_INPUT = "pre/trees"  # a gbdt's design matrix: float64, the booster's feature order
SCORE = "score"  # a scorer's output: the positive class's probability, float64 [rows]
MISSING_TEXT = ""  # a missing category in a string tensor (the service reads blank text as missing)


class ExportError(ValueError):
    """A model that cannot be exported (its kind, or a spec that does not match it)."""


@dataclass(frozen=True)
class EmbeddedInput:
    """One input of the exported graph: a feature column, its tensor type and what a value means."""

    name: str
    categorical: bool
    doc: str


def opsets() -> list[onnx.OperatorSetIdProto]:
    return [helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", ML_OPSET)]


def const(name: str, value: Any, dtype: Any) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(value, dtype=dtype), name))


def feature_inputs(inputs: list[EmbeddedInput]) -> list[onnx.ValueInfoProto]:
    """The graph inputs: a string or a float64 column of shape (rows, 1) per feature."""
    return [
        helper.make_tensor_value_info(i.name, TensorProto.STRING if i.categorical else TensorProto.DOUBLE, ["rows", 1])
        for i in inputs
    ]
