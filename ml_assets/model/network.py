"""Torch networks for tabular rows, built from the fitted preprocessing (so from the DatasetSpec).

Two architectures, chosen by ``NetworkConfig.architecture``, because a team should compare architectures rather
than commit to one: an MLP over numeric inputs and categorical embeddings, and a small feature-tokenizer +
transformer encoder (FT-Transformer, Gorishniy et al. 2021) where every feature becomes a token.
Both take ``(numeric float32 [n, k], categorical int64 [n, c])`` and return one logit per row. Numeric inputs stay
float32 when the network's weights are bf16 or fp16 (GPU training): scaling and encodings run in float32 and
their outputs are cast to the weights' type, so training sees the values serving (float32) sees.

Numeric columns can enter either network through an embedding (Gorishniy et al. 2022, "On Embeddings for Numerical
Features in Tabular Deep Learning"): ``ple``, a piecewise-linear encoding over the train quantiles the
preprocessing keeps, or ``periodic``, learned sin/cos frequencies followed by a linear layer and ReLU (PLR). A
plain MLP sees one scaled value per column and cannot bend it; both embeddings let it model non-monotone and
periodic effects. An ``ensemble`` is several such networks averaged in probability: one module, one state_dict,
so it is saved, loaded and served like any single network.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from ml_assets.model.preprocessing import Preprocessing

Architecture = Literal["mlp", "transformer", "ensemble"]
NumericEmbedding = Literal["none", "ple", "periodic"]
NumericScaling = Literal["standard", "quantile"]
PAD_EDGE = 1e4  # left edge of padding bins: no standardised value (clipped to +-5) reaches them, so they read 0


class NetworkConfig(BaseModel):
    """Architecture and size; saved with the model so serving rebuilds the same module."""

    model_config = ConfigDict(extra="forbid")

    architecture: Architecture = "mlp"
    hidden: list[int] = Field(default_factory=lambda: [128, 64], description="MLP hidden layer widths")
    max_embedding_dim: int = Field(16, ge=1, description="MLP: embedding width cap per categorical")
    d_token: int = Field(32, ge=4, description="transformer: token width")
    n_layers: int = Field(2, ge=1, description="transformer: encoder layers")
    n_heads: int = Field(4, ge=1, description="transformer: attention heads (must divide d_token)")
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    numeric_scaling: NumericScaling = Field(
        "standard", description="numeric values as standardised (standard) or mapped to normal scores (quantile)"
    )
    numeric_embedding: NumericEmbedding = Field(
        "none", description="how numeric columns enter: none (scaled value), ple (piecewise linear), periodic"
    )
    d_embedding: int = Field(8, ge=1, description="MLP: width of each numeric column's embedding (ple, periodic)")
    n_frequencies: int = Field(16, ge=1, description="periodic: learned frequencies per numeric column")
    frequency_scale: float = Field(0.1, gt=0, description="periodic: std of the initial frequencies")
    logit_offset: float = Field(0.0, description="added to every logit: undoes the prior shift of class weighting")
    members: list[NetworkConfig] = Field(default_factory=list, description="ensemble: the averaged networks")


class FloatTables:
    """Constant float32 tables rebuilt from the preprocessing (so not in the state_dict), kept out of the module's
    buffers on purpose: DeepSpeed's bf16 casts every floating buffer, and bin edges or quantile knots rounded to 3
    digits would make training disagree with serving. Copied to a device on first use there."""

    def __init__(self, **tables: torch.Tensor):
        self._by_device: dict[torch.device, dict[str, torch.Tensor]] = {torch.device("cpu"): tables}

    def on(self, device: torch.device, *names: str) -> tuple[torch.Tensor, ...]:
        if device not in self._by_device:
            cpu = self._by_device[torch.device("cpu")]
            self._by_device[device] = {k: v.to(device) for k, v in cpu.items()}
        tables = self._by_device[device]
        return tuple(tables[n] for n in names)


class QuantileScaling(nn.Module):
    """Standardised value -> normal score of its train quantile, linear between the preprocessing's knots and flat
    beyond them (Gorishniy et al. scale inputs so): a spike or a heavy tail no longer squeezes the other values."""

    def __init__(self, points: list[list[float]], scores: list[list[float]]):
        super().__init__()
        width = max(2, max(len(p) for p in points))
        knots = torch.zeros(len(points), width)
        values = torch.zeros(len(points), width)
        for j, (p, z) in enumerate(zip(points, scores, strict=True)):
            if not p:  # a column with no values in train: every row maps to 0
                knots[j] = PAD_EDGE + torch.arange(width, dtype=torch.float32)
                continue
            n = len(p)
            knots[j, :n], values[j, :n] = torch.tensor(p), torch.tensor(z)
            knots[j, n:] = PAD_EDGE + torch.arange(width - n, dtype=torch.float32)  # padding repeats the last score
            values[j, n:] = z[-1]
        self.tables = FloatTables(knots=knots, values=values)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [n, k] -> [n, k]
        knots, values = self.tables.on(x.device, "knots", "values")
        xt = x.float().t().contiguous()
        hi = torch.searchsorted(knots, xt).clamp(1, knots.shape[1] - 1)
        lo = hi - 1
        k_lo, k_hi = knots.gather(1, lo), knots.gather(1, hi)
        v_lo, v_hi = values.gather(1, lo), values.gather(1, hi)
        t = ((xt - k_lo) / (k_hi - k_lo).clamp_min(1e-6)).clamp(0.0, 1.0)
        return (v_lo + t * (v_hi - v_lo)).t()


def numeric_scaling(cfg: NetworkConfig, preprocessing: Preprocessing) -> nn.Module | None:
    """The quantile scaling of ``cfg``, or None for the preprocessing's standardised values as they are."""
    if cfg.numeric_scaling != "quantile" or not preprocessing.numeric:
        return None
    if preprocessing.version < 2:
        raise ValueError(
            f"numeric_scaling 'quantile' needs the quantile map of preprocessing version 2; the preprocessing of "
            f"{preprocessing.spec_name!r} is version {preprocessing.version}"
        )
    return QuantileScaling(
        [n.quantile_points for n in preprocessing.numeric], [n.quantile_scores for n in preprocessing.numeric]
    )


