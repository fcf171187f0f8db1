"""The sources file is checked whole when the platform starts: every error named with
its source and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from payerbridge.backends.sources import LiveSourceSpec, load_sources
from payerbridge.errors import InvalidInput


def test_no_file_means_only_the_built_in_store() -> None:
    assert list(load_sources(None)) == []


def test_every_error_is_named_with_its_source_and_field(tmp_path: Path) -> None:
    path = tmp_path / "sources.toml"
    path.write_text(
        '[[source]]\nid = "Claims"\nmode = "replicated"\nmapping = "csv-conditions@1.0.0"\n'
        '[[source]]\nid = "clinical"\nmode = "live"\nmapping = "csv-conditions"\n'
        'base_url = "ftp://x"\ntypes = []\n'
        '[[source]]\nid = "labs"\nmode = "sometimes"\nmapping = "csv-conditions@1.0.0"\n'
    )
    with pytest.raises(InvalidInput) as raised:
        load_sources(path)
    texts = "\n".join(issue.text for issue in raised.value.issues)
    assert "source 'Claims': id" in texts
    assert "source 'clinical': mapping" in texts
    assert "source 'clinical': base_url" in texts
    assert "source 'clinical': types" in texts
    assert "source 'labs'" in texts
    assert len(raised.value.issues) >= 5


def test_a_mapping_that_is_not_there_or_reads_the_wrong_thing(tmp_path: Path) -> None:
    path = tmp_path / "sources.toml"
    path.write_text(
        '[[source]]\nid = "claims"\nmode = "replicated"\nmapping = "nothing@1.0.0"\n'
        '[[source]]\nid = "clinical"\nmode = "live"\nmapping = "csv-conditions@1.0.0"\n'
        'base_url = "https://fhir.example"\ntypes = ["Condition"]\n'
        '[[source]]\nid = "claims"\nmode = "replicated"\nmapping = "csv-conditions@1.0.0"\n'
    )
    with pytest.raises(InvalidInput) as raised:
        load_sources(path)
    texts = [issue.text for issue in raised.value.issues]
    assert any("source 'claims': mapping: no mapping nothing@1.0.0" in t for t in texts)
    assert any("'clinical'" in t and "reads csv" in t for t in texts)
    assert any("used twice" in t for t in texts)


def test_a_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "sources.toml"
    path.write_text(
        '[[source]]\nid = "clinical"\nmode = "replicated"\nmapping = "csv-conditions@1.0.0"\n'
    )
    sources = load_sources(path)
    assert sources.replicated("clinical").namespace == "plan"
    assert not sources.live()
    with pytest.raises(InvalidInput, match="no source 'other'"):
        sources.get("other")
    assert not isinstance(sources.get("clinical"), LiveSourceSpec)


def test_every_destination_error_is_named(tmp_path: Path) -> None:
    path = tmp_path / "sources.toml"
    path.write_text(
        '[[destination]]\nid = "Plan"\nbase_url = "ftp://x"\nbudget_seconds = 0\n'
        '[[destination]]\nid = "plan"\nbase_url = "https://fhir.example"\ntypes = ["obs"]\n'
        'auth = { client_id = "us", key_file = "missing.jwk", scope = "per-type" }\n'
        '[[destination]]\nid = "plan"\nbase_url = "https://fhir.example"\ncolour = "red"\n'
    )
    with pytest.raises(InvalidInput) as raised:
        load_sources(path)
    texts = "\n".join(issue.text for issue in raised.value.issues)
    for named in (
        "destination 'Plan': id",
        "destination 'Plan': base_url",
        "destination 'Plan': budget_seconds",
        "destination 'plan': types",
        "destination 'plan': colour",
    ):
        assert named in texts, texts


def test_a_destination_whose_key_is_missing_or_unreadable(tmp_path: Path) -> None:
    from payerbridge.net.addresses import AddressPolicy
    from payerbridge.sources.adapters import destination_adapters

    path = tmp_path / "sources.toml"
    path.write_text(
        '[[destination]]\nid = "plan"\nbase_url = "https://fhir.example"\n'
        'auth = { client_id = "us", key_file = "/nowhere/plan.jwk" }\n'
    )
    with pytest.raises(InvalidInput) as raised:
        load_sources(path)
    assert "destination 'plan': auth.key_file: /nowhere/plan.jwk is not a file" in [
        issue.text.split(": ", 1)[1] for issue in raised.value.issues
    ]
    key = tmp_path / "plan.jwk"
    key.write_text('{"kty": "EC"}')
    path.write_text(path.read_text().replace("/nowhere/plan.jwk", str(key)))
    sources = load_sources(path)
    (spec,) = sources.destinations
    assert spec.auth is not None and spec.auth.scope == "system/*.write"
    with pytest.raises(InvalidInput) as unusable:
        destination_adapters(sources, AddressPolicy())
    assert "destination 'plan'" in unusable.value.issues[0].text
    assert "private" in unusable.value.issues[0].text


def test_no_destination_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "sources.toml"
    path.write_text(
        '[[source]]\nid = "clinical"\nmode = "replicated"\nmapping = "csv-conditions@1.0.0"\n'
    )
    assert load_sources(path).destinations == []
    assert load_sources(None).destinations == []
