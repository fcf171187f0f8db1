"""``payerbridge identity reviews …``: the identity review queue from a terminal, as
``/identity/reviews`` and the console's queue give it (ADR 0036): list in the queue's
order, show a case side by side, decide or reopen it on the version shown.

``list`` prints ids, reasons, ages and risks only. ``show`` prints the request and its
candidates side by side, demographics included, as the console does for a reviewer; each
showing is audited with the operating-system user as the viewer.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Literal, TypeVar

import orjson
import typer
from rich.table import Table

from payerbridge import errors
from payerbridge.cli.console import cli_actor, fail, out, settings_for
from payerbridge.cli.options import DataDir

if TYPE_CHECKING:
    from payerbridge.identity.unit import IdentityUnit

__all__ = ["reviews_app"]

reviews_app = typer.Typer(
    no_args_is_help=True,
    help="The identity review queue: list, show, decide and reopen cases.",
)

T = TypeVar("T")
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Version = Annotated[
    int,
    typer.Option(
        min=1, help="The case's version you read (`reviews show`): a newer one refuses the change."
    ),
]
Reason = Annotated[str, typer.Option(help="Why, for the audit trail and the next reviewer.")]


def _with_unit(data_dir: DataDir, work: Callable[[IdentityUnit], T]) -> T:
    """``work`` done on a unit of the identity room, on the data dir's platform."""
    from payerbridge.bootstrap import build_platform

    platform = build_platform(settings_for(data_dir), run_migrations=False)  # errors: main()
    try:
        return work(platform.units.identity())
    except errors.PayerBridgeError as exc:
        raise fail(exc) from exc
    finally:
        platform.close()


def _print_json(shown: object) -> None:
    sys.stdout.write(orjson.dumps(shown, option=orjson.OPT_INDENT_2).decode() + "\n")


@reviews_app.command("list")
def reviews_list(
    data_dir: DataDir = None,
    status: Annotated[
        Literal["open", "accepted", "rejected", "any"], typer.Option(help="Which cases.")
    ] = "open",
    limit: Annotated[int, typer.Option(min=1, max=500, help="At most this many.")] = 50,
    as_json: AsJson = False,
) -> None:
    """Cases in the queue's order, the most urgent first (due soonest: the riskiest and
    the oldest): id, why it was opened, age, risk, due time and version."""
    from payerbridge.api.routers.identity import review_public
    from payerbridge.bootstrap import utcnow
    from payerbridge.identity.model import ReviewQuery

    query = ReviewQuery(status=None if status == "any" else status, limit=limit)
    cases, obligations = _with_unit(
        data_dir, lambda uow: (uow.identity.reviews(query), uow.obligations)
    )
    now = utcnow()
    shown = [review_public(case, now, obligations) for case in cases]
    if as_json:
        _print_json({"reviews": shown, "count": len(shown)})
        return
    table = Table(
        "id",
        "status",
        "opened because",
        "age",
        "risk",
        "due",
        "answer due",
        "version",
        title="Reviews",
    )
    for case in shown:
        hours = case["age_seconds"] / 3600
        due = f"{case['due_at'] or ''}{' (overdue)' if case['overdue'] else ''}"
        answer = case["answer"]
        table.add_row(
            case["id"],
            case["status"],
            case["opened_because"] or "",
            f"{hours:.1f} h",
            f"{case['risk']:.2f}" if case["risk"] is not None else "",
            due,
            f"{answer['due_at'] or ''} ({answer['standing'].replace('_', ' ')})",
            str(case["version"]),
        )
    out.print(table)
    out.print(f"{len(shown)} shown")


@reviews_app.command("show")
def reviews_show(
    review_id: Annotated[str, typer.Argument(help="The case's id.")],
    data_dir: DataDir = None,
) -> None:
    """One case as JSON: its state and version, the evidence, and the request beside each
    candidate, field by field (audited as a showing to you)."""
    from payerbridge.api.routers.identity import review_public
    from payerbridge.bootstrap import utcnow
    from payerbridge.identity.model import ShowCase
    from payerbridge.identity.reviews import show_case

    def shown(uow: IdentityUnit) -> dict[str, object]:
        case = show_case(
            uow.identity,
            uow.audit,
            ShowCase(review_id[:64], viewer=cli_actor(), at=utcnow(), request_id=None),
        )
        return {
            **review_public(case.case, utcnow(), uow.obligations),
            "evidence": case.evidence,
            "comparison": case.view.to_dict(),
        }

    _print_json(_with_unit(data_dir, shown))


@reviews_app.command("decide")
def reviews_decide(
    review_id: Annotated[str, typer.Argument(help="The case's id.")],
    version: Version,
    reason: Reason,
    accept: Annotated[
        str | None,
        typer.Option(help="Accept: the member the request is (one of the case's candidates)."),
    ] = None,
    reject: Annotated[
        bool, typer.Option("--reject", help="Reject: the request is none of them.")
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Accept (``--accept MEMBER``) or reject (``--reject``) a case, on the version you
    read; refused when someone decided it first or it changed since."""
    from payerbridge.api.routers.identity import review_public
    from payerbridge.bootstrap import utcnow
    from payerbridge.identity.model import ReviewDecision
    from payerbridge.identity.reviews import decide_review
    from payerbridge.types import MemberId

    if (accept is None) == (not reject):
        raise fail(errors.InvalidInput("say --accept MEMBER or --reject, not both or neither"))
    actor = cli_actor()
    decision = ReviewDecision(
        review_id=review_id[:64],
        version=version,
        accept=accept is not None,
        member_id=None if accept is None else MemberId(accept),
        reviewer=actor,
        reason=reason,
    )
    decided, obligations = _with_unit(
        data_dir, lambda uow: (decide_review(decision, uow, request_id=None), uow.obligations)
    )
    case = review_public(decided, utcnow(), obligations)
    out.print(f"{case['id']}: {case['status']} by {actor} (version {case['version']})")


@reviews_app.command("reopen")
def reviews_reopen(
    review_id: Annotated[str, typer.Argument(help="The case's id.")],
    version: Version,
    reason: Reason,
    data_dir: DataDir = None,
) -> None:
    """Undo a decision from now on: the case is open again, and its request no longer
    answered with the member it accepted."""
    from payerbridge.identity.reviews import ReviewReopening, reopen_review

    actor = cli_actor()
    reopening = ReviewReopening(review_id[:64], version, actor, reason)
    reopened = _with_unit(data_dir, lambda uow: reopen_review(reopening, uow, request_id=None))
    out.print(f"{reopened.id}: open again by {actor} (version {reopened.version})")
