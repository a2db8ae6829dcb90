"""``shadow_model`` and ``shadow_data``: a generator trained where the real rows live, and days it generates,
judged by fidelity checks (warn) and privacy checks (blocking) before anything may be exported.

The real rows are split once and for all by a hash of their id: a fifth is held back, never shown to the generator,
and serves as the yardstick of the privacy checks (what an independent draw from the same population looks like)
and as the test rows of the utility check.
"""

import io
import json
import sys

import pandas as pd
import torch
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetIn,
    AssetsDefinition,
    Config,
    MetadataValue,
    Output,
    asset,
)
from pydantic import Field

from ml_assets import inline
from ml_assets.dataset import DatasetSpec
from ml_assets.partitions import day_range, last_complete_day
from ml_assets.shadow import fidelity, generator, privacy
from ml_assets.shadow.encoding import TabularEncoding
from ml_assets.shadow.fidelity import FidelityReport, FidelityThresholds
from ml_assets.shadow.generator import ShadowGenerator, generate_days
from ml_assets.shadow.network import GeneratorConfig
from ml_assets.shadow.privacy import PrivacyReport, PrivacyThresholds
from ml_assets.shadow.train_generator import STATE_DICT, SUMMARY, GeneratorJob, rows_frame
from ml_assets.versioning import code_version
from resources.deepspeed_trainer import DeepSpeedTrainer

GROUP = "shadow"
ENTRYPOINT = "ml_assets.shadow.train_generator"
HOLDOUT_BUCKETS = 5  # one real row in five is held back from the generator
FIDELITY_CHECKS = ("fidelity_columns", "fidelity_associations", "fidelity_utility")
PRIVACY_CHECKS = ("privacy_exact_copies", "privacy_closest_record", "privacy_membership", "privacy_rare_categories")


class ShadowModelConfig(Config):
    epochs: int = Field(30, description="passes over the real rows")
    batch_size: int = Field(256, description="rows per rank per step")
    learning_rate: float = 1e-3
    hidden: int = Field(128, description="width of the encoder's and decoder's hidden layers")
    latent: int = Field(16, description="size of the latent draw")
    rare_k: int = Field(5, description="categories fewer real rows carry are never learned")


class ShadowDataConfig(Config):
    days: int = Field(0, description="days to generate, ending on the last complete day (0: training window + 2)")
    rows_per_day: int = Field(0, description="rows per day (0: the real days' mean)")
    seed: int = 0


