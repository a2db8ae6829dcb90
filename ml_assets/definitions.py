"""The one Definitions object of ml-assets: assets, checks, resources (chosen by environment), sensors, jobs.

``ML_ASSETS_ENV`` says which environment this is (``dev``, ``qa``, ``prod``: whose state the resources point at,
shown on every asset as its ``environment`` tag and in the code location's name), ``ML_ASSETS_RUNS_ON`` where it
runs (``local``: embedded, needs no service; ``kubernetes``: see deploy/), and ``ML_ASSETS_DATASET_SPEC`` the
dataset; all are read when the code location loads.
"""

from __future__ import annotations

from dagster import AssetSelection, DefaultSensorStatus, Definitions, define_asset_job

from ml_assets.data.assets import build_data_assets
from ml_assets.dataset import DatasetSpec, load_default_spec
from ml_assets.environments import executor_for, resources_for
from ml_assets.model.assets import build_model_assets
from ml_assets.model.champion import build_champion_model, promote_model_job, rollback_champion_job
from ml_assets.model.evaluation_asset import build_model_evaluation
from ml_assets.monitoring.assets import build_monitoring_assets
from ml_assets.monitoring.ml_test_score import build_readiness_assets, build_readiness_check
from ml_assets.partitions import daily_partitions, resolve_start, training_set_partitions
from ml_assets.readiness.evidence import GraphFactsSource
from ml_assets.readiness.reproducibility import reproducibility_job, reproducibility_schedule
from ml_assets.serving.assets import build_serving_assets
from ml_assets.serving.batch import build_batch_predictions
from ml_assets.serving.embedded import build_embedded_model
from ml_assets.settings import check_environment, environment, runs_on
from ml_assets.shadow.assets import build_shadow_assets
from sensors.automation import build_automation_sensor
from sensors.deployment_health import build_health_sensor
from sensors.folder_sensors import build_label_sensor, build_landing_sensor, build_prediction_log_sensor
from sensors.retrain_sensor import build_retrain_sensor
from sensors.run_failure_alerts import build_run_failure_sensor

INGEST_JOB = "ingest_job"
TRAINING_SET_JOB = "training_set_job"
MODEL_JOB = "model_job"
SERVING_JOB = "serving_job"
MONITORING_JOB = "monitoring_job"

ENV_TAG = "environment"
MODEL_ASSETS = ("approved_training_set", "baseline_model", "candidate_model", "model_evaluation", "champion_model")
TRAINED_IN_QA = ("baseline_model", "candidate_model")
SERVING_ASSETS = ("bento", "deployment", "embedded_model")


def build_definitions(spec: DatasetSpec | None = None, env: str | None = None, where: str | None = None) -> Definitions:
    """The Definitions of environment ``env`` (default ``ML_ASSETS_ENV``) running ``where`` (default
    ``ML_ASSETS_RUNS_ON``)."""
    env = check_environment(env or environment(), "env")
    where = where or runs_on()
    spec = resolve_start(spec or load_default_spec())  # one partitioning for the whole load
    daily = daily_partitions(spec)
    data = list(build_data_assets(spec))
    model_evaluation, model_gates = build_model_evaluation(spec)
    model = [*build_model_assets(spec), model_evaluation, build_champion_model(spec, env)]
    serving = [*build_serving_assets(spec), build_embedded_model(spec)]
    graph = GraphFactsSource()  # what ml_test_score and readiness judge: these Definitions, bound below
    monitoring = [*build_monitoring_assets(spec, daily), *build_readiness_assets(spec, graph)]
    model_job = define_asset_job(
        MODEL_JOB,
        selection=AssetSelection.assets(*MODEL_ASSETS),
        description="Approve the newest training window, train the baseline and the candidate (a DeepSpeed network "
        "search against the logistic regression) on it, "
        "evaluate them against the champion and promote the candidate if every blocking gate passes.",
    )
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
            partitions_def=training_set_partitions(spec),
            description="Cut the training window ending on a day and split it by time.",
        ),
        model_job,
        define_asset_job(
            SERVING_JOB,
            selection=AssetSelection.assets(*SERVING_ASSETS),
            description="Build a Bento for the champion and deploy it blue/green behind the stable URL; export the "
            "champion as an ONNX file an application embeds.",
        ),
        rollback_champion_job,
        promote_model_job,
        reproducibility := reproducibility_job(),
        define_asset_job(
            MONITORING_JOB,
            selection=AssetSelection.assets("prediction_log", "model_monitoring"),
            partitions_def=daily,
            description="Load one day's prediction log and judge the served model on it (drift, quality, fairness).",
        ),
    ]
    # Self-driving by default on the embedded instance; on Kubernetes a platform team switches them on.
    status = DefaultSensorStatus.RUNNING if where == "local" else DefaultSensorStatus.STOPPED
    sensors = [
        build_landing_sensor(daily, status),
        build_automation_sensor(status),
        build_health_sensor(status),
        build_prediction_log_sensor(daily, status),
        build_label_sensor(daily, status),
        build_retrain_sensor(spec, daily, model_job, rollback_champion_job, status, trains_here=env != "prod"),
        build_run_failure_sensor(status),
    ]
    definitions = Definitions(
        assets=[*data, *model, *serving, *build_batch_predictions(spec), *monitoring, *build_shadow_assets(spec)],
        asset_checks=[model_gates, build_readiness_check(spec, graph)],
        jobs=jobs,
        schedules=[reproducibility_schedule(reproducibility, spec.timezone)],
        sensors=sensors,
        resources=resources_for(env, spec, where),
        executor=executor_for(where),
    )
    # the environment on every asset, where the UI shows it (the asset's page and the catalog's tag filter)
    definitions = definitions.permissive_map_resolved_asset_specs(
        func=lambda s: s.merge_attributes(tags={ENV_TAG: env}), selection=None
    )
    if env == "prod":  # prod's champion only ever comes from qa: automation trains nothing there
        definitions = definitions.permissive_map_resolved_asset_specs(
            func=lambda s: s.replace_attributes(automation_condition=None),
            selection=AssetSelection.assets(*TRAINED_IN_QA),
        )
    return graph.bind(definitions)


defs = build_definitions()