class PiecewiseLinear(nn.Module):
    """Column j's value x -> [clamp((x - e_t) / (e_{t+1} - e_t), 0, 1) for each of its quantile bins t]: a
    thermometer code that stays linear inside a bin. Columns with fewer bins are padded with bins that read 0."""

    def __init__(self, bins: list[list[float]]):
        super().__init__()
        width = max(1, max(len(b) for b in bins) - 1)  # a constant column has no bins: it reads 0 throughout
        left = torch.full((len(bins), width), PAD_EDGE)
        size = torch.ones(len(bins), width)
        for j, edges in enumerate(bins):
            if len(edges) < 2:
                continue
            e = torch.tensor(edges, dtype=torch.float32)
            left[j, : len(e) - 1], size[j, : len(e) - 1] = e[:-1], (e[1:] - e[:-1]).clamp_min(1e-6)
        self.tables = FloatTables(left=left, size=size)
        self.width = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [n, k] -> [n, k, width]
        left, size = self.tables.on(x.device, "left", "size")
        return ((x.float().unsqueeze(-1) - left) / size).clamp(0.0, 1.0)


class Periodic(nn.Module):
    """Column j's value x -> [cos(2 pi c_j x), sin(2 pi c_j x)] with learned frequencies c_j."""

    def __init__(self, n_columns: int, n_frequencies: int, scale: float):
        super().__init__()
        self.frequencies = nn.Parameter(torch.randn(n_columns, n_frequencies) * scale)
        self.width = 2 * n_frequencies

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [n, k] -> [n, k, 2m]
        # float32 even when the network trains in bf16: at high frequencies bf16's 3 digits would scramble the phase
        z = 2 * math.pi * self.frequencies.float() * x.float().unsqueeze(-1)
        return torch.cat([torch.cos(z), torch.sin(z)], dim=-1)


