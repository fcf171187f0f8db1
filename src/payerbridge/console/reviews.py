"""The identity review queue: the cases oldest and riskiest first, one case with the
request and each candidate side by side, decided from the keyboard; and the requester's
side, our exchanges waiting on an old payer's reviewer.

The same use cases as the API (``identity.reviews``), with the signed-in reviewer as the
actor. A decision's form carries the version its page showed: a case decided or reopened
since is never overwritten; the page comes back saying who decided it and when, showing
what they decided. A decision made, the reviewer is taken to the next case.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from payerbridge.bootstrap import utcnow
from payerbridge.compliance.obligations import Assessment
from payerbridge.console.auth import (
    FormDep,
    PlatformDep,
    ReaderVisit,
    ReviewerDep,
    ReviewerVisit,
    Visit,
)
from payerbridge.console.pages import Flash, Page
from payerbridge.errors import InvalidInput, Issue, PayerBridgeError
from payerbridge.exchange.steps.review import partner_review_wait
from payerbridge.identity.model import (
    QueuePosition,
    ReviewCase,
    ReviewDecision,
    ReviewQuery,
    ShowCase,
)
from payerbridge.identity.review_queue import decode_position, encode_position
from payerbridge.identity.reviews import (
    ReviewReopening,
    decide_review,
    reopen_review,
    show_case,
)
from payerbridge.identity.unit import IdentityUnit
from payerbridge.logging import current_request_id
from payerbridge.security.operator_accounts import SignedIn
from payerbridge.types import MemberId

__all__ = ["router"]

router = APIRouter()

_PAGE = 50
_STATUSES = ("open", "accepted", "rejected", "any")
_AGES = {"": None, "1h": timedelta(hours=1), "4h": timedelta(hours=4), "1d": timedelta(days=1)}
_CODE = re.compile(r"^[a-z_]{1,64}$")
_QUEUE_PARAMETERS = frozenset({"status", "policy", "reason", "older", "page", "done", "case"})
_NOTICES = {"accepted": "accepted", "rejected": "rejected", "reopened": "reopened"}


def _checked(value: str, name: str) -> str | None:
    """A filter's code (a policy's or a reason's name), or None when left empty."""
    value = value.strip()
    if not value:
        return None
    if not _CODE.match(value):
        text = f"{name} is a code of lower-case letters and underscores, such as below_auto_band"
        raise InvalidInput(text, issues=[Issue(text, name, "value")])
    return value


def _queue_query(params: dict[str, str], now: datetime) -> ReviewQuery:
    status = params.get("status") or "open"
    if status not in _STATUSES:
        text = f"status is one of {', '.join(_STATUSES)}"
        raise InvalidInput(text, issues=[Issue(text, "status", "value")])
    age = params.get("older", "")
    if age not in _AGES:
        text = f"older is one of {', '.join(a for a in _AGES if a)}"
        raise InvalidInput(text, issues=[Issue(text, "older", "value")])
    older = _AGES[age]
    page = params.get("page")
    return ReviewQuery(
        status=None if status == "any" else status,
        policy=_checked(params.get("policy", ""), "policy"),
        reason=_checked(params.get("reason", ""), "reason"),
        opened_before=None if older is None else now - older,
        after=decode_position(page) if page else None,
        limit=_PAGE + 1,
    )


@router.get("/reviews")
def queue_page(visit: ReviewerVisit) -> Response:
    """The queue, in its order; ``j``/``k`` move through it, ``Enter`` opens a case."""
    request, uow = visit.request, visit.platform.units.identity()
    params = {k: v[:400] for k, v in request.query_params.items()}
    now = utcnow()
    context: dict[str, Any] = {"form": params, "statuses": _STATUSES, "ages": _AGES, "now": now}
    try:
        unknown = sorted(set(params) - _QUEUE_PARAMETERS)
        if unknown:
            text = f"this page has no filter {', '.join(unknown)[:100]}"
            raise InvalidInput(text, issues=[Issue(text, unknown[0][:40], "value")])
        query = _queue_query(params, now)
    except InvalidInput as exc:
        context.update(error=exc.text, cases=[], following=None)
        return visit.render("reviews.html", context, status_code=400)
    cases = uow.identity.reviews(query)
    following = None
    if len(cases) > _PAGE:
        cases = cases[:_PAGE]
        last = cases[-1]
        assert last.due_at is not None
        token = encode_position(QueuePosition(last.due_at, last.id))
        following = str(request.url.include_query_params(page=token))
    done, case_id = params.get("done"), params.get("case")
    notice = f"case {case_id[:12]} {_NOTICES[done]}" if done in _NOTICES and case_id else None
    context.update(
        cases=cases,
        following=following,
        notice=notice,
        overdue=is_overdue,
        answer=_answer(uow),
    )
    return visit.render("reviews.html", context)


