"""``payerbridge partners health`` and ``partners replay-dead-letters``: a partner's
health now (``GET /partners/{id}/health``) and every dead letter of a partner replayed
in one action (``POST /partners/{id}/dead-letters/$replay``), audited with the
operating-system user as the actor."""

from __future__ import annotations

import sys
import uuid
from typing import Annotated

import orjson
import typer

from payerbridge.cli.console import cli_actor, out, settings_for
from payerbridge.cli.options import DataDir
from payerbridge.types import PartnerId

__all__ = ["add_partner_health_commands"]


def add_partner_health_commands(partners_app: typer.Typer) -> None:
    partners_app.command("health")(partners_health)
    partners_app.command("replay-dead-letters")(partners_replay_dead_letters)


def partners_health(
    partner_id: Annotated[str, typer.Argument(help="The partner's id.")],
    data_dir: DataDir = None,
) -> None:
    """Print the partner's health as JSON: up, degraded, down or maintenance and why,
    its last success, error mix and p95 latency over the last hour, its breaker."""
    from payerbridge.bootstrap import build_platform
    from payerbridge.oversight.call_samples import calls_since
    from payerbridge.oversight.partner_health import HealthPolicy, partners_health
    from payerbridge.routing.enrolment import registered

    platform = build_platform(settings_for(data_dir))
    try:
        uow = platform.units.partner_health()
        partner = registered(uow.partners, PartnerId(partner_id[:64]))
        now = uow.clock()
        policy = HealthPolicy()
        calls = calls_since(uow.calls, now - policy.window)
        breakers = {partner.fhir_base: uow.breakers.get(partner.fhir_base)}
        health = partners_health([partner], breakers, calls, now, policy)[partner.id]
    finally:
        platform.close()
    shown = {"partner_id": partner.id, **health.to_json()}
    sys.stdout.write(orjson.dumps(shown, option=orjson.OPT_INDENT_2).decode() + "\n")


def partners_replay_dead_letters(
    partner_id: Annotated[str, typer.Argument(help="The partner's id.")],
    key: Annotated[
        str | None,
        typer.Option(help="A key for this action: the same key again replays nothing twice."),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Replay every exchange with the partner that is dead-lettered now (consent and
    identity are checked again first); a worker resumes them."""
    from payerbridge.bootstrap import build_platform, launch_workflows, shutdown_workflows
    from payerbridge.exchange.operations.bulk_replay import replay_partner_dead_letters
    from payerbridge.routing.enrolment import registered
    from payerbridge.workflows.exchange import enqueue_exchange

    settings = settings_for(data_dir, worker_id=f"cli-{uuid.uuid4().hex[:8]}")
    platform = build_platform(settings)
    launch_workflows(platform, work=False)
    try:
        partner = registered(platform.units.partners().partners, PartnerId(partner_id[:64]))
        uow = platform.units.exchange()
        done = replay_partner_dead_letters(uow, partner.id, actor=cli_actor(), replay_key=key)
        for exchange_id in done.replayed:
            record = uow.exchanges.current(exchange_id)
            enqueue_exchange(record.id, record.partner_id, replay_count=record.replay_count)
    finally:
        shutdown_workflows(platform)
        platform.close()
    skipped = f"; {len(done.skipped)} moved meanwhile and were left" if done.skipped else ""
    out.print(
        f"{len(done.replayed)} dead letter(s) of {partner.id} replayed{skipped}; "
        "a worker resumes them"
    )
