"""A stored TabularModel as one ONNX graph with its preprocessing inside, for applications that embed the model.

The graph is three parts composed with ``onnx.compose``: the preprocessing (``Preprocessing.transform`` in ONNX
ops, or for a gbdt ``TreeInputs.design``), the scorer (the torch network through ``torch.onnx.export``, the
logistic coefficients, or the LightGBM trees as one float64 ``TreeEnsembleRegressor``), and the decision
(threshold, label, label name). An application runs it with onnxruntime alone: no Dagster, BentoML or ml_assets.

Inputs, one per feature column, shape ``(rows, 1)``:

- numeric columns: ``tensor(double)`` (numpy's default float, and exact for every int64 the service accepts up to
  2**53); ``NaN`` is missing, as a null is for the service.
- categorical columns: ``tensor(string)``, the category as the pipeline holds it: trimmed text, and for columns
  whose categories land as integer codes the code's digits (``"3"``), which is how the spec, the vocabulary and
  the service's logs hold them (the service turns ``3`` and ``3.0`` into ``"3"`` before scoring). ``""`` is
  missing (the service reads blank text as missing); any value the model never saw is scored as unknown, as the
  service scores it. A string input carries no null, so integer codes stay text: the one input kind that can say
  missing.

Outputs: ``probability`` (double, the positive class's probability, as the service's ``probability``), ``label``
(int64, 1 when probability >= threshold) and ``label_name`` (the target category the label stands for).
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
import torch
from onnx import TensorProto, compose, helper, numpy_helper
from torch import nn

from ml_assets.dataset import DatasetSpec
from ml_assets.model.bundle import TabularModel
from ml_assets.model.network import QuantileScaling, build_network
from ml_assets.model.preprocessing import CLIP, MISSING_INDEX, UNKNOWN_INDEX

OPSET = 17  # ai.onnx: what torch's TorchScript exporter writes by default; onnxruntime runs it
ML_OPSET = 3  # ai.onnx.ml: LabelEncoder with string keys and int64 values (and the reverse)
PROBABILITY, LABEL, LABEL_NAME = "probability", "label", "label_name"
MISSING_TEXT = ""  # a missing category in a string tensor (the service reads blank text as missing)
SUPPORTED_KINDS = ("mlp", "transformer", "ensemble", "logistic", "gbdt")
OUTPUTS = (PROBABILITY, LABEL, LABEL_NAME)
_NUMERIC, _CATEGORICAL, _SCORE = "pre/numeric", "pre/categorical", "score"  # names between the parts
_TREE_INPUT = "pre/trees"  # a gbdt's design matrix: float64, the booster's feature order
_PREFIX, _DECIDE = "score/", "decide/score"  # every name inside the graph has a '/': no feature column clashes


class ExportError(ValueError):
    """A model that cannot be exported (its kind, or a spec that does not match it)."""


@dataclass(frozen=True)
class EmbeddedInput:
    """One input of the exported graph: a feature column, its tensor type and what a value means."""

    name: str
    categorical: bool
    doc: str


def export_onnx(model: TabularModel, spec: DatasetSpec | None = None, model_tag: str = "") -> onnx.ModelProto:
    """``model`` with its preprocessing and decision as one checked ONNX model.

    ``spec``: the dataset spec the model was trained on; it orders the inputs as the spec lists the features and
    names the label's categories (default: the model's own order, labels ``0``/``1``).
    """
    if model.kind not in SUPPORTED_KINDS:
        raise ExportError(
            f"model {model_tag or model.spec_name!r} is of kind {model.kind!r}; ONNX export supports "
            f"{', '.join(SUPPORTED_KINDS)}"
        )
    inputs = embedded_inputs(model, spec)
    clash = [i.name for i in inputs if i.name in OUTPUTS]
    if clash:
        raise ExportError(f"feature columns {clash} have the names of the exported model's outputs {list(OUTPUTS)}")
    negative, positive = _label_names(spec)
    if model.kind == "gbdt":
        pre, score = _tree_inputs_model(model, inputs), _trees_model(model)
    else:
        pre = _preprocessing_model(model, inputs)
        score = _network_model(model) if model.kind != "logistic" else _logistic_model(model)
    decide = _decision_model(model.threshold, negative, positive)
    ir_version = max(part.ir_version for part in (pre, score, decide))
    for part in (pre, score, decide):  # one IR version for compose
        part.ir_version = ir_version
    wired = [(o, o) for o in (_NUMERIC, _CATEGORICAL, _TREE_INPUT) if o in {i.name for i in score.graph.input}]
    merged = compose.merge_models(pre, score, io_map=wired, outputs=[_PREFIX + _SCORE], prefix2=_PREFIX)
    merged = compose.merge_models(merged, decide, io_map=[(_PREFIX + _SCORE, _DECIDE)], outputs=list(OUTPUTS))
    merged.graph.name = f"ml_assets_{model.spec_name}"
    merged.producer_name = "ml-assets"
    merged.doc_string = (
        f"{model.kind} model {model_tag} of dataset {model.spec_name} with its preprocessing: one input per feature "
        f"(numbers as double, NaN missing; categories as text, '' missing), outputs probability, label, label_name"
    )
    for graph_input in merged.graph.input:
        graph_input.doc_string = next(i.doc for i in inputs if i.name == graph_input.name)
    helper.set_model_props(
        merged,
        {
            "model_tag": model_tag,
            "kind": model.kind,
            "dataset": model.spec_name,
            "threshold": repr(float(model.threshold)),
            "positive_label": positive,
            "negative_label": negative,
            "numeric_inputs": ",".join(i.name for i in inputs if not i.categorical),
            "categorical_inputs": ",".join(i.name for i in inputs if i.categorical),
            "missing": "NaN for a number, '' for a category",
        },
    )
    onnx.checker.check_model(merged, full_check=True)
    return merged


def embedded_inputs(model: TabularModel, spec: DatasetSpec | None = None) -> list[EmbeddedInput]:
    """The graph's inputs in order: the spec's feature order when given (it must hold the model's features)."""
    pre = model.preprocessing
    names = pre.feature_names
    if spec is not None:
        spec_names = [c.name for c in spec.feature_columns]
        if set(spec_names) != set(names):
            raise ExportError(
                f"spec {spec.name!r} has features {spec_names}, but the model was trained on {names}: export it "
                "with the spec it was trained on (ML_ASSETS_DATASET_SPEC)"
            )
        names = spec_names
    vocab = {v.name: v.values for v in pre.categorical}
    out = []
    for name in names:
        if name in vocab:
            known = ", ".join(vocab[name][:20]) + (", ..." if len(vocab[name]) > 20 else "")
            doc = f"category as text, '' when missing, any other value scored as unknown; known: {known}"
            out.append(EmbeddedInput(name, True, doc))
        else:
            out.append(EmbeddedInput(name, False, "number as double, NaN when missing"))
    return out


def onnx_feeds(inputs: Sequence[EmbeddedInput], records: Sequence[dict[str, Any]]) -> dict[str, np.ndarray]:
    """JSON-like records (the service's request rows: None for missing) as the graph's input arrays."""
    feeds: dict[str, np.ndarray] = {}
    for item in inputs:
        values = [r.get(item.name) for r in records]
        if item.categorical:
            text = [MISSING_TEXT if v is None else str(v) for v in values]
            feeds[item.name] = np.array(text, dtype=object).reshape(-1, 1)
        else:
            feeds[item.name] = np.array([math.nan if v is None else v for v in values], dtype=np.float64).reshape(-1, 1)
    return feeds


def to_bytes(model: onnx.ModelProto) -> bytes:
    return model.SerializeToString()


# ---- the three parts --------------------------------------------------------------------------------------------
def _opsets() -> list[onnx.OperatorSetIdProto]:
    return [helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", ML_OPSET)]


def _const(name: str, value: Any, dtype: Any) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(value, dtype=dtype), name))


