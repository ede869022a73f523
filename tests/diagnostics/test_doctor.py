import shutil

from typer.testing import CliRunner

from cli import app
from data.settings import load_settings
from data.store import Store
from diagnostics.runners.doctor import FAIL, OK, run_checks


def _by_name(checks):
    return {c.name: c for c in checks}


def test_healthy_store_passes(evaluated_settings):
    checks = _by_name(run_checks(evaluated_settings))
    assert checks["store"].status == OK and checks["store integrity"].status == OK
    assert checks["package torch"].status == OK
    assert "adapters" not in checks


def test_corrupt_store_fails_with_reason(settings):
    settings.store_path.write_bytes(b"not a database" * 100)
    checks = _by_name(run_checks(settings))
    assert checks["store"].status == FAIL and "not a readable DuckDB store" in checks["store"].detail


def test_missing_adapter_folder_and_stuck_run_are_reported(evaluated_settings, tmp_path):
    home = tmp_path / "copy"
    shutil.copytree(evaluated_settings.home, home)
    settings = load_settings(home=home, store_path=home / "store.duckdb", model=evaluated_settings.model)
    with Store.open(settings.store_path) as store:
        store.execute("UPDATE adapters SET path = path || '-gone'")
        store.start_run("evaluate", {})
    checks = _by_name(run_checks(settings))
    assert checks["adapters"].status == FAIL and "retrain" in checks["adapters"].detail
    assert "running" in checks["runs"].detail


def test_doctor_command_exit_code(settings):
    settings.store_path.write_bytes(b"junk" * 100)
    result = CliRunner().invoke(app, ["--home", str(settings.home), "doctor"])
    assert result.exit_code == 1
    assert "fail" in result.output and "store" in result.output


def test_device_check_names_the_scoring_precision_and_refuses_an_unknown_one(settings):
    from models.precision import native_bf16

    device = _by_name(run_checks(settings.with_overrides(device="cpu")))["device"]
    assert device.status == OK and "scoring in fp32" in device.detail
    assert ("bf16 runs in hardware" in device.detail) == native_bf16()
    bad = _by_name(run_checks(settings.with_overrides(device="cpu", precision="fp8")))["device"]
    assert bad.status == FAIL and "fp32, bf16, int8" in bad.detail


def test_block_and_truncation_damage_fail_with_what_to_do(synthetic_store_path, tmp_path):
    from tests.conftest import damage_store

    for how, words in (("blocks", "damaged tables"), ("truncated", "cut short")):
        path = damage_store(synthetic_store_path, tmp_path / f"{how}.duckdb", how)
        before = path.read_bytes()
        checks = _by_name(run_checks(load_settings(home=tmp_path, store_path=path)))
        assert checks["store"].status == FAIL and words in checks["store"].detail, checks["store"].detail
        assert "move it aside" in checks["store"].detail
        result = CliRunner().invoke(app, ["--home", str(tmp_path), "--store", str(path), "status"])
        assert result.exit_code == 1 or how == "blocks", result.output  # status reads no damaged block
        assert path.read_bytes() == before


def test_scratch_folder_of_a_killed_ingest_is_reported(settings):
    from data.corpora import INGEST_SCRATCH_PREFIX

    Store.open(settings.store_path).close()
    assert "ingest scratch" not in _by_name(run_checks(settings))
    left = settings.store_path.parent / f"{INGEST_SCRATCH_PREFIX}killed"
    left.mkdir()
    (left / "staged.duckdb").write_bytes(b"x" * 2**20)
    check = _by_name(run_checks(settings))["ingest scratch"]
    assert "killed" in check.detail and "delete" in check.detail
