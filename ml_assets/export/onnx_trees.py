"""A gbdt's LightGBM booster as ONNX: the tree inputs as ``TreeInputs.design`` builds them, and the trees as one
``TreeEnsembleRegressor`` with float64 thresholds, leaf values and input, so every split compares as LightGBM's does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ml_assets.export.onnx_parts import SCORE, TREE_INPUT, EmbeddedInput, ExportError, const, feature_inputs, opsets
from ml_assets.model.bundle import TabularModel


def tree_inputs_model(model: TabularModel, inputs: list[EmbeddedInput]) -> onnx.ModelProto:
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
    nodes.append(helper.make_node("Concat", columns, [TREE_INPUT], axis=1))
    graph_inputs = feature_inputs(inputs)
    output = helper.make_tensor_value_info(TREE_INPUT, TensorProto.DOUBLE, ["rows", len(columns)])
    return helper.make_model(helper.make_graph(nodes, "tree_inputs", graph_inputs, [output]), opset_imports=opsets())


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
    _per_tree: dict[int, int] = field(default_factory=dict)  # nodes so far per tree: the next node's id

    def add(self, tree: int, mode: str, feature: int = 0, value: float = 0.0, missing_true: int = 0) -> int:
        node = self._per_tree.get(tree, 0)
        self._per_tree[tree] = node + 1
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


def trees_model(model: TabularModel) -> onnx.ModelProto:
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
        [TREE_INPUT],
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
            const("flat", [-1], np.int64),
            helper.make_node("Reshape", ["raw", "flat"], ["raw_flat"]),
            helper.make_node("Cast", ["raw_flat"], ["raw_double"], to=TensorProto.DOUBLE),
            const("scale", scale, np.float64),
            helper.make_node("Mul", ["raw_double", "scale"], ["scaled"]),
            helper.make_node("Sigmoid", ["scaled"], [SCORE]),
        ],
        "lightgbm",
        [helper.make_tensor_value_info(TREE_INPUT, TensorProto.DOUBLE, ["rows", len(dump["feature_names"])])],
        [helper.make_tensor_value_info(SCORE, TensorProto.DOUBLE, ["rows"])],
    )
    return helper.make_model(graph, opset_imports=opsets())