@router.get("/reviews/next")
def next_case(
    platform: PlatformDep,
    found: ReviewerDep,
    done: Annotated[str | None, Query(max_length=20)] = None,
    case: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """The first open case in the queue's order (the queue when none is open), saying
    what became of the case decided before it."""
    told = f"done={done}&case={quote(case)}" if done in _NOTICES and case else ""
    first = platform.units.identity().identity.reviews(ReviewQuery(status="open", limit=1))
    if not first:
        return RedirectResponse(f"/console/reviews?{told}", status_code=303)
    return RedirectResponse(f"/console/reviews/{first[0].id}?{told}", status_code=303)


@router.get("/reviews/waiting-at-partners")
def partner_waits_page(
    visit: ReaderVisit, offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0
) -> Response:
    """Our exchanges waiting on an old payer's reviewer, the longest waiting first."""
    uow = visit.platform.units.exchange()
    total, records = uow.exchanges.waiting_on_partner_reviewers(
        client_id=None, limit=_PAGE, offset=offset
    )
    now = utcnow()
    policy = uow.retry_policy
    waits = [partner_review_wait(record, policy, now) for record in records]
    page = Page(offset, _PAGE, total)
    context = {"waits": waits, "page": page, "links": page.links({}, "offset")}
    return visit.render("partner_waits.html", context)


@router.get("/reviews/{review_id}")
def case_page(review_id: str, visit: ReviewerVisit) -> Response:
    query = visit.request.query_params
    done, case = query.get("done"), query.get("case", "")[:64]
    notice = None
    if done in _NOTICES:
        notice = f"case {case[:12]} {_NOTICES[done]}" if case else f"the case was {_NOTICES[done]}"
        if case and case != review_id:
            notice += ": here is the next case"
    return _case_view(visit, review_id[:64], Flash(notice=notice))


def _case_view(
    visit: Visit, review_id: str, flash: Flash, sent: dict[str, str] | None = None
) -> Response:
    """The case as it stands now, with what the form sent when it was refused; its
    showing audited (it shows demographics)."""
    uow = visit.platform.units.identity()
    shown = show_case(
        uow.identity,
        uow.audit,
        ShowCase(
            review_id, viewer=visit.signed_in.actor, at=utcnow(), request_id=current_request_id()
        ),
    )
    context = {
        "case": shown.case,
        "view": shown.view,
        "evidence": shown.evidence or {},
        "now": utcnow(),
        "notice": flash.notice,
        "error": flash.error,
        "sent": sent or {},
        "overdue": is_overdue,
        "answer": _answer(uow),
    }
    return visit.render("review.html", context, status_code=flash.status_code)


def _told(error: PayerBridgeError) -> str:
    """The error as the page says it: its text, and what its issues add."""
    more = [issue.text for issue in error.issues if issue.text != error.text]
    return "; ".join([error.text, *more])


def _field(form: FormData, name: str, limit: int) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def _version(form: FormData) -> int:
    shown = _field(form, "version", 12)
    if not shown.isdigit():
        text = "the form does not say which version of the case it was made on: reload the page"
        raise InvalidInput(text, issues=[Issue(text, "version", "required")])
    return int(shown)


@router.post("/reviews/{review_id}/decide")
def decide_case(review_id: str, visit: ReviewerVisit, form: FormDep) -> Response:
    """Accept a proposed candidate or reject, with a reason, on the version the page
    showed; then the next case. Refused: the case as it stands, saying why."""
    uow, found = visit.platform.units.identity(), visit.signed_in
    review_id = review_id[:64]
    sent = {name: _field(form, name, 2000) for name in ("decision", "member", "reason")}
    try:
        choice = _decision(review_id, form, sent, found)
        decided = decide_review(choice, uow, request_id=current_request_id())
    except PayerBridgeError as exc:
        return _case_view(visit, review_id, Flash.refused(exc, _told(exc)), sent)
    return RedirectResponse(
        f"/console/reviews/next?done={decided.status}&case={quote(decided.id)}", status_code=303
    )


def _decision(
    review_id: str, form: FormData, sent: dict[str, str], found: SignedIn
) -> ReviewDecision:
    if sent["decision"] not in ("accept", "reject"):
        text = "choose accept (a) or reject (r)"
        raise InvalidInput(text, issues=[Issue(text, "decision", "required")])
    if not sent["reason"]:
        text = "say why: the reason is kept with the decision"
        raise InvalidInput(text, issues=[Issue(text, "reason", "required")])
    accept = sent["decision"] == "accept"
    member = sent["member"][:64] if accept and sent["member"] else None
    return ReviewDecision(
        review_id,
        _version(form),
        accept,
        None if member is None else MemberId(member),
        found.actor,
        sent["reason"],
    )


@router.post("/reviews/{review_id}/reopen")
def reopen_case(review_id: str, visit: ReviewerVisit, form: FormDep) -> Response:
    """Undo the decision the page showed, with a reason: the case is open again."""
    uow, found = visit.platform.units.identity(), visit.signed_in
    review_id = review_id[:64]
    try:
        reason = _field(form, "reason", 2000)
        if not reason:
            text = "say why the decision is undone: the reason is kept with the case"
            raise InvalidInput(text, issues=[Issue(text, "reason", "required")])
        reopening = ReviewReopening(review_id, _version(form), found.actor, reason)
        reopen_review(reopening, uow, request_id=current_request_id())
    except PayerBridgeError as exc:
        return _case_view(visit, review_id, Flash.refused(exc, _told(exc)))
    return RedirectResponse(f"/console/reviews/{review_id}?done=reopened", status_code=303)


def _answer(uow: IdentityUnit) -> Callable[[ReviewCase, datetime], Assessment]:
    """Where a case's answer stands against the rule's clock (one business day from the
    request, by the plan's calendar): for the pages to show beside the queue's own due."""

    def answer(case: ReviewCase, now: datetime) -> Assessment:
        return uow.obligations.answer(case.opened_at, case.answered_at, now)

    return answer


def is_overdue(case: ReviewCase, now: datetime) -> bool:
    return case.is_open and case.due_at is not None and case.due_at < now