def _preprocessing_model(model: TabularModel, inputs: list[EmbeddedInput]) -> onnx.ModelProto:
    """Raw columns -> ``numeric`` float [rows, 2k] (value, missing flag per column) and ``categorical`` int64
    [rows, c], as ``Preprocessing.transform``: the same float64 arithmetic, then float32."""
    pre = model.preprocessing
    nodes: list[onnx.NodeProto] = []
    numeric_parts: list[str] = []
    for j, stats in enumerate(pre.numeric):
        x, p = stats.name, f"pre/n{j}/"
        nodes.append(helper.make_node("IsNaN", [x], [p + "missing"]))
        value = x
        if stats.log1p:  # log1p(clip(x, 0)): a NaN stays NaN and is filled below
            nodes += [
                _const(p + "zero", 0.0, np.float64),
                _const(p + "one", 1.0, np.float64),
                helper.make_node("Max", [x, p + "zero"], [p + "clipped"]),
                helper.make_node("Add", [p + "clipped", p + "one"], [p + "shifted"]),
                helper.make_node("Log", [p + "shifted"], [p + "log"]),
            ]
            value = p + "log"
        nodes += [
            _const(p + "fill", stats.fill, np.float64),
            _const(p + "mean", stats.mean, np.float64),
            _const(p + "std", stats.std, np.float64),
            _const(p + "lo", -CLIP, np.float64),
            _const(p + "hi", CLIP, np.float64),
            helper.make_node("Where", [p + "missing", p + "fill", value], [p + "filled"]),
            helper.make_node("Sub", [p + "filled", p + "mean"], [p + "centred"]),
            helper.make_node("Div", [p + "centred", p + "std"], [p + "scaled"]),
            helper.make_node("Clip", [p + "scaled", p + "lo", p + "hi"], [p + "clip"]),
            helper.make_node("Cast", [p + "clip"], [p + "value"], to=TensorProto.FLOAT),
            helper.make_node("Cast", [p + "missing"], [p + "flag"], to=TensorProto.FLOAT),
        ]
        numeric_parts += [p + "value", p + "flag"]
    categorical_parts: list[str] = []
    for j, vocab in enumerate(pre.categorical):
        keys = [MISSING_TEXT, *vocab.values] if MISSING_TEXT not in vocab.values else list(vocab.values)
        codes = [MISSING_INDEX] * (len(keys) - len(vocab.values)) + list(range(2, len(vocab.values) + 2))
        out = f"pre/c{j}/code"
        nodes.append(
            helper.make_node(
                "LabelEncoder",
                [vocab.name],
                [out],
                domain="ai.onnx.ml",
                keys_strings=keys,
                values_int64s=codes,
                default_int64=UNKNOWN_INDEX,
            )
        )
        categorical_parts.append(out)
    first = inputs[0].name
    nodes += _concat_or_empty(numeric_parts, _NUMERIC, first, np.float32)
    nodes += _concat_or_empty(categorical_parts, _CATEGORICAL, first, np.int64)
    graph_inputs = [
        helper.make_tensor_value_info(i.name, TensorProto.STRING if i.categorical else TensorProto.DOUBLE, ["rows", 1])
        for i in inputs
    ]
    outputs = [
        helper.make_tensor_value_info(_NUMERIC, TensorProto.FLOAT, ["rows", pre.n_numeric_inputs]),
        helper.make_tensor_value_info(_CATEGORICAL, TensorProto.INT64, ["rows", len(pre.categorical)]),
    ]
    graph = helper.make_graph(nodes, "preprocessing", graph_inputs, outputs)
    return helper.make_model(graph, opset_imports=_opsets())


