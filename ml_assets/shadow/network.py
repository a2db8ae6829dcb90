"""The generator's network: a conditional tabular VAE (after TVAE, Xu et al. 2019), shared by training and sampling.

The encoder sees a row and its condition (its time in the training span), the decoder rebuilds the row from a latent
draw and the same condition, so sampling at a later condition generates a later day. Each block of the encoding
has its own likelihood: a Gaussian with a learned scale per numeric column, a Bernoulli per null indicator and a
softmax per category block.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

CONDITION_FEATURES = 5  # t, and sine/cosine at two frequencies: drift needs not be linear in time


@dataclass(frozen=True)
class GeneratorConfig:
    """The network's shape and the weight of its KL term."""

    hidden: int = 128
    latent: int = 16
    kl_weight: float = 1.0

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def condition_features(t: torch.Tensor) -> torch.Tensor:
    """Time in the span (a column) as the features the network conditions on."""
    t = t.reshape(-1, 1)
    return torch.cat(
        [t, torch.sin(math.pi * t), torch.cos(math.pi * t), torch.sin(2 * math.pi * t), torch.cos(2 * math.pi * t)],
        dim=1,
    )


class ConditionalVAE(nn.Module):
    def __init__(self, layout: list[tuple[str, int]], config: GeneratorConfig):
        super().__init__()
        self.layout = [(kind, int(width)) for kind, width in layout]
        self.config = config
        width = sum(w for _, w in self.layout)
        h, z = config.hidden, config.latent
        self.encoder = nn.Sequential(
            nn.Linear(width + CONDITION_FEATURES, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, 2 * z)
        )
        self.decoder = nn.Sequential(
            nn.Linear(z + CONDITION_FEATURES, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, width)
        )
        numeric = sum(1 for kind, _ in self.layout if kind == "numeric")
        self.log_scale = nn.Parameter(torch.full((numeric,), -1.0))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The loss of a batch (negative ELBO per row, averaged)."""
        c = condition_features(t)
        mu, logvar = self.encoder(torch.cat([x, c], dim=1)).chunk(2, dim=1)
        logvar = logvar.clamp(-10, 10)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        out = self.decoder(torch.cat([z, c], dim=1))
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1).mean()
        return self.reconstruction(out, x) + self.config.kl_weight * kl

    def reconstruction(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        loss = out.new_zeros(())
        i = n = 0
        for kind, width in self.layout:
            pred, true = out[:, i : i + width], x[:, i : i + width]
            if kind == "numeric":
                scale = self.log_scale[n]
                loss = loss + (0.5 * ((true - pred) / scale.exp()).pow(2) + scale).sum(dim=1).mean()
                n += 1
            elif kind == "null":
                loss = loss + F.binary_cross_entropy_with_logits(pred, true, reduction="none").sum(dim=1).mean()
            else:
                loss = loss + F.cross_entropy(pred, true.argmax(dim=1))
            i += width
        return loss

    @torch.no_grad()
    def sample(self, t: np.ndarray, generator: torch.Generator) -> np.ndarray:
        """Rows for conditions ``t`` in the encoding's space: numbers with their learned noise, logits for the
        categories and null indicators (the encoding draws those)."""
        tt = torch.as_tensor(t, dtype=torch.float32)
        z = torch.randn((len(tt), self.config.latent), generator=generator)
        out = self.decoder(torch.cat([z, condition_features(tt)], dim=1))
        i = n = 0
        for kind, width in self.layout:
            if kind == "numeric":
                noise = torch.randn((len(tt),), generator=generator) * self.log_scale[n].exp()
                out[:, i] = out[:, i] + noise
                n += 1
            i += width
        return out.numpy()
