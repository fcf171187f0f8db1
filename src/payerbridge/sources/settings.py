"""What a FHIR-server source is built from: plain values, as the sources file gives them
(the private key read from its file by ``read_private_key``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from payerbridge.net.origins import has_userinfo

__all__ = ["PER_TYPE_SCOPE", "FhirServerSettings", "read_private_key"]

PER_TYPE_SCOPE = "per-type"  # the scope setting that asks system/<Type>.read for each type
MIB = 1024 * 1024


@dataclass(frozen=True)
class FhirServerSettings:
    """One FHIR server. ``client_id`` and ``private_key`` (a private JWK: EC P-384 for
    ES384, RSA for RS384) together, or neither for a server that asks no token.
    ``scope``: ``system/*.read`` by default, ``per-type`` for ``system/<Type>.read``
    of each type, or any scope string verbatim. ``token_url``: else the one the
    server's SMART configuration names (on its origin). ``timeout_seconds``: the
    longest one HTTP call may take (a ``records`` call's budget bounds it too)."""

    id: str
    base_url: str
    types: frozenset[str]
    client_id: str | None = None
    private_key: dict[str, Any] | None = None
    token_url: str | None = None
    scope: str = "system/*.read"
    page_size: int = 200
    timeout_seconds: float = 10.0
    max_pages: int = 1000
    workers: int = 4  # types read side by side in one records() call
    export_wait_seconds: float = 600.0  # roster: the longest an $export may take
    answer_limit: int = 32 * MIB  # one search page or one document
    user_agent: str = "payerbridge-source"

    def __post_init__(self) -> None:
        problems = []
        if not self.base_url.startswith(("https://", "http://")) or self.base_url.endswith("/"):
            problems.append("base_url must be an http(s) URL without a trailing /")
        for name, url in (("base_url", self.base_url), ("token_url", self.token_url)):
            if url is not None and has_userinfo(url):
                problems.append(
                    f"{name} must not carry a user name or password (user:password@): they "
                    "would be sent as Basic auth; use client_id and private_key"
                )
        if not self.types:
            problems.append("types must name at least one resource type")
        if (self.client_id is None) != (self.private_key is None):
            problems.append("client_id and private_key go together (SMART Backend Services)")
        if self.page_size < 1 or self.timeout_seconds <= 0 or self.workers < 1:
            problems.append("page_size, timeout_seconds and workers must be positive")
        if problems:
            raise ValueError(f"source '{self.id}': " + "; ".join(problems))

    def scope_for_types(self) -> str:
        if self.scope != PER_TYPE_SCOPE:
            return self.scope
        return " ".join(f"system/{t}.read" for t in sorted(self.types))


def read_private_key(path: Path) -> dict[str, Any]:
    """The private JWK in ``path``; ValueError naming the file (never its content)."""
    try:
        jwk = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise ValueError(f"{path}: the private key cannot be read ({exc.strerror})") from None
    except orjson.JSONDecodeError:
        raise ValueError(f"{path}: the private key is not a JSON JWK") from None
    if not isinstance(jwk, dict) or "d" not in jwk:
        raise ValueError(f"{path}: not a private JWK (an object with the private part 'd')")
    return jwk
