"""The security use cases: grant an access token for a client's signed assertion,
authenticate a request's bearer token, register and revoke clients. Every decision,
granted or refused, is audited."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from payerbridge.audit.model import AuditEvent
from payerbridge.errors import (
    Conflict,
    Issue,
    NotFound,
    OAuthErrorCode,
    PartnerError,
    StoreConflict,
    Unauthenticated,
)
from payerbridge.security.assertions import (
    CLIENT_ASSERTION_TYPE,
    AssertionClaims,
    ClaimsCheck,
    UnverifiedAssertion,
    read_unverified,
    verify_assertion,
)
from payerbridge.security.model import (
    AccessClaims,
    ClientKind,
    OAuthError,
    Principal,
    RegisteredClient,
    TokenAsked,
    TrustAnchors,
    is_resource_scope,
    parse_scopes,
    uncovered_scopes,
)
from payerbridge.security.organization import bind_registration, certificate_npis
from payerbridge.security.ports import AssertionLedger, ClientDirectory, KeySetSource
from payerbridge.security.tokens import TokenKeySource, TokenVerifier, sign_access_token
from payerbridge.security.udap import read_software_statement, udap_client, verify_udap_assertion
from payerbridge.transactions import Transactions
from payerbridge.types import ClientId, MemberId

_MEMBER_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_AWAITING_APPROVAL = (
    "the organization (NPI) this client registered for is claimed, not proven: its "
    "certificate does not carry that NPI, so it awaits an operator's approval of the "
    "pairing (payerbridge clients approve), or a registration with a certificate that "
    "carries it"
)

__all__ = [
    "TokenGrant",
    "TokenPolicy",
    "TokenService",
    "authenticate",
]


@dataclass(frozen=True)
class TokenPolicy:
    issuer: str  # our public base URL: the ``iss`` of our tokens
    audience: str  # our FHIR base: the ``aud`` of our tokens (the API behind it)
    token_url: str  # the ``aud`` a client's assertion must name
    registration_url: str  # the ``aud`` of a UDAP software statement
    access_token_lifetime: timedelta
    clock_skew: timedelta
    udap_scopes: frozenset[str]  # what a UDAP client may register for by itself


@dataclass(frozen=True)
class TokenGrant:
    access_token: str
    expires_in: int
    scope: str

    def as_json(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "token_type": "bearer",
            "expires_in": self.expires_in,
            "scope": self.scope,
        }


@dataclass(frozen=True)
class TokenService:
    """The token endpoint's collaborators.

    One for the whole process, its methods called on many requests' threads at once:
    each opens transactions of its own, not a ``SecurityUnit``'s, which is one request's.
    """

    clients: ClientDirectory
    assertions: AssertionLedger
    key_sets: KeySetSource
    transactions: Transactions
    keys: TokenKeySource  # read afresh on use: a rotation holds without a restart
    policy: TokenPolicy
    trust: TrustAnchors  # UDAP: the certificate authorities the operator trusts
    new_id: Callable[[], str]
    # Whether the member's consent permits the client data access now (audited): asked
    # before a member-scoped token is issued.
    member_consent: Callable[[MemberId, RegisteredClient, datetime], bool]

    def grant(
        self,
        form: Mapping[str, str],
        *,
        now: datetime,
        request_id: str | None = None,
        certificate_thumbprint: str | None = None,
    ) -> TokenGrant:
        """An access token for a ``client_credentials`` request authenticated by a
        ``private_key_jwt`` assertion; OAuthError (audited) when anything is wrong. Asked
        over mutual TLS (``certificate_thumbprint``), the token is bound to that client
        certificate (RFC 8705) and refused on a connection without it."""
        claimed = ClientId("unknown")  # who the assertion says it is, for the audit of a refusal
        try:
            assertion = self._assertion_of(form)
            unverified = read_unverified(assertion)
            claimed = ClientId(unverified.client_id[:200])
            client, verified = self._authenticate_client(form, assertion, unverified, now=now)
            scopes = self._granted_scopes(form, client)
            patient = self._member_of(form, scopes)
            self._spend(client.client_id, verified.token_id, verified.expires_at)
            if patient is not None and not self.member_consent(patient, client, now):
                raise OAuthError(
                    OAuthErrorCode.INVALID_GRANT,
                    "no consent from this member permits the client's organization now; "
                    "present it with $member-match first",
                )
        except OAuthError as refusal:
            self._audit(
                claimed, "failure", now, request_id, reason=refusal.error, text=refusal.description
            )
            raise
        asked = TokenAsked(client.client_id, scopes, patient, certificate_thumbprint)
        return self._issue(asked, now=now, actor=client.client_id, request_id=request_id)

    def issue(self, client_id: ClientId, scope: str, *, now: datetime, actor: str) -> TokenGrant:
        """A token for a registered client without an assertion, for an operator with
        the server's keys at hand (``payerbridge token issue``); audited as theirs."""
        client = self.clients.get(client_id)
        if client is None or client.is_revoked:
            raise NotFound(f"no active client is registered with id '{client_id[:200]}'")
        if client.is_awaiting_approval:
            raise Conflict(_AWAITING_APPROVAL)
        scopes = self._granted_scopes({"scope": scope}, client)
        return self._issue(TokenAsked(client_id, scopes), now=now, actor=actor, request_id=None)

    def _issue(
        self, asked: TokenAsked, *, now: datetime, actor: str, request_id: str | None
    ) -> TokenGrant:
        client_id, scopes = asked.client_id, asked.scopes
        claims = AccessClaims(
            client_id=client_id,
            scopes=scopes,
            issued_at=now,
            expires_at=now + self.policy.access_token_lifetime,
            token_id=self.new_id(),
            patient=asked.patient,
            certificate_thumbprint=asked.certificate_thumbprint,
        )
        token = sign_access_token(
            claims,
            self.keys.current(now),
            issuer=self.policy.issuer,
            audience=self.policy.audience,
        )
        scope = " ".join(sorted(scopes))
        self._audit(
            client_id,
            "success",
            now,
            request_id,
            actor=actor,
            client_id=client_id,
            scope=scope,
            token_id=claims.token_id,
        )
        return TokenGrant(token, int(self.policy.access_token_lifetime.total_seconds()), scope)

    def _assertion_of(self, form: Mapping[str, str]) -> str:
        if form.get("grant_type") != "client_credentials":
            raise OAuthError(
                OAuthErrorCode.UNSUPPORTED_GRANT_TYPE,
                "grant_type must be client_credentials (SMART Backend Services)",
            )
        if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
            raise OAuthError(
                OAuthErrorCode.INVALID_REQUEST,
                f"client_assertion_type must be {CLIENT_ASSERTION_TYPE}",
            )
        assertion = form.get("client_assertion")
        if not assertion:
            raise OAuthError(OAuthErrorCode.INVALID_REQUEST, "client_assertion is required")
        return assertion

    def _authenticate_client(
        self,
        form: Mapping[str, str],
        assertion: str,
        unverified: UnverifiedAssertion,
        *,
        now: datetime,
    ) -> tuple[RegisteredClient, AssertionClaims]:
        if "client_id" in form and form["client_id"] != unverified.client_id:
            raise OAuthError(
                OAuthErrorCode.INVALID_CLIENT, "client_id does not match the assertion's iss"
            )
        client = self.clients.get(ClientId(unverified.client_id))
        if client is None or client.is_revoked:
            raise OAuthError(
                OAuthErrorCode.INVALID_CLIENT,
                "the client is not registered or was revoked",
                status=401,
            )
        if client.kind is ClientKind.UDAP:
            # The assertion is verified first: only the certificate holder learns why.
            udap = verify_udap_assertion(
                assertion,
                client=client,
                trust=self.trust,
                check=ClaimsCheck(self.policy.token_url, now, self.policy.clock_skew),
            )
            self._require_bound(client)
            return client, udap
        verified = verify_assertion(
            assertion,
            unverified.header,
            self._client_keys(client),
            client.client_id,
            ClaimsCheck(self.policy.token_url, now, self.policy.clock_skew),
        )
        self._require_bound(client)
        return client, verified

    @staticmethod
    def _require_bound(client: RegisteredClient) -> None:
        if client.is_awaiting_approval:
            raise OAuthError(OAuthErrorCode.UNAUTHORIZED_CLIENT, _AWAITING_APPROVAL)

    def register_udap(
        self, body: Any, *, now: datetime, request_id: str | None = None
    ) -> RegisteredClient:
        """UDAP dynamic client registration: a client with a software statement signed
        under a trusted certificate registers itself (again: the same id, updated, never
        another NPI). Its NPI is bound by the certificate when it carries it, else the
        client waits for an operator's approval (``security.organization``). OAuthError
        in RFC 7591's form, audited."""
        claimed = ClientId("unknown")
        try:
            if not isinstance(body, dict) or body.get("udap") != "1":
                raise OAuthError(
                    OAuthErrorCode.INVALID_CLIENT_METADATA, 'the request must carry "udap": "1"'
                )
            statement_text = body.get("software_statement")
            if not isinstance(statement_text, str) or not statement_text:
                raise OAuthError(
                    OAuthErrorCode.INVALID_SOFTWARE_STATEMENT, "software_statement is required"
                )
            statement = read_software_statement(
                statement_text,
                trust=self.trust,
                allowed_scopes=self.policy.udap_scopes,
                check=ClaimsCheck(self.policy.registration_url, now, self.policy.clock_skew),
            )
            claimed_client = udap_client(statement)
            claimed = claimed_client.client_id
            with self.transactions.begin() as unit:
                known = self.clients.get(claimed_client.client_id)
                if known is not None and known.is_revoked:
                    raise OAuthError(
                        OAuthErrorCode.UNAPPROVED_SOFTWARE_STATEMENT,
                        "this client was revoked by an operator; it cannot register again",
                    )
                carried = certificate_npis(statement.certificate.leaf)
                client = bind_registration(claimed_client, known, carried, now=now)
                self.assertions.remember(
                    unit, client.client_id, statement.token_id, until=statement.expires_at
                )
                if known is None:
                    self.clients.add(unit, client, at=now)
                else:
                    self.clients.update(unit, client, at=now)
                unit.record(
                    AuditEvent(
                        at=now,
                        actor=client.client_id,
                        action="client.register",
                        entity_type="Client",
                        entity_id=client.client_id,
                        outcome="success" if known is None else "updated",
                        request_id=request_id,
                        detail={
                            "kind": "udap",
                            "npi": client.npi,
                            "npi_evidence": client.npi_evidence.value,
                            "scope": " ".join(sorted(client.scopes)),
                            "certificate_sha256": statement.certificate.thumbprint,
                        },
                    )
                )
        except StoreConflict as exc:
            refusal = OAuthError(
                OAuthErrorCode.INVALID_SOFTWARE_STATEMENT, "software_statement jti was used"
            )
            self._audit_registration(claimed, refusal, now, request_id)
            raise refusal from exc
        except OAuthError as refusal:
            self._audit_registration(claimed, refusal, now, request_id)
            raise
        return client

    def _audit_registration(
        self, actor: ClientId, refusal: OAuthError, now: datetime, request_id: str | None
    ) -> None:
        with self.transactions.begin() as unit:
            unit.record(
                AuditEvent(
                    at=now,
                    actor=actor,
                    action="client.register",
                    entity_type="Client",
                    entity_id=actor,
                    outcome="failure",
                    request_id=request_id,
                    detail={"reason": refusal.error, "text": refusal.description},
                )
            )

    def _client_keys(self, client: RegisteredClient) -> dict[str, Any]:
        if client.jwks is not None:
            return client.jwks
        if client.jwks_url is None:
            raise OAuthError(
                OAuthErrorCode.INVALID_CLIENT, "the client has no registered keys", status=401
            )
        try:
            return self.key_sets.fetch(client.jwks_url)
        except PartnerError as exc:
            raise OAuthError(
                OAuthErrorCode.INVALID_CLIENT,
                "the client's JWK Set URL could not be read",
                status=401,
            ) from exc

    def _granted_scopes(self, form: Mapping[str, str], client: RegisteredClient) -> frozenset[str]:
        requested = parse_scopes(form.get("scope", ""))
        if not requested:
            raise OAuthError(OAuthErrorCode.INVALID_SCOPE, "scope is required (space-delimited)")
        uncovered = uncovered_scopes(client.scopes, requested)
        # SMART resource scopes beyond the registration are left out of the grant, whose
        # scope the token response names (RFC 6749 3.3; clients such as smart-fetch ask
        # for every type they know); any other scope not allowed is refused by name.
        refused = [scope for scope in uncovered if not is_resource_scope(scope)]
        granted = requested - set(uncovered)
        if refused or not granted:
            raise OAuthError(
                OAuthErrorCode.INVALID_SCOPE,
                f"the client is not allowed the scope(s): {' '.join(refused or uncovered)}",
            )
        return granted

    def _member_of(self, form: Mapping[str, str], scopes: frozenset[str]) -> MemberId | None:
        """The member a member-scoped token is asked for (``patient``, the MemberId from
        ``$member-match``): its scopes are ``patient/`` ones, and only then."""
        patient = form.get("patient")
        in_patient_context = {scope.startswith("patient/") for scope in scopes}
        if patient is None:
            if True in in_patient_context:
                raise OAuthError(
                    OAuthErrorCode.INVALID_SCOPE, "patient/ scopes need the patient parameter"
                )
            return None
        if not _MEMBER_ID.match(patient):
            raise OAuthError(
                OAuthErrorCode.INVALID_REQUEST, "patient must be a FHIR id (the MemberId)"
            )
        if in_patient_context != {True}:
            raise OAuthError(
                OAuthErrorCode.INVALID_SCOPE,
                "a member-scoped token (patient) takes patient/ scopes only",
            )
        return MemberId(patient)

    def _spend(self, client_id: ClientId, token_id: str, expires_at: datetime) -> None:
        # Remembered until the assertion could no longer pass the exp check.
        until = expires_at + self.policy.clock_skew
        try:
            with self.transactions.begin() as unit:
                self.assertions.remember(unit, client_id, token_id, until=until)
        except StoreConflict as exc:
            raise OAuthError(
                OAuthErrorCode.INVALID_CLIENT,
                "client_assertion jti was used before (a replay)",
                status=401,
            ) from exc

    def _audit(
        self,
        client: ClientId,
        outcome: str,
        now: datetime,
        request_id: str | None,
        *,
        actor: str | None = None,
        **detail: str,
    ) -> None:
        """A token event about ``client``, by ``actor`` (the client itself unless given)."""
        with self.transactions.begin() as unit:
            unit.record(
                AuditEvent(
                    at=now,
                    actor=client if actor is None else actor,
                    action="auth.token",
                    entity_type="Client",
                    entity_id=client,
                    outcome=outcome,
                    request_id=request_id,
                    detail=detail or {},
                )
            )


def authenticate(
    token: str,
    *,
    verifier: TokenVerifier,
    clients: ClientDirectory,
    now: datetime,
    certificate_thumbprint: str | None = None,
) -> Principal:
    """The caller a bearer token names, while the token is valid and its client is not
    revoked (looked up on every request, so a revocation takes effect at once). A token
    bound to a client certificate is good only on a connection that presents it."""
    claims = verifier.verify(token, now=now)
    if claims.certificate_thumbprint not in (None, certificate_thumbprint):
        raise Unauthenticated(
            "the access token is bound to another client certificate",
            issues=[
                Issue(
                    "this token was issued over mutual TLS: present the same client "
                    "certificate (RFC 8705)",
                    "Authorization",
                    "login",
                )
            ],
        )
    client = clients.get(claims.client_id)
    if client is None or client.is_revoked or client.is_awaiting_approval:
        raise Unauthenticated(
            "the client of this access token was revoked",
            issues=[Issue("the client of this access token was revoked", "Authorization", "login")],
        )
    return Principal(claims.client_id, client.npi, claims.scopes, claims.patient)