def _concat_or_empty(parts: list[str], out: str, any_input: str, dtype: Any) -> list[onnx.NodeProto]:
    """Concatenate the (rows, 1) columns, or a (rows, 0) tensor when there are none."""
    if parts:
        return [helper.make_node("Concat", parts, [out], axis=1)]
    p = f"pre/{out}/"
    return [
        helper.make_node("Shape", [any_input], [p + "rows"], start=0, end=1),
        _const(p + "zero", [0], np.int64),
        helper.make_node("Concat", [p + "rows", p + "zero"], [p + "shape"], axis=0),
        helper.make_node(
            "ConstantOfShape", [p + "shape"], [out], value=numpy_helper.from_array(np.zeros(1, dtype=dtype))
        ),
    ]


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


def _network_model(model: TabularModel) -> onnx.ModelProto:
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
            input_names=[_NUMERIC, _CATEGORICAL],
            output_names=[_SCORE],
            dynamic_axes={_NUMERIC: {0: "rows"}, _CATEGORICAL: {0: "rows"}, _SCORE: {0: "rows"}},
            opset_version=OPSET,
        )
    exported = onnx.load_from_string(buffer.getvalue())
    if not any(o.domain == "ai.onnx.ml" for o in exported.opset_import):
        exported.opset_import.append(helper.make_opsetid("ai.onnx.ml", ML_OPSET))
    return exported


