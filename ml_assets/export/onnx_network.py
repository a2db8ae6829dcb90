"""The scorers of the networks and the logistic baseline as ONNX: (numeric, categorical) -> probability.

The torch network goes through torch's TorchScript exporter (``dynamo=False``: the dynamo exporter needs
onnxscript, which this package does not ship) on a fresh copy of the model's module, with quantile scaling's
``searchsorted`` (which that exporter cannot write) rewritten as a count of smaller knots.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper
from torch import nn

from ml_assets.export.onnx_parts import CATEGORICAL, ML_OPSET, NUMERIC, OPSET, SCORE, const, opsets
from ml_assets.model.bundle import TabularModel
from ml_assets.model.network import QuantileScaling, build_network
from ml_assets.model.preprocessing import MISSING_INDEX


class _Probability(nn.Module):
    """The bundle's prediction: sigmoid of the network's logit in float32, handed on as float64."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.network(numeric, categorical).float()).double()


class _CountingQuantileScaling(nn.Module):
    """``QuantileScaling`` with its knot search as a count of smaller knots (what ``searchsorted`` returns on sorted
    knots), which the ONNX exporter can write; the tables and the interpolation are the same."""

    def __init__(self, original: QuantileScaling):
        super().__init__()
        knots, values = original.tables.on(torch.device("cpu"), "knots", "values")
        self.register_buffer("knots", knots.clone())
        self.register_buffer("values", values.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        knots, values = self.knots, self.values
        xt = x.float().t()
        hi = (knots.unsqueeze(1) < xt.unsqueeze(-1)).sum(-1).clamp(1, knots.shape[1] - 1)
        lo = hi - 1
        k_lo, k_hi = knots.gather(1, lo), knots.gather(1, hi)
        v_lo, v_hi = values.gather(1, lo), values.gather(1, hi)
        t = ((xt - k_lo) / (k_hi - k_lo).clamp_min(1e-6)).clamp(0.0, 1.0)
        return (v_lo + t * (v_hi - v_lo)).t()


def _exportable_network(model: TabularModel) -> nn.Module:
    """A fresh copy of the model's network (the model's own module stays untouched) with every quantile scaling
    replaced by its exportable twin."""
    assert model.network_config is not None and model.state_dict is not None
    network = build_network(model.network_config, model.preprocessing)
    network.load_state_dict(model.state_dict)
    for name, module in list(network.named_modules()):
        if isinstance(module, QuantileScaling):
            parent, _, attr = name.rpartition(".")
            setattr(network.get_submodule(parent), attr, _CountingQuantileScaling(module))
    return _Probability(network).eval()


def network_model(model: TabularModel) -> onnx.ModelProto:
    """The network as ONNX through torch's TorchScript exporter (``dynamo=False``: the dynamo exporter needs
    onnxscript, which this package does not ship), batch size dynamic."""
    pre = model.preprocessing
    example = (
        torch.zeros(2, pre.n_numeric_inputs, dtype=torch.float32),
        torch.full((2, len(pre.categorical)), MISSING_INDEX, dtype=torch.int64),
    )
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        torch.onnx.export(
            _exportable_network(model),
            example,
            buffer,
            dynamo=False,
            input_names=[NUMERIC, CATEGORICAL],
            output_names=[SCORE],
            dynamic_axes={NUMERIC: {0: "rows"}, CATEGORICAL: {0: "rows"}, SCORE: {0: "rows"}},
            opset_version=OPSET,
        )
    exported = onnx.load_from_string(buffer.getvalue())
    if not any(o.domain == "ai.onnx.ml" for o in exported.opset_import):
        exported.opset_import.append(helper.make_opsetid("ai.onnx.ml", ML_OPSET))
    return exported


def logistic_model(model: TabularModel) -> onnx.ModelProto:
    """The logistic baseline as the bundle computes it in float64: numeric part by matmul, plus one gathered
    weight per categorical column."""
    coef_num, coef_cat = model._logistic_tables()
    assert model.logistic is not None
    nodes = [
        helper.make_node("Cast", [NUMERIC], ["x"], to=TensorProto.DOUBLE),
        const("coef", coef_num.reshape(-1, 1), np.float64),
        helper.make_node("MatMul", ["x", "coef"], ["xw"]),
        const("flat", [-1], np.int64),
        helper.make_node("Reshape", ["xw", "flat"], ["xw_flat"]),
        const("intercept", model.logistic.intercept, np.float64),
        helper.make_node("Add", ["xw_flat", "intercept"], ["z0"]),
    ]
    z = "z0"
    for j, weights in enumerate(coef_cat):
        nodes += [
            const(f"col{j}", j, np.int64),
            helper.make_node("Gather", [CATEGORICAL, f"col{j}"], [f"code{j}"], axis=1),
            const(f"w{j}", weights, np.float64),
            helper.make_node("Gather", [f"w{j}", f"code{j}"], [f"cw{j}"], axis=0),
            helper.make_node("Add", [z, f"cw{j}"], [f"z{j + 1}"]),
        ]
        z = f"z{j + 1}"
    nodes.append(helper.make_node("Sigmoid", [z], [SCORE]))
    pre = model.preprocessing
    graph = helper.make_graph(
        nodes,
        "logistic",
        [
            helper.make_tensor_value_info(NUMERIC, TensorProto.FLOAT, ["rows", pre.n_numeric_inputs]),
            helper.make_tensor_value_info(CATEGORICAL, TensorProto.INT64, ["rows", len(pre.categorical)]),
        ],
        [helper.make_tensor_value_info(SCORE, TensorProto.DOUBLE, ["rows"])],
    )
    return helper.make_model(graph, opset_imports=opsets())
