"""Shadow data: the fidelity and privacy gates on constructed generators, generated days through the data graph,
the export gate, and the generator trained through the DeepSpeed trainer resource (two CPU ranks)."""

from __future__ import annotations

import io
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import torch

from ml_assets import cli
from ml_assets.data.assets import build_data_assets
from ml_assets.dataset import DatasetSpec, TrainingWindow, load_default_spec
from ml_assets.datasets.simulator import simulate
from ml_assets.environments import local_resources
from ml_assets.shadow.assets import PRIVACY_CHECKS, build_shadow_assets, split_real
from ml_assets.shadow.encoding import TabularEncoding
from ml_assets.shadow.export import ExportError, day_frames, export_shadow, write_days
from ml_assets.shadow.fidelity import fidelity_report
from ml_assets.shadow.generator import ShadowGenerator, generate_days
from ml_assets.shadow.network import ConditionalVAE, GeneratorConfig
from ml_assets.shadow.privacy import privacy_report
from tests.conftest import GREAT_EXPECTATIONS, in_process, narrow, pinned

pytestmark = GREAT_EXPECTATIONS  # the generated days are validated by raw_data's Great Expectations checks

DAYS = [date(2026, 3, 1) + timedelta(days=i) for i in range(3)]


def _real_rows(spec: DatasetSpec, folder: Path, rows_per_day: int) -> pd.DataFrame:
    files = simulate(spec, folder, DAYS[0], DAYS[-1], rows_per_day=rows_per_day, seed=1)
    return pd.concat([spec.coerce(pd.read_parquet(f))[0] for f in files], ignore_index=True)


