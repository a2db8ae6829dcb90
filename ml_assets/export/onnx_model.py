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

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, compose, helper, numpy_helper

from ml_assets.dataset import DatasetSpec
from ml_assets.export.onnx_network import logistic_model, network_model
from ml_assets.export.onnx_parts import (
    CATEGORICAL,
    MISSING_TEXT,
    NUMERIC,
    SCORE,
    TREE_INPUT,
    EmbeddedInput,
    ExportError,
    const,
    feature_inputs,
    opsets,
)
from ml_assets.export.onnx_trees import tree_inputs_model, trees_model
from ml_assets.model.bundle import TabularModel
from ml_assets.model.calibration import EPSILON, Calibration
from ml_assets.model.preprocessing import CLIP, MISSING_INDEX, UNKNOWN_INDEX

__all__ = ["OUTPUTS", "EmbeddedInput", "ExportError", "embedded_inputs", "export_onnx", "onnx_feeds"]
PROBABILITY, LABEL, LABEL_NAME = "probability", "label", "label_name"
OUTPUTS = (PROBABILITY, LABEL, LABEL_NAME)
SUPPORTED_KINDS = ("mlp", "transformer", "ensemble", "logistic", "gbdt")
_PREFIX, _DECIDE = "score/", "decide/score"  # the scorer's names under its prefix; the decision's input


def export_onnx(model: TabularModel, spec: DatasetSpec | None = None, model_tag: str = "") -> onnx.ModelProto:
    """``model`` with its preprocessing and decision as one checked ONNX model.

    ``spec``: the dataset spec that orders the inputs as it lists the features and names the label's categories;
    by default the one the model was trained with and carries.
    """
    spec = model.spec if spec is None else spec
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
        pre, score = tree_inputs_model(model, inputs), trees_model(model)
    else:
        pre = _preprocessing_model(model, inputs)
        score = network_model(model) if model.kind != "logistic" else logistic_model(model)
    decide = _decision_model(model.threshold, negative, positive, model.calibration)
    ir_version = max(part.ir_version for part in (pre, score, decide))
    for part in (pre, score, decide):  # one IR version for compose
        part.ir_version = ir_version
    wired = [(o, o) for o in (NUMERIC, CATEGORICAL, TREE_INPUT) if o in {i.name for i in score.graph.input}]
    merged = compose.merge_models(pre, score, io_map=wired, outputs=[_PREFIX + SCORE], prefix2=_PREFIX)
    merged = compose.merge_models(merged, decide, io_map=[(_PREFIX + SCORE, _DECIDE)], outputs=list(OUTPUTS))
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
            "calibration": (
                f"sigmoid({model.calibration.slope!r} * logit(score) + {model.calibration.intercept!r})"
                if model.calibration
                else "none: the score is the probability"
            ),
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
    """The graph's inputs in order: the feature order of ``spec``, by default the one the model carries (it must
    hold the model's features)."""
    pre = model.preprocessing
    names = pre.feature_names
    spec = model.spec if spec is None else spec
    if spec is not None:
        spec_names = [c.name for c in spec.feature_columns]
        if set(spec_names) != set(names):
            raise ExportError(
                f"spec {spec.name!r} has features {spec_names}, but the model was trained on {names}: export it "
                "with the spec it was trained on (the one the model carries)"
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


# ---- the preprocessing and the decision -------------------------------------------------------------------------
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
                const(p + "zero", 0.0, np.float64),
                const(p + "one", 1.0, np.float64),
                helper.make_node("Max", [x, p + "zero"], [p + "clipped"]),
                helper.make_node("Add", [p + "clipped", p + "one"], [p + "shifted"]),
                helper.make_node("Log", [p + "shifted"], [p + "log"]),
            ]
            value = p + "log"
        nodes += [
            const(p + "fill", stats.fill, np.float64),
            const(p + "mean", stats.mean, np.float64),
            const(p + "std", stats.std, np.float64),
            const(p + "lo", -CLIP, np.float64),
            const(p + "hi", CLIP, np.float64),
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
    nodes += _concat_or_empty(numeric_parts, NUMERIC, first, np.float32)
    nodes += _concat_or_empty(categorical_parts, CATEGORICAL, first, np.int64)
    graph_inputs = feature_inputs(inputs)
    outputs = [
        helper.make_tensor_value_info(NUMERIC, TensorProto.FLOAT, ["rows", pre.n_numeric_inputs]),
        helper.make_tensor_value_info(CATEGORICAL, TensorProto.INT64, ["rows", len(pre.categorical)]),
    ]
    graph = helper.make_graph(nodes, "preprocessing", graph_inputs, outputs)
    return helper.make_model(graph, opset_imports=opsets())


def _concat_or_empty(parts: list[str], out: str, any_input: str, dtype: Any) -> list[onnx.NodeProto]:
    """Concatenate the (rows, 1) columns, or a (rows, 0) tensor when there are none."""
    if parts:
        return [helper.make_node("Concat", parts, [out], axis=1)]
    p = f"pre/{out}/"
    return [
        helper.make_node("Shape", [any_input], [p + "rows"], start=0, end=1),
        const(p + "zero", [0], np.int64),
        helper.make_node("Concat", [p + "rows", p + "zero"], [p + "shape"], axis=0),
        helper.make_node(
            "ConstantOfShape", [p + "shape"], [out], value=numpy_helper.from_array(np.zeros(1, dtype=dtype))
        ),
    ]


def _decision_model(
    threshold: float, negative: str, positive: str, calibration: Calibration | None = None
) -> onnx.ModelProto:
    """score -> probability (the score through the model's calibration, ``Calibration.apply`` in float64), label
    (probability >= threshold, as the service decides) and its name."""
    nodes: list[onnx.NodeProto] = []
    if calibration is None:
        nodes.append(helper.make_node("Identity", [_DECIDE], [PROBABILITY]))
    else:  # sigmoid(slope * logit(clip(p)) + intercept)
        c = "decide/calibration/"
        nodes += [
            const(c + "lo", EPSILON, np.float64),
            const(c + "hi", 1.0 - EPSILON, np.float64),
            const(c + "one", 1.0, np.float64),
            const(c + "slope", calibration.slope, np.float64),
            const(c + "intercept", calibration.intercept, np.float64),
            helper.make_node("Clip", [_DECIDE, c + "lo", c + "hi"], [c + "p"]),
            helper.make_node("Log", [c + "p"], [c + "log_p"]),
            helper.make_node("Sub", [c + "one", c + "p"], [c + "q"]),
            helper.make_node("Log", [c + "q"], [c + "log_q"]),
            helper.make_node("Sub", [c + "log_p", c + "log_q"], [c + "logit"]),
            helper.make_node("Mul", [c + "logit", c + "slope"], [c + "scaled"]),
            helper.make_node("Add", [c + "scaled", c + "intercept"], [c + "z"]),
            helper.make_node("Sigmoid", [c + "z"], [PROBABILITY]),
        ]
    nodes += [
        const("decide/threshold", float(threshold), np.float64),
        helper.make_node("GreaterOrEqual", [PROBABILITY, "decide/threshold"], ["decide/positive"]),
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
    return helper.make_model(graph, opset_imports=opsets())


def _label_names(spec: DatasetSpec | None) -> tuple[str, str]:
    """(negative, positive) target categories, as the service names them; ``0``/``1`` without a spec."""
    if spec is None:
        return "0", "1"
    categories = spec.target.categories or []
    return next(c for c in categories if c != spec.positive_label), spec.positive_label
