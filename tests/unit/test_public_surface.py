"""Each room exports a short, explicit surface; every name in ``__all__`` exists."""

import importlib

import pytest

ROOMS = [
    "payerbridge",
    "payerbridge.types",
    "payerbridge.errors",
    "payerbridge.config",
    "payerbridge.npi",
    "payerbridge.audit",
    "payerbridge.exchange",
    "payerbridge.identity",
    "payerbridge.identity.demographics",
    "payerbridge.identity.matching",
    "payerbridge.disclosure",
    "payerbridge.routing",
    "payerbridge.fhir",
    "payerbridge.partners",
    "payerbridge.sources",
    "payerbridge_tools.sandbox",
    "payerbridge.api",
    "payerbridge.consent",
    "payerbridge.webhooks",
    "payerbridge.bulk",
    "payerbridge.onboarding",
    "payerbridge.metrics",
    "payerbridge.oversight",
    "payerbridge.console",
]


@pytest.mark.parametrize("room", ROOMS)
def test_all_names_exist(room: str) -> None:
    module = importlib.import_module(room)
    assert module.__all__, f"{room} has an empty __all__"
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert not missing, f"{room}.__all__ names missing: {missing}"


def test_error_tree_has_one_root() -> None:
    from payerbridge import errors

    for name in errors.__all__:
        cls = getattr(errors, name)
        if isinstance(cls, type) and name not in ("Issue", "OAuthErrorCode"):
            assert issubclass(cls, errors.PayerBridgeError), name