def _logistic_model(model: TabularModel) -> onnx.ModelProto:
    """The logistic baseline as the bundle computes it in float64: numeric part by matmul, plus one gathered
    weight per categorical column."""
    coef_num, coef_cat = model._logistic_tables()
    assert model.logistic is not None
    nodes = [
        helper.make_node("Cast", [_NUMERIC], ["x"], to=TensorProto.DOUBLE),
        _const("coef", coef_num.reshape(-1, 1), np.float64),
        helper.make_node("MatMul", ["x", "coef"], ["xw"]),
        _const("flat", [-1], np.int64),
        helper.make_node("Reshape", ["xw", "flat"], ["xw_flat"]),
        _const("intercept", model.logistic.intercept, np.float64),
        helper.make_node("Add", ["xw_flat", "intercept"], ["z0"]),
    ]
    z = "z0"
    for j, weights in enumerate(coef_cat):
        nodes += [
            _const(f"col{j}", j, np.int64),
            helper.make_node("Gather", [_CATEGORICAL, f"col{j}"], [f"code{j}"], axis=1),
            _const(f"w{j}", weights, np.float64),
            helper.make_node("Gather", [f"w{j}", f"code{j}"], [f"cw{j}"], axis=0),
            helper.make_node("Add", [z, f"cw{j}"], [f"z{j + 1}"]),
        ]
        z = f"z{j + 1}"
    nodes.append(helper.make_node("Sigmoid", [z], [_SCORE]))
    pre = model.preprocessing
    graph = helper.make_graph(
        nodes,
        "logistic",
        [
            helper.make_tensor_value_info(_NUMERIC, TensorProto.FLOAT, ["rows", pre.n_numeric_inputs]),
            helper.make_tensor_value_info(_CATEGORICAL, TensorProto.INT64, ["rows", len(pre.categorical)]),
        ],
        [helper.make_tensor_value_info(_SCORE, TensorProto.DOUBLE, ["rows"])],
    )
    return helper.make_model(graph, opset_imports=_opsets())


def _tree_inputs_model(model: TabularModel, inputs: list[EmbeddedInput]) -> onnx.ModelProto:
    """Raw columns -> the booster's design matrix (float64) as ``TreeInputs.design`` makes it: numbers as they are
    (NaN missing), a category as its position in the train vocabulary, NaN when missing or never seen (LightGBM
    reads a pandas category it does not know as missing)."""
    assert model.trees is not None
    vocab = model.trees.inputs.categorical
    nodes: list[onnx.NodeProto] = []
    columns = []
    for j, name in enumerate(model.trees.booster.feature_name()):
        out = f"pre/t{j}"
        if name in vocab:
            nodes += [
                helper.make_node(
                    "LabelEncoder",
                    [name],
                    [out + "/code"],
                    domain="ai.onnx.ml",
                    keys_strings=list(vocab[name]),
                    values_floats=[float(i) for i in range(len(vocab[name]))],
                    default_float=math.nan,
                ),
                helper.make_node("Cast", [out + "/code"], [out], to=TensorProto.DOUBLE),
            ]
            columns.append(out)
        else:
            columns.append(name)
    nodes.append(helper.make_node("Concat", columns, [_TREE_INPUT], axis=1))
    graph_inputs = [
        helper.make_tensor_value_info(i.name, TensorProto.STRING if i.categorical else TensorProto.DOUBLE, ["rows", 1])
        for i in inputs
    ]
    output = helper.make_tensor_value_info(_TREE_INPUT, TensorProto.DOUBLE, ["rows", len(columns)])
    return helper.make_model(helper.make_graph(nodes, "tree_inputs", graph_inputs, [output]), opset_imports=_opsets())


