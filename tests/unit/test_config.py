from pathlib import Path

import pytest
from pydantic import ValidationError

from payerbridge.config import load_settings, redacted
from payerbridge.metrics.alert_rules import alert_runbook_template
from payerbridge.npi import is_valid_npi


def test_npi_check_digit() -> None:
    assert is_valid_npi("1234567893")
    assert not is_valid_npi("1234567890")
    assert not is_valid_npi("12345")


def test_env_beats_file_and_arguments_beat_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "payerbridge.toml").write_text('org_name = "From File"\nport = 9000\n')
    monkeypatch.setenv("PAYERBRIDGE_ORG_NAME", "From Env")
    settings = load_settings(data_dir=tmp_path)
    assert settings.org_name == "From Env"
    assert settings.port == 9000
    assert load_settings(data_dir=tmp_path, port=9100).port == 9100


def test_invalid_npi_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PAYERBRIDGE_ORG_NPI", "1234567890")
    with pytest.raises(ValidationError, match="NPI"):
        load_settings(data_dir=tmp_path)


def test_database_url_is_redacted_and_gets_the_psycopg_driver(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, database_url="postgresql://u:secret@db/payer")
    assert settings.sqlalchemy_url == "postgresql+psycopg://u:secret@db/payer"
    assert "u:secret@" not in str(redacted(settings))
    assert load_settings(data_dir=tmp_path).sqlalchemy_url.startswith("sqlite:///")


def test_identity_secret_is_redacted_and_must_be_long(tmp_path: Path) -> None:
    key = "k" * 40
    settings = load_settings(data_dir=tmp_path, identity_secret=key)
    assert key not in str(redacted(settings))
    with pytest.raises(ValidationError, match="identity_secret"):
        load_settings(data_dir=tmp_path, identity_secret="short")


def test_the_sweep_runs_at_an_interval_that_divides_a_minute(tmp_path: Path) -> None:
    from payerbridge.workflows.maintenance import sweep_schedule

    assert load_settings(data_dir=tmp_path, upkeep_sweep_seconds=2).upkeep_sweep_seconds == 2
    assert sweep_schedule(2) == "*/2 * * * * *" and sweep_schedule(60) == "0 * * * * *"
    with pytest.raises(ValidationError, match="must divide 60"):
        load_settings(data_dir=tmp_path, upkeep_sweep_seconds=7)
    with pytest.raises(ValueError, match="must divide 60"):
        sweep_schedule(45)


def test_tracing_settings_are_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(data_dir=tmp_path)
    assert (settings.tracing, settings.trace_propagation, settings.otlp_endpoint) == (
        "off",
        True,
        None,
    )
    monkeypatch.setenv("PAYERBRIDGE_OTLP_ENDPOINT", " ")  # exported but empty: unset
    assert load_settings(data_dir=tmp_path, tracing="otlp").otlp_endpoint is None
    with pytest.raises(ValidationError, match="tracing"):
        load_settings(data_dir=tmp_path, tracing="zipkin")
    with pytest.raises(ValidationError, match="otlp_endpoint must be an http"):
        load_settings(data_dir=tmp_path, otlp_endpoint="collector:4318")
    with pytest.raises(ValidationError, match="trace_sample_ratio"):
        load_settings(data_dir=tmp_path, trace_sample_ratio=1.5)


def test_runbook_links_follow_the_runbook_base_and_alerts_are_never_local(
    tmp_path: Path,
) -> None:
    bare = load_settings(data_dir=tmp_path)
    assert bare.runbook_template == "http://127.0.0.1:8080/runbooks/{code}"  # this server's
    assert alert_runbook_template(bare) == "https://payerbridge.dev/runbooks/{code}"
    public = load_settings(data_dir=tmp_path, public_base_url="https://pb.plan.example/")
    assert alert_runbook_template(public) == "https://pb.plan.example/runbooks/{code}"
    assert public.runbook_template == alert_runbook_template(public)
    based = load_settings(data_dir=tmp_path, runbook_base_url="https://wiki.plan.example/rb/")
    assert based.runbook_template == "https://wiki.plan.example/rb/{code}"
    assert alert_runbook_template(based) == based.runbook_template
    wiki = "https://wiki.plan.example/{code}.md"
    both = load_settings(data_dir=tmp_path, runbook_base_url="https://x.example", runbook_url=wiki)
    assert both.runbook_template == alert_runbook_template(both) == wiki
    with pytest.raises(ValidationError, match="runbook_base_url"):
        load_settings(data_dir=tmp_path, runbook_base_url="docs/runbooks")
