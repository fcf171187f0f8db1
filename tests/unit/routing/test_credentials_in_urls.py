"""No URL we call carries credentials (ADR 0046): a partner's base or token URL with
``user:password@`` in it is refused at registration naming the field, a FHIR-server
source's at the sources file's load, and the guarded transport sends nothing to one
stored before."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from payerbridge.errors import InvalidInput
from payerbridge.net.addresses import AddressPolicy
from payerbridge.net.origins import has_userinfo
from payerbridge.net.transport import AddressRefused, GuardedTransport
from payerbridge.routing.model import Partner, PartnerAuth, validate_partner
from payerbridge.sources.settings import FhirServerSettings
from payerbridge.types import PartnerId

_PART = st.text(min_size=0, max_size=12).map(lambda s: quote(s, safe=""))
_USERINFO = st.one_of(
    st.builds(lambda u, p: f"{u}:{p}@", _PART, _PART),
    st.builds(lambda u: f"{u}@", _PART),
)
_HOSTS = st.sampled_from(["fhir.old.example", "10.0.0.7:8443", "[::1]", "old.example:443"])


def _partner(base_url: str, token_url: str | None = None) -> Partner:
    return Partner(
        PartnerId("old"),
        "Old",
        "1245319599",
        base_url,
        client_id="us" if token_url else None,
        token_url=token_url,
        auth=PartnerAuth.SMART if token_url else PartnerAuth.NONE,
    )


@given(userinfo=_USERINFO, host=_HOSTS, scheme=st.sampled_from(["https", "http", "HTTPS"]))
def test_a_partner_url_with_credentials_is_refused_naming_the_field(
    userinfo: str, host: str, scheme: str
) -> None:
    with_them = f"{scheme}://{userinfo}{host}/fhir"
    clean = f"{scheme}://{host}/fhir"
    assert has_userinfo(with_them) and not has_userinfo(clean)
    validate_partner(_partner(clean, f"{clean}/token"))
    for partner, field in (
        (_partner(with_them), "base_url"),
        (_partner(clean, f"{with_them}/token"), "token_url"),
    ):
        with pytest.raises(InvalidInput) as refused:
            validate_partner(partner)
        named = [i for i in refused.value.issues if i.expression == field]
        assert named and "user name or password" in named[0].text


@given(userinfo=_USERINFO)
def test_a_source_with_credentials_in_its_url_is_refused_at_load(userinfo: str) -> None:
    with pytest.raises(ValueError, match="base_url must not carry"):
        FhirServerSettings("ehr", f"https://{userinfo}ehr.example/r4", frozenset({"Patient"}))
    with pytest.raises(ValueError, match="token_url must not carry"):
        FhirServerSettings(
            "ehr",
            "https://ehr.example/r4",
            frozenset({"Patient"}),
            token_url=f"https://{userinfo}ehr.example/token",
        )


def test_the_guarded_transport_sends_nothing_to_a_url_with_credentials() -> None:
    def resolver(host: str, port: int) -> list[str]:
        raise AssertionError("a URL with credentials was resolved, to be called")

    transport = GuardedTransport(AddressPolicy.allowing(["127.0.0.0/8"]), resolver=resolver)
    with (
        httpx.Client(transport=transport, timeout=5) as client,
        pytest.raises(AddressRefused, match="nothing was sent"),
    ):
        client.get("https://user:secret@old.example/fhir/metadata")
