"""``payerbridge clients …``, ``payerbridge token issue`` and ``payerbridge keys …``: the
clients of our authorization server, tokens for manual use, and our own keys."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from payerbridge import errors
from payerbridge.cli.console import cli_actor, fail, settings_for
from payerbridge.cli.options import DataDir

__all__ = ["clients_app", "keys_app", "token_app"]

clients_app = typer.Typer(
    no_args_is_help=True, help="Clients of our authorization server (SMART Backend Services)."
)
token_app = typer.Typer(no_args_is_help=True, help="Access tokens for manual use and tests.")
keys_app = typer.Typer(no_args_is_help=True, help="This server's own keys.")
out = Console()


@clients_app.command("add")
def clients_add(
    client_id: Annotated[str, typer.Option("--id", help="Client id, e.g. 'newplan'.")],
    name: Annotated[str, typer.Option(help="Organization name.")],
    npi: Annotated[str, typer.Option(help="The organization's NPI (consents name it).")],
    scope: Annotated[
        str,
        typer.Option(
            help="Scopes it may ask for, space-delimited: e.g. 'system/*.rs http://hl7.org/"
            "fhir/us/davinci-hrex/OperationDefinition/member-match' for a requesting payer, "
            "'payerbridge/exchanges' for the plan's own systems, 'payerbridge/operator'."
        ),
    ],
    jwks: Annotated[
        Path | None, typer.Option(help="File holding its public keys (a JWK Set).")
    ] = None,
    jwks_url: Annotated[str | None, typer.Option(help="Or the URL publishing them.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Register a client with its public keys and the scopes it may ask for."""
    from payerbridge.bootstrap import build_platform
    from payerbridge.security.model import AddClient, ClientKeys
    from payerbridge.security.registration import smart_client
    from payerbridge.security.registry import add_client

    try:
        key_set = orjson.loads(jwks.read_bytes()) if jwks is not None else None
        client = smart_client(
            client_id, name, npi, scope, ClientKeys(jwks=key_set, jwks_url=jwks_url)
        )
    except (OSError, orjson.JSONDecodeError) as exc:
        raise fail(errors.InvalidInput(f"--jwks cannot be read as JSON ({exc})")) from exc
    except errors.PayerBridgeError as exc:
        raise fail(exc) from exc
    platform = build_platform(settings_for(data_dir))
    try:
        if client.jwks_url is not None:
            platform.check_jwks_url(client.jwks_url)
        add_client(AddClient(client, cli_actor()), platform.units.security())
    except errors.PayerBridgeError as exc:
        raise fail(exc) from exc
    finally:
        platform.close()
    out.print(f"client '{client_id}' registered")


@clients_app.command("list")
def clients_list(data_dir: DataDir = None) -> None:
    """List the registered clients."""
    from payerbridge.bootstrap import build_platform

    platform = build_platform(settings_for(data_dir))
    try:
        table = Table(
            "id", "name", "npi", "npi bound by", "kind", "scope", "revoked", title="Clients"
        )
        for client in platform.units.security().clients.list():
            bound_by = client.npi_evidence.value
            if client.npi_vouched_by and client.npi_vouched_by != bound_by:
                bound_by = f"{bound_by} ({client.npi_vouched_by})"
            table.add_row(
                client.client_id,
                client.name,
                client.npi,
                bound_by,
                client.kind.value,
                " ".join(sorted(client.scopes)),
                client.revoked_at.isoformat() if client.revoked_at else "",
            )
    finally:
        platform.close()
    out.print(table)


@clients_app.command("approve")
def clients_approve(
    client_id: Annotated[str, typer.Option("--id", help="The waiting client.")],
    npi: Annotated[str, typer.Option(help="The NPI it claims, which you have checked.")],
    data_dir: DataDir = None,
) -> None:
    """Approve the NPI a UDAP client claims when its certificate does not carry it (after
    checking the organization out of band): it may then get tokens. Audited."""
    from payerbridge.bootstrap import build_platform
    from payerbridge.security.model import ApproveOrganization
    from payerbridge.security.registry import approve_organization
    from payerbridge.types import ClientId

    platform = build_platform(settings_for(data_dir))
    try:
        approve_organization(
            ApproveOrganization(ClientId(client_id), npi, cli_actor()), platform.units.security()
        )
    except errors.PayerBridgeError as exc:
        raise fail(exc) from exc
    finally:
        platform.close()
    out.print(f"client '{client_id}' may act for NPI {npi}")


@clients_app.command("revoke")
def clients_revoke(
    client_id: Annotated[str, typer.Option("--id", help="The client to revoke.")],
    data_dir: DataDir = None,
) -> None:
    """Revoke a client: its tokens stop working at once."""
    from payerbridge.bootstrap import build_platform
    from payerbridge.security.model import RevokeClient
    from payerbridge.security.registry import revoke_client
    from payerbridge.types import ClientId

    platform = build_platform(settings_for(data_dir))
    try:
        revoke_client(RevokeClient(ClientId(client_id), cli_actor()), platform.units.security())
    except errors.PayerBridgeError as exc:
        raise fail(exc) from exc
    finally:
        platform.close()
    out.print(f"client '{client_id}' revoked")