class NumericEmbeddings(nn.Module):
    """Each numeric column's encoding through its own linear layer: [n, k] values -> [n, k, d] (ReLU after the
    periodic encoding, as in PLR)."""

    def __init__(self, cfg: NetworkConfig, bins: list[list[float]], d: int):
        super().__init__()
        k = len(bins)
        if cfg.numeric_embedding == "ple":
            self.encode: nn.Module = PiecewiseLinear(bins)
        else:
            self.encode = Periodic(k, cfg.n_frequencies, cfg.frequency_scale)
        width = self.encode.width
        bound = 1 / math.sqrt(width)
        self.weight = nn.Parameter(torch.empty(k, width, d).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(k, d).uniform_(-bound, bound))
        self.relu = cfg.numeric_embedding == "periodic"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        encoded = self.encode(x).to(self.weight.dtype)  # [n, k, w]
        # one matrix per column: a batched matmul over columns (3x faster than the equivalent einsum on CPU)
        out = torch.bmm(encoded.transpose(0, 1), self.weight).transpose(0, 1) + self.bias
        return torch.relu(out) if self.relu else out


class TabularMLP(nn.Module):
    def __init__(
        self,
        n_numeric: int,
        cardinalities: list[int],
        cfg: NetworkConfig,
        bins: list[list[float]],
        scaling: nn.Module | None = None,
    ):
        super().__init__()
        self.scaling = scaling
        dims = [min(cfg.max_embedding_dim, max(2, round(1.6 * card**0.56))) for card in cardinalities]
        self.embeddings = nn.ModuleList(nn.Embedding(card, dim) for card, dim in zip(cardinalities, dims, strict=True))
        self.offset = cfg.logit_offset
        width = n_numeric + sum(dims)
        if cfg.numeric_embedding != "none" and bins:
            self.numeric_embedding = NumericEmbeddings(cfg, bins, cfg.d_embedding)
            width += len(bins) * (cfg.d_embedding - 1)  # each value becomes d numbers; its missing flag stays
        layers: list[nn.Module] = []
        for h in cfg.hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(cfg.dropout)]
            width = h
        layers.append(nn.Linear(width, 1))
        self.body = nn.Sequential(*layers)

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        values, flags = numeric[:, 0::2], numeric[:, 1::2]
        if self.scaling is not None:
            values = self.scaling(values)
            numeric = torch.stack([values, flags], dim=2).flatten(1)  # value, flag, value, flag, ... as before
        if hasattr(self, "numeric_embedding"):
            numeric = torch.cat([self.numeric_embedding(values).flatten(1), flags.to(self.body[0].weight.dtype)], dim=1)
        parts = [numeric.to(self.body[0].weight.dtype)] + [
            emb(categorical[:, j]) for j, emb in enumerate(self.embeddings)
        ]
        return self.body(torch.cat(parts, dim=1)).squeeze(-1) + self.offset