@dataclass
class _TreeNodes:
    """The attributes of one ``TreeEnsembleRegressor``, filled tree by tree."""

    tree: list[int] = field(default_factory=list)
    node: list[int] = field(default_factory=list)
    feature: list[int] = field(default_factory=list)
    mode: list[str] = field(default_factory=list)
    value: list[float] = field(default_factory=list)
    true: list[int] = field(default_factory=list)
    false: list[int] = field(default_factory=list)
    missing_true: list[int] = field(default_factory=list)
    leaf_tree: list[int] = field(default_factory=list)
    leaf_node: list[int] = field(default_factory=list)
    leaf_value: list[float] = field(default_factory=list)

    def add(self, tree: int, mode: str, feature: int = 0, value: float = 0.0, missing_true: int = 0) -> int:
        node = sum(1 for t in self.tree if t == tree)
        for column, item in zip(
            (self.tree, self.node, self.feature, self.mode, self.value, self.true, self.false, self.missing_true),
            (tree, node, feature, mode, value, 0, 0, missing_true),
            strict=True,
        ):
            column.append(item)
        return len(self.tree) - 1

    def grow(self, tree: int, split: dict[str, Any]) -> int:
        """Add LightGBM's (``dump_model``) subtree ``split``; returns the row of its root. LightGBM's decisions:
        a number goes left when ``x <= threshold``; NaN goes the default way where the feature had missing values
        in training (missing_type NaN) and is read as 0 otherwise; a category goes left when it is in the split's
        set, NaN (missing or never seen) right. Each category of a set becomes one equality node."""
        if "leaf_value" in split:
            row = self.add(tree, "LEAF")
            self.leaf_tree.append(tree)
            self.leaf_node.append(self.node[row])
            self.leaf_value.append(float(split["leaf_value"]))
            return row
        feature, missing = int(split["split_feature"]), split["missing_type"]
        if split["decision_type"] == "==":
            rows = [self.add(tree, "BRANCH_EQ", feature, float(c)) for c in str(split["threshold"]).split("||")]
            left, right = self.grow(tree, split["left_child"]), self.grow(tree, split["right_child"])
            for k, row in enumerate(rows):
                self.true[row] = self.node[left]
                self.false[row] = self.node[rows[k + 1]] if k + 1 < len(rows) else self.node[right]
            return rows[0]
        if missing == "Zero":
            raise ExportError("a LightGBM booster trained with zero_as_missing cannot be exported")
        threshold = float(split["threshold"])
        goes_left = bool(split["default_left"]) if missing == "NaN" else threshold >= 0.0  # NaN read as 0
        row = self.add(tree, "BRANCH_LEQ", feature, threshold, int(goes_left))
        left, right = self.grow(tree, split["left_child"]), self.grow(tree, split["right_child"])
        self.true[row], self.false[row] = self.node[left], self.node[right]
        return row