@pytest.fixture(scope="module")
def real(adult_spec: DatasetSpec, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    return _real_rows(adult_spec, tmp_path_factory.mktemp("real"), 1500)


@pytest.fixture(scope="module")
def adult_spec() -> DatasetSpec:
    """The shipped Adult spec, pinned (module scope: the real rows below are shared by the module's tests)."""
    return pinned(load_default_spec())


# ---- the gates on constructed generators --------------------------------------------------------------------
def test_a_generator_that_copies_its_training_rows_fails_every_privacy_test(
    adult_spec: DatasetSpec, real: pd.DataFrame
) -> None:
    members, holdout = split_real(adult_spec, real)
    report = privacy_report(adult_spec, members.sample(frac=1.0, random_state=0), members, holdout)
    assert report.exact_copy_share == 1.0 and not report.copies_pass
    assert report.shadow_dcr == 0.0 and not report.dcr_pass
    assert report.membership_auc > 0.9 and not report.membership_pass
    assert report.rare_leaks and not report.rare_pass, "rare native countries come out with their whole combination"
    assert not report.passed


def test_a_generator_that_samples_columns_independently_fails_association_fidelity(
    adult_spec: DatasetSpec, real: pd.DataFrame
) -> None:
    members, holdout = split_real(adult_spec, real)
    rng = np.random.default_rng(0)
    independent = pd.DataFrame({c: members[c].to_numpy()[rng.permutation(len(members))] for c in members.columns})
    report = fidelity_report(adult_spec, independent, members, holdout)
    assert report.columns_pass, "every column on its own is perfect"
    assert not report.associations_pass
    assert dict(report.worst_associations(1))  # the pairs it lost are named
    assert not report.utility_pass, "and a model learns little from it"


def test_a_faithful_generator_passes_fidelity_and_privacy(adult_spec: DatasetSpec, real: pd.DataFrame) -> None:
    """Real rows the generator never saw are the most faithful 'generator' there is, and leak nothing."""
    members, holdout = split_real(adult_spec, real)
    drawn, yardstick = holdout.iloc[::2], holdout.iloc[1::2]
    fidelity = fidelity_report(adult_spec, drawn, members, yardstick)
    assert fidelity.columns_pass and fidelity.associations_pass and fidelity.utility_pass
    privacy = privacy_report(adult_spec, drawn, members, yardstick)
    assert privacy.passed, privacy


# ---- the encoding and the condition on time ---------------------------------------------------------------------
def test_the_encoding_round_trips_rows_and_never_learns_a_rare_category(
    adult_spec: DatasetSpec, real: pd.DataFrame
) -> None:
    encoding = TabularEncoding.fit(adult_spec, real, rare_k=5)
    matrix = encoding.transform(real)
    assert matrix.shape == (len(real), encoding.width) and np.isfinite(matrix).all()
    back = encoding.decode(np.where(matrix == 1.0, 50.0, matrix), np.random.default_rng(0), sample=False)
    countries = encoding.categorical[[b.name for b in encoding.categorical].index("native_country")]
    assert countries.rare and not set(countries.rare) & set(back["native_country"].dropna())
    common = ~real["native_country"].isin(countries.rare)
    assert (back["sex"] == real["sex"]).all() and (
        back["native_country"][common] == real["native_country"][common]
    ).all()
    assert (back["workclass"].isna() == real["workclass"].isna()).all(), "missing is a category of its own"
    age = back["age"].astype(float) - real["age"].astype(float)
    assert age.abs().quantile(0.99) <= 1.0, "numbers come back through the quantile function"


def test_shadow_days_drift_as_the_real_days_did(adult_spec: DatasetSpec, real: pd.DataFrame) -> None:
    """Real rows that grow older day by day: the generator, conditioned on time, makes its later days older too."""
    drifting = real.copy()
    day = (drifting[adult_spec.time.name] - drifting[adult_spec.time.name].min()).dt.days
    drifting["age"] = (drifting["age"].astype(int) + 15 * day).clip(17, 100).astype("Int64")
    generator = _fitted_in_process(adult_spec, drifting, epochs=8)
    shadow = generate_days(adult_spec, generator, DAYS, rows_per_day=1500)
    by_day = shadow.groupby(shadow[adult_spec.time.name].dt.normalize())["age"].mean()
    real_by_day = drifting.groupby(day)["age"].mean()
    assert by_day.iloc[-1] - by_day.iloc[0] > 0.5 * (real_by_day.iloc[-1] - real_by_day.iloc[0])


# ---- generated days through the data graph ---------------------------------------------------------------------
def _fitted_in_process(spec: DatasetSpec, rows: pd.DataFrame, epochs: int = 5) -> ShadowGenerator:
    """A generator trained by a plain loop in this process (the asset trains it through the trainer resource)."""
    encoding = TabularEncoding.fit(spec, rows)
    config = GeneratorConfig(hidden=64, latent=8)
    torch.manual_seed(0)
    net = ConditionalVAE(encoding.layout(), config)
    x = torch.as_tensor(encoding.transform(rows), dtype=torch.float32)
    t = torch.as_tensor(encoding.condition(rows[spec.time.name]), dtype=torch.float32)
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small matrices: a second thread only spins against the other tests' processes
    try:
        for _ in range(epochs):
            for idx in torch.randperm(len(x)).split(256):
                optimizer.zero_grad()
                net(x[idx], t[idx]).backward()
                optimizer.step()
    finally:
        torch.set_num_threads(threads)
    weights = io.BytesIO()
    torch.save(net.state_dict(), weights)
    return ShadowGenerator(encoding.to_dict(), config.to_dict(), weights.getvalue(), rows_per_day=len(rows) // 3)


@in_process
def test_generated_days_pass_raw_data_checks_and_flow_into_a_training_set(
    ml_home: Path, adult_spec: DatasetSpec, tmp_path: Path
) -> None:
    spec = narrow(adult_spec).model_copy(
        update={"training": TrainingWindow(window_days=3, validation_days=1, test_days=1)}
    )
    generator = _fitted_in_process(spec, _real_rows(spec, tmp_path / "real", 800))
    landed = generate_days(spec, generator, DAYS, rows_per_day=500)
    assert list(landed.columns) == spec.column_names and landed[spec.id.name].is_unique
    by_day = {d.isoformat(): landed[landed[spec.time.name].dt.normalize() == pd.Timestamp(d)] for d in DAYS}
    write_days(by_day, ml_home / "landing")
    data = build_data_assets(spec)
    instance = dg.DagsterInstance.ephemeral()
    for day in DAYS:
        result = dg.materialize(
            [data.raw_data, data.features, data.features_checks],
            partition_key=day.isoformat(),
            instance=instance,
            resources=local_resources(spec),
            raise_on_error=False,
        )
        failed = [e.check_name for e in result.get_asset_check_evaluations() if not e.passed]
        assert result.success and failed == [], (day, failed)
    result = dg.materialize(
        list(data),
        selection=dg.AssetSelection.assets("training_set") | dg.AssetSelection.checks_for_assets("training_set"),
        partition_key=DAYS[-1].isoformat(),
        instance=instance,
        resources=local_resources(spec),
        raise_on_error=False,
    )
    blocking = [
        e.check_name for e in result.get_asset_check_evaluations() if not e.passed and e.severity.value == "ERROR"
    ]
    assert result.success and blocking == []
    training = result.output_for_node("training_set").frame()
    assert len(training) == 3 * 500 and set(training["split"]) == {"train", "validation", "test"}


# ---- export: only what passed the privacy gate leaves ----------------------------------------------------------
def _shadow_stand_in(spec: DatasetSpec, landed: pd.DataFrame, failed: tuple[str, ...], home: Path) -> dg.Definitions:
    @dg.asset(
        name="shadow_data",
        check_specs=[dg.AssetCheckSpec(n, asset="shadow_data", blocking=True) for n in PRIVACY_CHECKS],
    )
    def shadow_data():
        yield dg.Output(landed)
        for name in PRIVACY_CHECKS:
            yield dg.AssetCheckResult(check_name=name, passed=name not in failed)

    return dg.Definitions(
        assets=[shadow_data], resources={"io_manager": dg.FilesystemIOManager(base_dir=str(home / "storage"))}
    )


@in_process
def test_export_writes_re_dated_days_only_when_the_privacy_gate_passed(
    ml_home: Path, adult_spec: DatasetSpec, real: pd.DataFrame
) -> None:
    landed = real.groupby(real[adult_spec.time.name].dt.normalize()).head(200)  # stands for three generated days
    instance = dg.DagsterInstance.ephemeral()
    refused = _shadow_stand_in(adult_spec, landed, ("privacy_membership",), ml_home)
    refused.resolve_implicit_global_asset_job_def().execute_in_process(instance=instance, raise_on_error=False)
    with pytest.raises(dg.Failure, match="privacy_membership"):
        export_shadow(refused, instance, adult_spec, 2, ml_home / "dev_landing")
    assert not (ml_home / "dev_landing").exists()

    passed = _shadow_stand_in(adult_spec, landed, (), ml_home)
    passed.resolve_implicit_global_asset_job_def().execute_in_process(instance=instance)
    end = date(2026, 12, 1)
    done = export_shadow(passed, instance, adult_spec, 2, ml_home / "dev_landing", end=end)
    assert [f.parent.name for f in done.files] == ["2026-11-30", "2026-12-01"]
    written = pd.read_parquet(done.files[-1])
    assert (pd.to_datetime(written[adult_spec.time.name]).dt.date == end).all()
    with pytest.raises(ExportError, match="holds 3 days"):
        day_frames(adult_spec, landed, 4, end)


@in_process
def test_cli_export_refuses_when_shadow_data_was_never_materialized(ml_home: Path, capsys) -> None:
    code = cli.main(["shadow", "export", "--days", "2", "--to", str(ml_home / "out"), "--home", str(ml_home)])
    assert code == 2
    assert "never materialized" in capsys.readouterr().err
    assert not (ml_home / "out").exists()


# ---- the generator trained through the trainer resource --------------------------------------------------------
@pytest.mark.integration
def test_shadow_model_trains_through_the_trainer_on_two_cpu_ranks_and_its_days_pass_privacy(
    ml_home: Path, adult_spec: DatasetSpec, real: pd.DataFrame
) -> None:
    @dg.asset(name="raw_data")
    def raw_data() -> pd.DataFrame:
        return real

    resources = local_resources(adult_spec)
    resources["trainer"] = resources["trainer"].model_copy(update={"ranks": 2})
    result = dg.materialize(
        [raw_data, *build_shadow_assets(adult_spec)],
        resources={"trainer": resources["trainer"], "io_manager": resources["io_manager"]},
        instance=dg.DagsterInstance.ephemeral(),
        run_config={"ops": {"shadow_model": {"config": {"epochs": 4}}, "shadow_data": {"config": {"days": 3}}}},
    )
    model = result.asset_materializations_for_node("shadow_model")[0].metadata
    assert model["ranks"].value == 2 and model["epochs"].value == 4
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert all(checks[name] for name in PRIVACY_CHECKS), checks
    shadow = result.output_for_node("shadow_data")
    assert list(shadow.columns) == adult_spec.column_names
    assert shadow[adult_spec.id.name].tolist() == list(range(1, len(shadow) + 1)), "ids are numbered afresh"
