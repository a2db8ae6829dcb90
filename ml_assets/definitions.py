"""The one Definitions object of ml-assets: assets, checks, resources (chosen by environment), sensors, jobs.

``ML_ASSETS_ENV`` picks the resource set (``local``: embedded, needs no service; ``prod``: see deploy/), and
``ML_ASSETS_DATASET_SPEC`` the dataset; both are read when the code location loads.
"""

from __future__ import annotations

from dagster import AssetSelection, Definitions, define_asset_job

from ml_assets.data.assets import build_data_assets
from ml_assets.dataset import DatasetSpec, load_default_spec
from ml_assets.model.assets import build_model_assets
from ml_assets.model.champion import build_champion_model, rollback_champion_job
from ml_assets.model.evaluation_asset import build_model_evaluation
from ml_assets.partitions import daily_partitions
from ml_assets.serving.assets import build_serving_assets
from ml_assets.serving.batch import build_batch_predictions
from ml_assets.settings import environment
from resources.environments import resources_for
from sensors.landing_sensor import build_landing_sensor

INGEST_JOB = "ingest_job"
TRAINING_SET_JOB = "training_set_job"
MODEL_JOB = "model_job"
SERVING_JOB = "serving_job"

MODEL_ASSETS = ("baseline_model", "candidate_model", "model_evaluation", "champion_model")
SERVING_ASSETS = ("bento", "deployment")


def build_definitions(spec: DatasetSpec | None = None, env: str | None = None) -> Definitions:
    spec = spec or load_default_spec()
    daily = daily_partitions(spec)
    data = list(build_data_assets(spec))
    model_evaluation, model_gates = build_model_evaluation(spec)
    model = [*build_model_assets(spec), model_evaluation, build_champion_model(spec)]
    serving = build_serving_assets(spec)
    jobs = [
        define_asset_job(
            INGEST_JOB,
            selection=AssetSelection.assets("raw_data", "features"),
            partitions_def=daily,
            description="Validate one day's landing files and featurize them.",
        ),
        define_asset_job(
            TRAINING_SET_JOB,
            selection=AssetSelection.assets("training_set"),
            partitions_def=daily,
            description="Cut the training window ending on a day and split it by time.",
        ),
        define_asset_job(
            MODEL_JOB,
            selection=AssetSelection.assets(*MODEL_ASSETS),
            description="Train the baseline and a DeepSpeed candidate on the newest training set, evaluate them "
            "against the champion and promote the candidate if every blocking gate passes.",
        ),
        define_asset_job(
            SERVING_JOB,
            selection=AssetSelection.assets(*SERVING_ASSETS),
            description="Build a Bento for the champion and deploy it blue/green behind the stable URL.",
        ),
        rollback_champion_job,
    ]
    sensors = [build_landing_sensor(INGEST_JOB, daily)]
    return Definitions(
        assets=[*data, *model, *serving, *build_batch_predictions(spec)],
        asset_checks=[model_gates],
        jobs=jobs,
        sensors=sensors,
        resources=resources_for(env or environment(), spec),
    )


defs = build_definitions()