class FeatureTokenizer(nn.Module):
    """Numeric value v_j -> v_j * W_j + b_j; category c_j -> E_j[c_j] + b_j; plus a learned [CLS] token."""

    def __init__(
        self,
        n_numeric: int,
        cardinalities: list[int],
        d_token: int,
        cfg: NetworkConfig,
        bins: list[list[float]],
        scaling: nn.Module | None = None,
    ):
        super().__init__()
        self.scaling = scaling
        bound = 1 / math.sqrt(d_token)
        if cfg.numeric_embedding != "none" and bins:
            # values through their embedding; the missing flags stay tokens of their own (v * W + b)
            self.numeric_embedding = NumericEmbeddings(cfg, bins, d_token)
            n_numeric = len(bins)
        self.num_weight = nn.Parameter(torch.empty(n_numeric, d_token).uniform_(-bound, bound))
        self.num_bias = nn.Parameter(torch.empty(n_numeric, d_token).uniform_(-bound, bound))
        self.cat_embedding = nn.Embedding(max(1, sum(cardinalities)), d_token)
        offsets = torch.tensor([0, *cardinalities[:-1]], dtype=torch.long).cumsum(0) if cardinalities else None
        self.register_buffer("cat_offsets", offsets if offsets is not None else torch.zeros(0, dtype=torch.long))
        self.cat_bias = nn.Parameter(torch.empty(len(cardinalities), d_token).uniform_(-bound, bound))
        self.cls = nn.Parameter(torch.empty(1, 1, d_token).uniform_(-bound, bound))

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        if self.scaling is not None:
            values = self.scaling(numeric[:, 0::2])
            numeric = torch.stack([values, numeric[:, 1::2]], dim=2).flatten(1)
        if hasattr(self, "numeric_embedding"):
            flags = numeric[:, 1::2].to(self.num_weight.dtype)
            tokens = [self.numeric_embedding(numeric[:, 0::2]), flags.unsqueeze(-1) * self.num_weight + self.num_bias]
        else:
            tokens = [numeric.to(self.num_weight.dtype).unsqueeze(-1) * self.num_weight + self.num_bias]
        if categorical.shape[1]:
            tokens.append(self.cat_embedding(categorical + self.cat_offsets) + self.cat_bias)
        x = torch.cat(tokens, dim=1)
        return torch.cat([self.cls.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)


class TabularTransformer(nn.Module):
    def __init__(
        self,
        n_numeric: int,
        cardinalities: list[int],
        cfg: NetworkConfig,
        bins: list[list[float]],
        scaling: nn.Module | None = None,
    ):
        super().__init__()
        if cfg.d_token % cfg.n_heads:
            raise ValueError(f"transformer: d_token {cfg.d_token} is not divisible by n_heads {cfg.n_heads}")
        self.offset = cfg.logit_offset
        self.tokenizer = FeatureTokenizer(n_numeric, cardinalities, cfg.d_token, cfg, bins, scaling)
        layer = nn.TransformerEncoderLayer(
            d_model=cfg.d_token,
            nhead=cfg.n_heads,
            dim_feedforward=2 * cfg.d_token,
            dropout=cfg.dropout,
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers=cfg.n_layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(cfg.d_token), nn.ReLU(), nn.Linear(cfg.d_token, 1))

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        tokens = self.encoder(self.tokenizer(numeric, categorical))
        return self.head(tokens[:, 0]).squeeze(-1) + self.offset


class Ensemble(nn.Module):
    """Members averaged in probability; returns the logit of the mean so callers apply one sigmoid as usual."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        probs = torch.stack([torch.sigmoid(m(numeric, categorical).double()) for m in self.members]).mean(0)
        return torch.logit(probs.clamp(1e-12, 1 - 1e-12))


def build_network(cfg: NetworkConfig, preprocessing: Preprocessing) -> nn.Module:
    """The module for a fitted preprocessing: input widths, vocabularies and the piecewise-linear bins come from
    it (and so from the spec)."""
    n_numeric, cards = preprocessing.n_numeric_inputs, preprocessing.cardinalities
    bins = [n.bins for n in preprocessing.numeric]
    if cfg.numeric_embedding == "ple" and preprocessing.version < 2:
        raise ValueError(
            f"numeric_embedding 'ple' needs the quantile bins of preprocessing version 2; the preprocessing of "
            f"{preprocessing.spec_name!r} is version {preprocessing.version}"
        )
    scaling = numeric_scaling(cfg, preprocessing)
    if scaling is not None:  # the bins follow the values onto the normal-score scale
        bins = [_scaled_bins(n.bins, n.quantile_points, n.quantile_scores) for n in preprocessing.numeric]
    if cfg.architecture == "mlp":
        return TabularMLP(n_numeric, cards, cfg, bins, scaling)
    if cfg.architecture == "transformer":
        return TabularTransformer(n_numeric, cards, cfg, bins, scaling)
    if cfg.architecture == "ensemble":
        if not cfg.members:
            raise ValueError("an ensemble network needs at least one member")
        return Ensemble([build_network(m, preprocessing) for m in cfg.members])
    raise ValueError(f"unknown architecture {cfg.architecture!r}; choose 'mlp', 'transformer' or 'ensemble'")


def _scaled_bins(bins: list[float], points: list[float], scores: list[float]) -> list[float]:
    """Bin edges mapped as QuantileScaling maps values (linear between knots, flat beyond), distinct and sorted."""
    if len(bins) < 2 or not points:
        return []
    edges = sorted({float(v) for v in np.interp(bins, points, scores)})
    return edges if len(edges) > 1 else []
