"""The runbooks: every reason code the platform emits, gathered from the rooms that declare
them, and the page of each (``docs/runbooks/<code>.md``) that ``/runbooks`` serves.

Each room declares its codes in one place; this module only gathers them, by family:

- ``errors``: each class of the error tree (``PayerBridgeError.reason_code``), the OAuth
  error codes of the token and registration endpoints (``OAuthErrorCode``), and the
  router's own 405;
- ``consent``: why a consent does not permit a request (``DenyReason``);
- ``exchange``: why an exchange moved, stopped or waits (``ExchangeReason``);
- ``identity``: why a ``$member-match`` decision came out as it did (``DecisionReason``);
- ``bulk``: why a bulk job, or one of its members, got nothing (``BulkReason``);
- ``onboarding``: why an onboarded member ended without its data;
- ``quarantine``: which rule of its profile a held resource breaks (``ProfileRule``);
- ``delivery``: why a delivery to the plan's FHIR server did not end delivered
  (``DeliveryReason``).

A code may sit in several families when it means the same in each (``no-match`` is the
error a ``$member-match`` answers and the reason an exchange fails on it): one page says
both. ``tests/unit/test_runbooks.py`` fails when a code has no page, or a page no code
(the alerts' pages, ``alert-<name>.md``, are the alert rules' to name).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path

import payerbridge
from payerbridge import errors
from payerbridge.api.errors import METHOD_NOT_ALLOWED
from payerbridge.backends.mapping import RecordNotMapped
from payerbridge.bulk.model import BulkReason
from payerbridge.consent.model import DenyReason
from payerbridge.delivery.model import DeliveryReason
from payerbridge.errors import NotFound, OAuthErrorCode, PayerBridgeError
from payerbridge.exchange.reasons import ExchangeReason
from payerbridge.fhir.profile_check import ProfileRule
from payerbridge.identity.matching.model import DecisionReason
from payerbridge.metrics.alert_rules import ALERT_PAGE  # the alert rules' pages
from payerbridge.onboarding.service import REASON_CODES as ONBOARDING_REASONS

__all__ = [
    "ALERT_PAGE",
    "INDEX",
    "RunbookShelf",
    "default_runbooks_dir",
    "reason_families",
    "runbook_codes",
]

logger = logging.getLogger(__name__)
INDEX = "README"  # the page that lists every runbook
_ERROR_CLASSES: tuple[type[PayerBridgeError], ...] = (
    *(
        cls
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, PayerBridgeError)
    ),
    RecordNotMapped,
)


@cache
def reason_families() -> Mapping[str, frozenset[str]]:
    """Every reason code the platform emits, by the family that declares it."""
    return {
        "errors": frozenset(
            {cls.reason_code for cls in _ERROR_CLASSES}
            | _values(OAuthErrorCode)
            | {METHOD_NOT_ALLOWED}
        ),
        "consent": _values(DenyReason),
        "exchange": _values(ExchangeReason),
        "identity": _values(DecisionReason),
        "bulk": _values(BulkReason),
        "onboarding": frozenset(ONBOARDING_REASONS),
        "quarantine": _values(ProfileRule),
        "delivery": _values(DeliveryReason),
    }


@cache
def runbook_codes() -> frozenset[str]:
    """Every code that has (must have) a runbook."""
    return frozenset().union(*reason_families().values())


def _values(codes: Iterable[str]) -> frozenset[str]:
    return frozenset(str(code) for code in codes)


def default_runbooks_dir() -> Path:
    """``docs/runbooks`` of the source tree this package runs from (a checkout, or an
    editable install); an installed wheel has none, and ``runbooks_dir`` names them."""
    return Path(payerbridge.__file__).resolve().parents[2] / "docs" / "runbooks"


class RunbookShelf:
    """The pages of one directory, served by code: only a code the platform emits names a
    page (so no request names a path), and a page is read when asked for."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def page(self, code: str) -> str:
        """The runbook of ``code`` as written (Markdown); NotFound for a code we do not
        emit, or when the pages are not where the settings say."""
        if code != INDEX and code not in runbook_codes() and not ALERT_PAGE.match(code):
            raise NotFound(
                f"no runbook for the reason code '{code[:64]}': it is not one payerbridge "
                "emits; /runbooks lists every one"
            )
        try:
            return (self.directory / f"{code}.md").read_text(encoding="utf-8")
        except OSError as exc:  # the path is for the log: the route is public
            logger.error("runbook unreadable", extra={"path": str(self.directory), "code": code})
            raise NotFound(
                "the runbooks are not installed on this server: its operator sets "
                "runbooks_dir (PAYERBRIDGE_RUNBOOKS_DIR) to the docs/runbooks of its release"
            ) from exc
