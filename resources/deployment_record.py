"""DeploymentRecord: what a deployer says about serving, the one shape both deployers return.

The local deployer (blue/green ``bentoml serve`` on loopback) and the Kubernetes one (blue/green Deployments behind
a Service) return the same record from ``deploy`` and ``stop``; the ``deployment`` asset, its checks and the CLI
read its fields, never probe keys. The local deployer also keeps it as its state file.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Validation(BaseModel):
    """How a new Bento was validated before it took traffic: it reproduced the offline predictions of a sample."""

    model_config = ConfigDict(extra="forbid")

    sample: int = Field(description="rows of the fixed validation sample")
    max_abs_diff: float = Field(description="largest |served - offline| probability over the sample")
    ready_s: float | None = Field(None, description="Kubernetes: seconds the rollout took to become ready")
    preview_url: str | None = Field(None, description="Kubernetes: the preview Service it was validated through")


class ServedBento(BaseModel):
    """One Bento that serves (or served) the stable URL, and how it was validated before taking traffic."""

    model_config = ConfigDict(extra="forbid")

    bento_tag: str
    model_tag: str
    slot: str = Field(description="local: the server's slot id; Kubernetes: blue or green")
    live_since: str | None = Field(None, description="UTC ISO time it took traffic (None: rendered, not applied)")
    rendered_at: str | None = Field(None, description="Kubernetes without a cluster: when its manifests were written")
    stopped_at: str | None = None
    validated: Validation | None = Field(None, description="the pre-traffic validation; None: not run")
    port: int | None = Field(None, description="local: the server's side port")
    pid: int | None = Field(None, description="local: the server's process id")
    log: str | None = Field(None, description="local: the server's log file")


class Rollout(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bento_tag: str
    at: str


class DeploymentRecord(BaseModel):
    """Where the model serves, what serves it now, what served before (kept for rollback)."""

    model_config = ConfigDict(extra="forbid")

    url: str
    current: ServedBento | None = None
    previous: ServedBento | None = None
    history: list[Rollout] = Field(default_factory=list, description="the last rollouts, oldest first")
    manifests: str = Field("", description="Kubernetes: the folder the manifests were written to")
    manifests_yaml: str = Field("", description="Kubernetes: the manifests applied or rendered by this call")
