"""Every exception class payerbridge defines is in the one tree and has a row in the table.

Each module of ``src/payerbridge`` is imported and every exception class defined there is
collected: it must be a ``PayerBridgeError`` (``errors.py``), and ``fhir/outcome.py`` must
have a row for it (its own or a parent's), so that no error of ours falls to the 500 of the
default without a decision.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator

import payerbridge
from payerbridge import errors
from payerbridge.fhir.outcome import WireForm, rendering_for, row_for

# Modules that cannot be imported outside their runner.
_NOT_IMPORTABLE = {"payerbridge.store.migrations.env"}  # runs Alembic's context on import

# Exceptions that must stay outside the tree, each with why. Keep this list short.
OUTSIDE_THE_TREE = {
    # httpx's own kind on purpose: net/ sits beside errors.py and imports nothing of ours;
    # partners/answers.py turns both into PartnerRejected.
    "payerbridge.net.transport.AddressRefused",
    "payerbridge.net.transport.AnswerTooLarge",
    # Control flow inside one function, never raised past it.
    "payerbridge.bulk.member_match._Superseded",  # a chunk rolled back, the job re-read
    "payerbridge.store.importer._Invalid",  # a bad line, counted in the import's report
    "payerbridge.backends.ncpdp._Unreadable",  # a transmission, a problem in the file's report
    "payerbridge.backends.x12_layout.LayoutError",  # an unreadable ISA, one file problem
}

# Families never raised themselves; each of their subclasses needs a row.
WITHOUT_A_ROW = {errors.PayerBridgeError, errors.MatchError}


def _subclasses(cls: type[BaseException]) -> Iterator[type[BaseException]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _our_exceptions() -> dict[str, type[BaseException]]:
    for info in pkgutil.walk_packages(payerbridge.__path__, "payerbridge."):
        if info.name not in _NOT_IMPORTABLE:
            importlib.import_module(info.name)
    return {
        f"{cls.__module__}.{cls.__qualname__}": cls
        for cls in _subclasses(BaseException)
        if cls.__module__ == "payerbridge" or cls.__module__.startswith("payerbridge.")
    }


def test_every_exception_we_define_is_in_the_tree_and_the_table() -> None:
    found = _our_exceptions()
    assert "payerbridge.errors.OAuthError" in found  # the walk reached the modules
    outside = sorted(
        name
        for name, cls in found.items()
        if not issubclass(cls, errors.PayerBridgeError) and name not in OUTSIDE_THE_TREE
    )
    assert not outside, f"exceptions outside the PayerBridgeError tree: {outside}"
    no_row = sorted(
        name
        for name, cls in found.items()
        if issubclass(cls, errors.PayerBridgeError)
        and cls not in WITHOUT_A_ROW
        and row_for(cls) is None
    )
    assert not no_row, f"errors without a row in fhir/outcome.py's table: {no_row}"
    stale = sorted(set(OUTSIDE_THE_TREE) - set(found))
    assert not stale, f"OUTSIDE_THE_TREE names classes that no longer exist: {stale}"


def test_an_oauth_error_keeps_its_own_status_and_form() -> None:
    refused = rendering_for(errors.OAuthError("invalid_client", "who?", status=401))
    assert (refused.status, refused.form) == (401, WireForm.OAUTH)
    assert rendering_for(errors.OAuthError("invalid_scope", "no")).status == 400
    assert rendering_for(errors.InvalidInput("x")).form is WireForm.OPERATION_OUTCOME


def test_the_errors_that_joined_the_tree_keep_their_attributes() -> None:
    oauth = errors.OAuthError("invalid_request", "bad form", status=400)
    assert (oauth.error, oauth.description, oauth.text, str(oauth)) == (
        "invalid_request",
        "bad form",
        "bad form",
        "bad form",
    )
    rejected = errors.CertificateRejected("expired")
    assert (rejected.reason, rejected.text) == ("expired", "expired")
    assert isinstance(errors.CodeSetError("x"), errors.InvalidInput)