def split_real(spec: DatasetSpec, rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(members, held back): a stable split by a hash of the id, the same in every run."""
    bucket = pd.util.hash_pandas_object(rows[spec.id.name].astype("string"), index=False).to_numpy() % HOLDOUT_BUCKETS
    return rows[bucket != 0], rows[bucket == 0]


def real_rows(spec: DatasetSpec, raw_data: pd.DataFrame) -> pd.DataFrame:
    return raw_data[spec.column_names].reset_index(drop=True)


def fit_generator(
    context: AssetExecutionContext,
    spec: DatasetSpec,
    members: pd.DataFrame,
    trainer: DeepSpeedTrainer,
    config: ShadowModelConfig,
    days: int,
) -> ShadowGenerator:
    """Encode the members, train the network through the trainer resource, and keep what sampling needs."""
    encoding = TabularEncoding.fit(spec, members, rare_k=config.rare_k)
    network = GeneratorConfig(hidden=config.hidden, latent=config.latent)
    job = GeneratorJob(layout=encoding.layout(), network=network)
    rows = rows_frame(encoding.transform(members), encoding.condition(members[spec.time.name]))
    run = trainer.model_copy(
        update={
            "micro_batch_size": config.batch_size,
            "max_epochs": config.epochs,
            "learning_rate": config.learning_rate,
            "lr_schedule": "constant",
        }
    ).run(context, ENTRYPOINT, job, {"rows": rows})
    torch.load(io.BytesIO(run.outputs[STATE_DICT]), weights_only=True)  # a readable state dict, or fail here
    return ShadowGenerator(
        encoding=encoding.to_dict(),
        network=network.to_dict(),
        weights=run.outputs[STATE_DICT],
        summary=json.loads(run.outputs[SUMMARY]),
        rows_per_day=max(1, round(len(members) * HOLDOUT_BUCKETS / (HOLDOUT_BUCKETS - 1) / max(days, 1))),
    )


def build_shadow_model(spec: DatasetSpec) -> AssetsDefinition:
    @asset(
        name="shadow_model",
        group_name=GROUP,
        ins={"raw_data": AssetIn()},
        io_manager_key="io_manager",
        code_version=code_version(spec, sys.modules[__name__], uses=("columns",)),
        description="A conditional tabular VAE of every raw column, trained through the DeepSpeed trainer on the "
        "real rows (four fifths; the rest is held back for the privacy checks), conditioned on time.",
    )
    def shadow_model(
        context: AssetExecutionContext, config: ShadowModelConfig, raw_data: pd.DataFrame, trainer: DeepSpeedTrainer
    ) -> Output[ShadowGenerator]:
        rows = real_rows(spec, raw_data)
        members, holdout = split_real(spec, rows)
        days = pd.to_datetime(rows[spec.time.name]).dt.normalize().nunique()
        fitted = fit_generator(context, spec, members, trainer, config, days)
        loss = fitted.summary.get("loss", [])
        return Output(
            fitted,
            metadata={
                "members": len(members),
                "held_back": len(holdout),
                "real_days": int(days),
                "epochs": config.epochs,
                "final_loss": float(loss[-1]) if loss else float("nan"),
                "train_seconds": float(fitted.summary.get("train_seconds", 0.0)),
                "parameters": int(fitted.summary.get("parameters", 0)),
                "ranks": int(fitted.summary.get("ranks", 0)),
                "loss_curve": MetadataValue.md(
                    inline.line_chart("generator loss", [str(i + 1) for i in range(len(loss))], {"loss": loss})
                )
                if len(loss) > 1
                else MetadataValue.text("one epoch"),
            },
        )

    return shadow_model


def _check_specs() -> list[AssetCheckSpec]:
    fidelity_descriptions = {
        "fidelity_columns": "every column's distribution distance (KS / total variation) stays under the limit",
        "fidelity_associations": "pairwise associations (Cramér's V, Spearman) differ little on average",
        "fidelity_utility": "a model trained on shadow rows scores a set fraction of one trained on real rows",
    }
    privacy_descriptions = {
        "privacy_exact_copies": "no more exact copies of real rows than independent real rows have",
        "privacy_closest_record": "shadow rows lie no closer to real rows than held-back real rows do",
        "privacy_membership": "a distance attack tells training rows from held-back rows near chance",
        "privacy_rare_categories": "no rare category appears with a real row's category combination",
    }
    return [AssetCheckSpec(n, asset="shadow_data", description=d) for n, d in fidelity_descriptions.items()] + [
        AssetCheckSpec(n, asset="shadow_data", description=d, blocking=True) for n, d in privacy_descriptions.items()
    ]


def build_shadow_data(spec: DatasetSpec) -> AssetsDefinition:
    @asset(
        name="shadow_data",
        group_name=GROUP,
        ins={"raw_data": AssetIn(), "shadow_model": AssetIn()},
        io_manager_key="io_manager",
        check_specs=_check_specs(),
        code_version=code_version(spec, sys.modules[__name__], generator, uses=("columns", "timezone", "training")),
        description="Generated days in the landed format, judged against the real rows: fidelity warns, privacy "
        "blocks (only days that passed may be exported: ml-assets shadow export).",
    )
    def shadow_data(
        context: AssetExecutionContext, config: ShadowDataConfig, raw_data: pd.DataFrame, shadow_model: ShadowGenerator
    ):
        n_days = config.days or spec.training.window_days + 2
        days = day_range(last_complete_day(spec), n_days)
        landed = generate_days(spec, shadow_model, days, config.rows_per_day or None, config.seed)
        typed, _ = spec.coerce(landed)
        members, holdout = split_real(spec, real_rows(spec, raw_data))
        fid = fidelity.fidelity_report(spec, typed, members, holdout, seed=config.seed)
        priv = privacy.privacy_report(spec, typed, members, holdout, seed=config.seed)
        yield Output(
            landed,
            metadata={
                "dagster/row_count": len(landed),
                "days": MetadataValue.json([d.isoformat() for d in days]),
                "max_column_distance": fid.max_column_distance,
                "mean_association_distance": fid.mean_association_distance,
                "utility_ratio": fid.utility_ratio if fid.utility_ratio is not None else float("nan"),
                "membership_auc": priv.membership_auc,
                "exact_copy_share": priv.exact_copy_share,
                "fidelity": MetadataValue.md(fidelity_table(fid)),
                "privacy": MetadataValue.md(privacy_table(priv)),
            },
        )
        yield from fidelity_results(fid)
        yield from privacy_results(priv)

    return shadow_data


def _result(
    name: str, passed: bool, severity: AssetCheckSeverity, description: str, **figures: float
) -> AssetCheckResult:
    return AssetCheckResult(
        check_name=name, passed=passed, severity=severity, description=description, metadata=figures
    )


def fidelity_results(report: FidelityReport) -> list[AssetCheckResult]:
    th: FidelityThresholds = report.thresholds
    worst = ", ".join(f"{c} {d:.3f}" for c, d in report.worst_columns(3))
    pairs = ", ".join(f"{c} {d:.3f}" for c, d in report.worst_associations(3))
    warn = AssetCheckSeverity.WARN
    ratio = report.utility_ratio
    utility = (
        "cannot judge: a side has a single class"
        if ratio is None
        else f"ROC AUC on held-back real rows: shadow-trained {report.shadow_auc:.3f}, real-trained "
        f"{report.real_auc:.3f}, ratio {ratio:.3f} (at least {th.utility_fraction})"
    )
    columns = (
        f"largest column distance {report.max_column_distance:.3f} (limit {th.max_column_distance}); worst: {worst}"
    )
    associations = (
        f"mean association distance {report.mean_association_distance:.3f} (limit "
        f"{th.mean_association_distance}); worst pairs: {pairs}"
    )
    return [
        _result("fidelity_columns", report.columns_pass, warn, columns, max_column_distance=report.max_column_distance),
        _result(
            "fidelity_associations",
            report.associations_pass,
            warn,
            associations,
            mean_association_distance=report.mean_association_distance,
        ),
        _result(
            "fidelity_utility",
            report.utility_pass,
            warn,
            utility,
            utility_ratio=ratio if ratio is not None else float("nan"),
        ),
    ]


def privacy_results(report: PrivacyReport) -> list[AssetCheckResult]:
    th: PrivacyThresholds = report.thresholds
    leaks = ", ".join(f"{k} ({n} rows)" for k, n in list(report.rare_leaks.items())[:5]) or "none"
    error = AssetCheckSeverity.ERROR
    copies = (
        f"{report.exact_copy_share:.4f} of shadow rows copy a real training row; held-back real rows: "
        f"{report.holdout_copy_share:.4f} (margin {th.exact_copy_margin})"
    )
    closest = (
        f"distance to the closest real row at the {th.dcr_quantile:g} quantile: shadow {report.shadow_dcr:.4f}, "
        f"held-back real {report.holdout_dcr:.4f} (need at least {th.dcr_tolerance}x)"
    )
    membership = f"membership attack ROC AUC {report.membership_auc:.3f} (chance 0.5, limit {th.membership_auc})"
    rare = f"rare categories (< {th.rare_k} real rows) with a real row's combination: {leaks}"
    return [
        _result(
            "privacy_exact_copies",
            report.copies_pass,
            error,
            copies,
            exact_copy_share=report.exact_copy_share,
            holdout_copy_share=report.holdout_copy_share,
        ),
        _result(
            "privacy_closest_record",
            report.dcr_pass,
            error,
            closest,
            shadow_dcr=report.shadow_dcr,
            holdout_dcr=report.holdout_dcr,
        ),
        _result("privacy_membership", report.membership_pass, error, membership, membership_auc=report.membership_auc),
        _result("privacy_rare_categories", report.rare_pass, error, rare, leaks=float(len(report.rare_leaks))),
    ]


def fidelity_table(report: FidelityReport) -> str:
    rows = [{"figure": f"column {c}", "distance": d} for c, d in report.worst_columns(4)]
    rows += [{"figure": f"pair {c}", "distance": d} for c, d in report.worst_associations(4)]
    return inline.table(rows, ["figure", "distance"], right=["distance"])


def privacy_table(report: PrivacyReport) -> str:
    rows = [
        {"test": "exact copies", "shadow": report.exact_copy_share, "real held back": report.holdout_copy_share},
        {"test": "closest record (q)", "shadow": report.shadow_dcr, "real held back": report.holdout_dcr},
        {"test": "membership AUC", "shadow": report.membership_auc, "real held back": 0.5},
        {"test": "rare leaks", "shadow": float(sum(report.rare_leaks.values())), "real held back": 0.0},
    ]
    return inline.table(rows, ["test", "shadow", "real held back"], right=["shadow", "real held back"])


def build_shadow_assets(spec: DatasetSpec) -> list[AssetsDefinition]:
    return [build_shadow_model(spec), build_shadow_data(spec)]