def _trees_model(model: TabularModel) -> onnx.ModelProto:
    """The LightGBM booster as one ``TreeEnsembleRegressor`` summing the trees' raw scores, then LightGBM's
    sigmoid. Thresholds and leaf values are float64 tensors and the input is float64, so every split compares as
    LightGBM compares (a float32 converter, such as onnxmltools', sends a value near a threshold, e.g. a
    coordinate, the other way)."""
    assert model.trees is not None
    dump = model.trees.booster.dump_model()
    objective = str(dump.get("objective", ""))
    if not objective.startswith("binary") or dump.get("num_class") != 1 or dump.get("average_output"):
        raise ExportError(f"only a binary LightGBM booster exports (this one: objective {objective!r})")
    scale = float(objective.split("sigmoid:")[1].split()[0]) if "sigmoid:" in objective else 1.0
    nodes = _TreeNodes()
    for tree, info in enumerate(dump["tree_info"]):
        nodes.grow(tree, info["tree_structure"])
    ensemble = helper.make_node(
        "TreeEnsembleRegressor",
        [_TREE_INPUT],
        ["raw"],
        domain="ai.onnx.ml",
        n_targets=1,
        aggregate_function="SUM",
        post_transform="NONE",
        nodes_treeids=nodes.tree,
        nodes_nodeids=nodes.node,
        nodes_featureids=nodes.feature,
        nodes_modes=nodes.mode,
        nodes_values_as_tensor=numpy_helper.from_array(np.array(nodes.value, dtype=np.float64)),
        nodes_truenodeids=nodes.true,
        nodes_falsenodeids=nodes.false,
        nodes_missing_value_tracks_true=nodes.missing_true,
        target_treeids=nodes.leaf_tree,
        target_nodeids=nodes.leaf_node,
        target_ids=[0] * len(nodes.leaf_tree),
        target_weights_as_tensor=numpy_helper.from_array(np.array(nodes.leaf_value, dtype=np.float64)),
    )
    graph = helper.make_graph(
        [
            ensemble,
            _const("flat", [-1], np.int64),
            helper.make_node("Reshape", ["raw", "flat"], ["raw_flat"]),
            helper.make_node("Cast", ["raw_flat"], ["raw_double"], to=TensorProto.DOUBLE),
            _const("scale", scale, np.float64),
            helper.make_node("Mul", ["raw_double", "scale"], ["scaled"]),
            helper.make_node("Sigmoid", ["scaled"], [_SCORE]),
        ],
        "lightgbm",
        [helper.make_tensor_value_info(_TREE_INPUT, TensorProto.DOUBLE, ["rows", len(dump["feature_names"])])],
        [helper.make_tensor_value_info(_SCORE, TensorProto.DOUBLE, ["rows"])],
    )
    return helper.make_model(graph, opset_imports=_opsets())


def _decision_model(threshold: float, negative: str, positive: str) -> onnx.ModelProto:
    """probability -> probability, label (probability >= threshold, as the service decides) and its name."""
    nodes = [
        helper.make_node("Identity", [_DECIDE], [PROBABILITY]),
        _const("decide/threshold", float(threshold), np.float64),
        helper.make_node("GreaterOrEqual", [_DECIDE, "decide/threshold"], ["decide/positive"]),
        helper.make_node("Cast", ["decide/positive"], [LABEL], to=TensorProto.INT64),
        helper.make_node(
            "LabelEncoder",
            [LABEL],
            [LABEL_NAME],
            domain="ai.onnx.ml",
            keys_int64s=[0, 1],
            values_strings=[negative, positive],
            default_string="",
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "decision",
        [helper.make_tensor_value_info(_DECIDE, TensorProto.DOUBLE, ["rows"])],
        [
            helper.make_tensor_value_info(PROBABILITY, TensorProto.DOUBLE, ["rows"]),
            helper.make_tensor_value_info(LABEL, TensorProto.INT64, ["rows"]),
            helper.make_tensor_value_info(LABEL_NAME, TensorProto.STRING, ["rows"]),
        ],
    )
    return helper.make_model(graph, opset_imports=_opsets())


def _label_names(spec: DatasetSpec | None) -> tuple[str, str]:
    """(negative, positive) target categories, as the service names them; ``0``/``1`` without a spec."""
    if spec is None:
        return "0", "1"
    categories = spec.target.categories or []
    return next(c for c in categories if c != spec.positive_label), spec.positive_label
