"""Every dead letter of one partner replayed in one action, audited, once per key."""

from __future__ import annotations

from payerbridge.exchange.model import ExchangeState
from payerbridge.exchange.operations.bulk_replay import replay_partner_dead_letters
from payerbridge.exchange.steps.machine import proceed
from payerbridge.exchange.unit import ExchangeUnit
from payerbridge.types import ExchangeId, PartnerId
from tests.builders import an_exchange_request
from tests.fakes import FakeClock
from tests.unit.exchange.test_service import _client, _parse, _ports, _submit


def _dead_lettered(ports: ExchangeUnit, clock: FakeClock) -> ExchangeId:
    exchange_id = ExchangeId(_submit(ports, an_exchange_request()))
    while (result := proceed(ports, exchange_id, _parse)).retry_at is not None:
        clock.now = result.retry_at
    assert result.state is ExchangeState.DEAD_LETTERED
    return exchange_id


def test_every_dead_letter_of_the_partner_is_replayed_once_and_the_action_audited() -> None:
    clock = FakeClock()
    client = _client(outages=6)  # three attempts each: both exchanges dead-letter
    ports = _ports(client, clock)
    letters = [_dead_lettered(ports, clock), _dead_lettered(ports, clock)]

    done = replay_partner_dead_letters(
        ports, PartnerId("old-plan"), actor="ops", replay_key="after-outage"
    )
    assert sorted(done.replayed) == sorted(letters)
    for exchange_id in letters:
        record = ports.exchanges.current(exchange_id)
        assert record.state is ExchangeState.VALIDATED and record.replay_count == 1
    again = replay_partner_dead_letters(
        ports, PartnerId("old-plan"), actor="ops", replay_key="after-outage"
    )
    assert again.replayed == () and again.skipped == ()
    events = ports.audit.for_entity("Partner", "old-plan")  # type: ignore[attr-defined]
    (event,) = [e for e in events if e["action"] == "partner.dead-letters-replayed"]
    assert event["actor"] == "ops" and event["detail"]["count"] == 2

    for exchange_id in letters:
        letter = ports.exchanges.dead_letter(exchange_id)
        assert letter is not None and letter.replayed_by == "ops"
        assert letter.replay_key == f"after-outage:{exchange_id}"


def test_another_partners_dead_letters_are_left_alone() -> None:
    clock = FakeClock()
    ports = _ports(_client(outages=3), clock)
    letter = _dead_lettered(ports, clock)
    done = replay_partner_dead_letters(ports, PartnerId("other"), actor="ops", replay_key=None)
    assert done.replayed == ()
    assert ports.exchanges.current(letter).state is ExchangeState.DEAD_LETTERED
