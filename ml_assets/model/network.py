"""Torch networks for tabular rows, built from the fitted preprocessing (so from the DatasetSpec).

Two architectures, chosen by ``NetworkConfig.architecture``, because a team should compare architectures rather
than commit to one: an MLP over numeric inputs and categorical embeddings, and a small feature-tokenizer +
transformer encoder (FT-Transformer, Gorishniy et al. 2021) where every feature becomes a token.
Both take ``(numeric float32 [n, k], categorical int64 [n, c])`` and return one logit per row.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from ml_assets.model.preprocessing import Preprocessing

Architecture = Literal["mlp", "transformer"]


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


class TabularMLP(nn.Module):
    def __init__(self, n_numeric: int, cardinalities: list[int], cfg: NetworkConfig):
        super().__init__()
        dims = [min(cfg.max_embedding_dim, max(2, round(1.6 * card**0.56))) for card in cardinalities]
        self.embeddings = nn.ModuleList(nn.Embedding(card, dim) for card, dim in zip(cardinalities, dims, strict=True))
        layers: list[nn.Module] = []
        width = n_numeric + sum(dims)
        for h in cfg.hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(cfg.dropout)]
            width = h
        layers.append(nn.Linear(width, 1))
        self.body = nn.Sequential(*layers)

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        parts = [numeric] + [emb(categorical[:, j]) for j, emb in enumerate(self.embeddings)]
        return self.body(torch.cat(parts, dim=1)).squeeze(-1)


class FeatureTokenizer(nn.Module):
    """Numeric value v_j -> v_j * W_j + b_j; category c_j -> E_j[c_j] + b_j; plus a learned [CLS] token."""

    def __init__(self, n_numeric: int, cardinalities: list[int], d_token: int):
        super().__init__()
        bound = 1 / math.sqrt(d_token)
        self.num_weight = nn.Parameter(torch.empty(n_numeric, d_token).uniform_(-bound, bound))
        self.num_bias = nn.Parameter(torch.empty(n_numeric, d_token).uniform_(-bound, bound))
        self.cat_embedding = nn.Embedding(max(1, sum(cardinalities)), d_token)
        offsets = torch.tensor([0, *cardinalities[:-1]], dtype=torch.long).cumsum(0) if cardinalities else None
        self.register_buffer("cat_offsets", offsets if offsets is not None else torch.zeros(0, dtype=torch.long))
        self.cat_bias = nn.Parameter(torch.empty(len(cardinalities), d_token).uniform_(-bound, bound))
        self.cls = nn.Parameter(torch.empty(1, 1, d_token).uniform_(-bound, bound))

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        tokens = [numeric.unsqueeze(-1) * self.num_weight + self.num_bias]
        if categorical.shape[1]:
            tokens.append(self.cat_embedding(categorical + self.cat_offsets) + self.cat_bias)
        x = torch.cat(tokens, dim=1)
        return torch.cat([self.cls.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)


class TabularTransformer(nn.Module):
    def __init__(self, n_numeric: int, cardinalities: list[int], cfg: NetworkConfig):
        super().__init__()
        if cfg.d_token % cfg.n_heads:
            raise ValueError(f"transformer: d_token {cfg.d_token} is not divisible by n_heads {cfg.n_heads}")
        self.tokenizer = FeatureTokenizer(n_numeric, cardinalities, cfg.d_token)
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
        return self.head(tokens[:, 0]).squeeze(-1)


def build_network(cfg: NetworkConfig, preprocessing: Preprocessing) -> nn.Module:
    """The module for a fitted preprocessing: input widths and vocabularies come from it (and so from the spec)."""
    n_numeric, cards = preprocessing.n_numeric_inputs, preprocessing.cardinalities
    if cfg.architecture == "mlp":
        return TabularMLP(n_numeric, cards, cfg)
    if cfg.architecture == "transformer":
        return TabularTransformer(n_numeric, cards, cfg)
    raise ValueError(f"unknown architecture {cfg.architecture!r}; choose 'mlp' or 'transformer'")
