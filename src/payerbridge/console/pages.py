"""How every console page is rendered: the Jinja2 templates, ``render()`` with what each
page's layout needs, the security headers, paging, and errors as pages (ADR 0035).

A page's template extends ``base.html`` and fills its blocks ``title``, ``content`` and
``scripts`` (``<script src>`` of a file in ``static/``: the policy refuses inline
script and style). ``render(request, signed_in, "page.html", {...})`` gives it the
operator, the navigation their role may open (the item it belongs to marked),
``csrf_field()`` for its forms, ``runbook_url(code)`` for reason codes and
``page_links(page)`` for paged lists. A page that follows an action says how it went
with a ``Flash``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, pass_context, select_autoescape
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.templating import Jinja2Templates

from payerbridge import __version__
from payerbridge.audit.model import AuditEvent
from payerbridge.errors import PayerBridgeError
from payerbridge.fhir.outcome import rendering_for
from payerbridge.fhir.reasons import runbook_url as reason_runbook_url
from payerbridge.logging import current_request_id
from payerbridge.security.break_glass import active_grant, masked
from payerbridge.security.model import Permission, UnmaskGrant
from payerbridge.security.operator_accounts import SignedIn
from payerbridge.timestamps import utc_iso

__all__ = [
    "NAVIGATION",
    "NO_FLASH",
    "SECURITY_HEADERS",
    "Flash",
    "NavItem",
    "Page",
    "plain_page",
    "render",
    "runbook_url",
    "templates",
]

HERE = Path(__file__).parent


@dataclass(frozen=True)
class NavItem:
    """An item of the navigation, and the pages (templates) under it: the layout marks
    it while one of them is shown."""

    key: str
    label: str
    href: str
    permission: Permission
    pages: tuple[str, ...]


# The layout's navigation: an operator sees the pages their role may open.
NAVIGATION: tuple[NavItem, ...] = (
    NavItem("dashboard", "Dashboard", "/console/", Permission.READ, ("dashboard.html",)),
    NavItem(
        "exchanges",
        "Exchanges",
        "/console/exchanges",
        Permission.READ,
        ("exchanges.html", "exchange.html"),
    ),
    NavItem(
        "reviews",
        "Identity reviews",
        "/console/reviews",
        Permission.REVIEW,
        ("reviews.html", "review.html", "partner_waits.html"),
    ),
    NavItem(
        "waiting", "Dead letters & waiting", "/console/waiting", Permission.READ, ("waiting.html",)
    ),
    NavItem(
        "partners",
        "Partners",
        "/console/partners",
        Permission.PARTNERS,
        ("partners.html", "partner.html"),
    ),
    NavItem("health", "Partner health", "/console/health", Permission.PARTNERS, ("health.html",)),
    NavItem("jobs", "Bulk jobs & onboardings", "/console/jobs", Permission.READ, ("jobs.html",)),
    NavItem("pulls", "Pulls", "/console/pulls", Permission.READ, ("pulls.html",)),
    NavItem("consents", "Consents", "/console/consents", Permission.READ, ("consents.html",)),
    NavItem("holds", "Legal holds", "/console/holds", Permission.READ, ("holds.html",)),
    NavItem(
        "opt-outs",
        "Provider Access opt-outs",
        "/console/opt-outs",
        Permission.READ,
        ("opt_outs.html",),
    ),
    NavItem("audit", "Audit", "/console/audit", Permission.AUDIT, ("audit.html",)),
)
# The navigation item each page sits under (the sign-in, break-glass and error pages
# under none).
_SECTION = {page: item.key for item in NAVIGATION for page in item.pages}


@dataclass(frozen=True)
class Flash:
    """What a page says of the action that led to it: done (``notice``), or refused
    (``error``, answered with the status the API would answer)."""

    notice: str | None = None
    error: str | None = None
    status_code: int = 200

    @classmethod
    def refused(cls, exc: PayerBridgeError, text: str | None = None) -> Flash:
        """``exc`` told on the page (in ``text`` when given), with its status."""
        return cls(error=exc.text if text is None else text, status_code=rendering_for(exc).status)


# A page that follows no action.
NO_FLASH = Flash()

# Every console answer: scripts, styles, images and forms from this origin only, never
# framed; pages are not kept by the browser or a proxy (they show member data).
SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
NO_STORE: Mapping[str, str] = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def runbook_url(code: str | None) -> str | None:
    """Where the runbook of a reason code is (``docs/runbooks/<code>.md``, served at
    ``/runbooks/<code>`` or where ``fhir.reasons`` was pointed)."""
    return reason_runbook_url(code) if code else None


@pass_context
def _csrf_field(context: Mapping[str, Any]) -> Markup:
    """The hidden field every POST form carries (``auth.checked_form`` checks it)."""
    token = context.get("csrf_token") or ""
    return Markup('<input type="hidden" name="csrf_token" value="{}">').format(token)


def _when(value: Any) -> str:
    """An instant as the pages show it: UTC to the second."""
    if value is None:
        return ""
    return utc_iso(value)[:19].replace("T", " ") + " UTC"


def _environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html", "svg"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.globals.update(
        csrf_field=_csrf_field,
        runbook_url=runbook_url,
        static=lambda name: f"/console/static/{name}?v={__version__}",
        version=__version__,
    )
    environment.filters["when"] = _when
    return environment


templates = Jinja2Templates(env=_environment())


@dataclass(frozen=True)
class Page:
    """One page of a list: where it starts, its size, how many there are in all."""

    offset: int
    count: int
    total: int

    @property
    def first(self) -> int:
        return min(self.offset + 1, self.total)

    @property
    def last(self) -> int:
        return min(self.offset + self.count, self.total)

    def links(self, query: Mapping[str, Any], param: str = "offset") -> dict[str, str | None]:
        """The previous and next pages' query strings, with the list's other filters
        (``param``: the page's offset parameter)."""
        kept = {k: v for k, v in query.items() if k != param and v not in (None, "")}

        def at(offset: int) -> str:
            return "?" + urlencode({**kept, param: offset})

        previous = at(max(0, self.offset - self.count)) if self.offset > 0 else None
        following = at(self.offset + self.count) if self.offset + self.count < self.total else None
        return {"previous": previous, "next": following}


def render(
    request: Request,
    signed_in: SignedIn | None,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> Response:
    """A console page: ``template`` with ``context`` and what the layout needs."""
    operator = signed_in.operator if signed_in else None
    nav = [item for item in NAVIGATION if operator is not None and operator.may(item.permission)]
    grant = _unmasking(request, signed_in, template)
    full = {
        "unmasked": grant,
        # A member's identifier as a page shows it: masked unless a grant is in force.
        "shown": (lambda value: value or "") if grant is not None else masked,
        "signed_in": signed_in,
        "operator": operator,
        "csrf_token": signed_in.csrf_token if signed_in else None,
        "nav": nav,
        "active": _SECTION.get(template),
        "Permission": Permission,
        **(context or {}),
    }
    return templates.TemplateResponse(
        request, template, full, status_code=status_code, headers=dict(NO_STORE)
    )


def _unmasking(request: Request, signed_in: SignedIn | None, template: str) -> UnmaskGrant | None:
    """The operator's break-glass grant in force, if any; a page shown under one is
    audited (which page, under which grant)."""
    platform = getattr(request.app.state, "platform", None)
    if signed_in is None or platform is None:
        return None
    uow = platform.units.operators()
    grant = active_grant(signed_in, uow)
    if grant is not None:
        uow.audit.record(
            AuditEvent(
                at=uow.clock(),
                actor=signed_in.actor,
                action="console.unmasked-view",
                entity_type="Operator",
                entity_id=signed_in.operator.name,
                outcome="success",
                request_id=current_request_id(),
                detail={"grant": grant.id, "page": template, "path": request.url.path[:200]},
            )
        )
    return grant


def plain_page(request: Request, status_code: int, title: str, text: str) -> Response:
    """An error page outside any session (404, 500): no navigation, no member data."""
    try:
        return templates.TemplateResponse(
            request,
            "error.html",
            {"title": title, "text": text, "status": status_code, "nav": []},
            status_code=status_code,
            headers=dict(NO_STORE),
        )
    except Exception:  # noqa: BLE001 - the page of last resort must not fail itself
        return HTMLResponse(f"<h1>{status_code}</h1>", status_code=status_code)