@token_app.command("issue")
def token_issue(
    client: Annotated[str, typer.Option(help="A registered client's id.")],
    scope: Annotated[str, typer.Option(help="Scopes, space-delimited, within the client's.")],
    data_dir: DataDir = None,
) -> None:
    """Print an access token for a registered client (signed with this server's key)."""
    from payerbridge.bootstrap import build_platform, utcnow
    from payerbridge.security.model import OAuthError
    from payerbridge.types import ClientId

    platform = build_platform(settings_for(data_dir))
    try:
        tokens = platform.units.security().tokens
        grant = tokens.issue(ClientId(client), scope, now=utcnow(), actor=cli_actor())
    except OAuthError as exc:
        raise fail(errors.InvalidInput(exc.description)) from exc
    except errors.PayerBridgeError as exc:
        raise fail(exc) from exc
    finally:
        platform.close()
    typer.echo(grant.access_token)  # alone on stdout, for scripts


@keys_app.command("rotate")
def keys_rotate(
    retire_previous: Annotated[
        bool,
        typer.Option(
            "--retire-previous",
            help="Stop accepting tokens signed by the previous keys at once (a key "
            "thought compromised); every client must ask for a new token.",
        ),
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Start signing access tokens with a new key; tokens signed by the previous one stay
    valid until they expire (or not, with --retire-previous), older keys are retired.
    Running servers take the new key within 50 ms: no restart."""
    from payerbridge.bootstrap import rotate_access_token_keys

    key_id = rotate_access_token_keys(settings_for(data_dir), retire_previous=retire_previous)
    retired = "; tokens signed by the previous keys are refused from now" if retire_previous else ""
    out.print(f"access tokens are now signed by key {key_id}{retired}")


@keys_app.command("client-jwks")
def keys_client_jwks(data_dir: DataDir = None) -> None:
    """Print the public key of our assertions to partners (a JWK Set), to register us."""
    from payerbridge.bootstrap import build_platform

    platform = build_platform(settings_for(data_dir))
    try:
        typer.echo(orjson.dumps(platform.units.security().client_jwks).decode())
    finally:
        platform.close()


@keys_app.command("rotate-data")
def keys_rotate_data(
    batch: Annotated[
        int, typer.Option(min=1, max=10_000, help="Values moved per unit of work.")
    ] = 500,
    data_dir: DataDir = None,
) -> None:
    """Make a new data key and move every sealed value (identity records and links, review
    cases' and exchanges' requests) under it, a batch per transaction; the old keys retire.
    A rotation cut short is resumed by running it again. Servers keep running: they
    seal under the new key within 30 seconds. Audited."""
    from payerbridge.bootstrap import build_platform
    from payerbridge.security.data_rotation import RotateDataKeys, rotate_data_keys

    platform = build_platform(settings_for(data_dir))
    try:
        report = rotate_data_keys(RotateDataKeys(cli_actor(), batch), platform.units.data_keys())
    except errors.PayerBridgeError as exc:
        raise fail(exc) from exc
    finally:
        platform.close()
    moved = ", ".join(f"{column} {count}" for column, count in report.moved.items())
    verb = "resumed" if report.resumed else "made"
    retired = ", ".join(report.retired) or "none"
    out.print(f"data key {report.key_id} {verb}; values moved: {moved}; retired: {retired}")


@keys_app.command("rotate-kek")
def keys_rotate_kek(
    to: Annotated[
        Path,
        typer.Option(
            "--to",
            help="The new key-encryption key file: made (0600) if it does not exist, "
            "else read (64 hex digits).",
        ),
    ],
    data_dir: DataDir = None,
) -> None:
    """Wrap every data key again under a new key-encryption key, in one transaction.
    Then set PAYERBRIDGE_DATA_KEY_FILE to the new file and restart every process; keep
    the old file until all have restarted, then destroy it. Audited."""
    from payerbridge.bootstrap import build_platform, kek_fingerprint, new_kek_file, read_kek
    from payerbridge.security.data_rotation import RewrapDataKeys, rewrap_data_keys

    settings = settings_for(data_dir)
    platform = build_platform(settings)
    try:
        keys = platform.units.data_keys()
        if to.resolve() == keys.kek_path.resolve():
            raise errors.InvalidInput("--to names the key-encryption key in use now")
        made = new_kek_file(to)
        new_kek = read_kek(to)
        fingerprint = kek_fingerprint(new_kek)
        rewrapped = rewrap_data_keys(RewrapDataKeys(new_kek, fingerprint, cli_actor()), keys)
    except errors.PayerBridgeError as exc:
        raise fail(exc) from exc
    finally:
        platform.close()
    source = "made" if made else "read"
    out.print(
        f"{len(rewrapped)} data key(s) wrapped under {to} ({source}; fingerprint "
        f"{fingerprint}); set PAYERBRIDGE_DATA_KEY_FILE={to} and restart every process"
    )


@keys_app.command("data-keys")
def keys_data_keys(data_dir: DataDir = None) -> None:
    """List the data keys (never their bytes) and the key-encryption key in use."""
    from payerbridge.bootstrap import build_platform

    platform = build_platform(settings_for(data_dir))
    try:
        keys = platform.units.data_keys()
        sealed = keys.sealed
        table = Table("id", "kek", "made", "retired", "sealed all", title="Data keys")
        for key in sealed.data_keys():
            table.add_row(
                key.id + (" (current)" if key.id == sealed.current else ""),
                key.kek_fingerprint,
                key.created_at.isoformat(),
                key.retired_at.isoformat() if key.retired_at else "",
                key.sealed_all_at.isoformat() if key.sealed_all_at else "",
            )
        kek = f"key-encryption key: {keys.kek_path} (fingerprint {sealed.kek_fingerprint})"
    finally:
        platform.close()
    out.print(table)
    out.print(kek)
