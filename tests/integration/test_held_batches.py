"""What a delivery reads of a subject's stored record (``SqlHeldRecords``): every
resource once, in batches that end between members' compartments, the resources in no
compartment first."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from payerbridge.bootstrap import Platform, build_platform
from payerbridge.config import load_settings
from payerbridge.store.deliveries import SqlHeldRecords


@pytest.fixture(scope="module")
def platform(
    tmp_path_factory: pytest.TempPathFactory,
    module_database_env: Callable[[], dict[str, str]],
) -> Iterator[Platform]:
    env = module_database_env()
    settings = load_settings(
        data_dir=tmp_path_factory.mktemp("held"), database_url=env.get("PAYERBRIDGE_DATABASE_URL")
    )
    platform = build_platform(settings)
    yield platform
    platform.close()


def test_batches_hold_whole_compartments_and_everything_once(platform: Platform) -> None:
    pairs: list[tuple[dict[str, object], str | None]] = [
        ({"resourceType": "Organization", "id": "org-1"}, None)
    ]
    for n in range(6):
        pid = f"hb-p{n}"
        pairs.append(({"resourceType": "Patient", "id": pid}, pid))
        pairs += [
            ({"resourceType": "Condition", "id": f"{pid}-c{i}",
              "subject": {"reference": f"Patient/{pid}"}}, pid)
            for i in range(2)
        ]  # fmt: skip
    with platform.transactions.begin() as unit:
        platform.members.write(unit, pairs, source="onboarding:hb", at=datetime.now(UTC))
    held = SqlHeldRecords(platform.engine, reader=platform.reader, batch_size=4)
    batches = list(held.batches("onboarding:hb"))
    refs = [f"{r['resourceType']}/{r['id']}" for batch in batches for r in batch]
    assert sorted(refs) == sorted(f"{r['resourceType']}/{r['id']}" for r, _ in pairs)
    assert batches[0][0]["id"] == "org-1"  # in no compartment: first
    for batch in batches:  # each member's three resources in one batch
        members = {str(r["id"])[:5] for r in batch if r["resourceType"] != "Organization"}
        for member in members:
            assert sum(1 for r in batch if str(r["id"]).startswith(member)) == 3
        assert len(batch) <= 4 + 3  # the bound, passed by at most one compartment
    assert len(batches) > 1
    assert list(held.batches("onboarding:nothing")) == []
    assert [r["id"] for r in held.by_refs(["Patient/hb-p1"])] == ["hb-p1"]
