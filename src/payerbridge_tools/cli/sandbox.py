"""``payerbridge sandbox generate|up`` and ``payerbridge demo`` (what ``make run`` runs).

The sandbox is a synthetic payer network: partner payers, each a payerbridge instance
with its own data directory, port and organization, loaded with generated members.
"""

from __future__ import annotations

import secrets
import signal
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import httpx
import orjson
import typer
from rich.table import Table

from payerbridge.exchange.model import STOPPED_STATES
from payerbridge_tools.cli.sandbox_control import Supervisor, partner_app
from payerbridge_tools.cli.sandbox_instances import (
    Instance,
    bindable,
    err,
    our_client_id,
    our_key_set,
    out,
    register_client,
    spawn,
    stop,
    wait_healthy,
    write_environment,
)

sandbox_app = typer.Typer(no_args_is_help=True, help="Synthetic payer network.")
sandbox_app.add_typer(partner_app, name="partner")

_TERMINAL = {state.value for state in STOPPED_STATES}
# After the FHIR partners: the X12/CSV partner, the FHIR-server partner and its server.
SOURCE_PORTS = 4


@dataclass(frozen=True)
class PartnerProfile:
    """How a sandbox partner differs, as real payers do: the guide versions it declares
    and speaks, and the maintenance windows it announces to us."""

    label: str
    env: dict[str, str]
    weekly_maintenance: dict[str, str] | None = None


# By the partner's place in the network; a network of more partners repeats them.
PARTNER_PROFILES = (
    PartnerProfile(
        "HRex 1.0.0 / PDex 2.0: answers without MemberId",
        {
            "PAYERBRIDGE_HREX_VERSION": "1.0.0",
            "PAYERBRIDGE_PDEX_VERSION": "2.0.0",
            "PAYERBRIDGE_MEMBER_MATCH_RETURN_MEMBER_ID": "false",
        },
    ),
    PartnerProfile(
        "HRex 1.1.0 / PDex 2.1",
        {"PAYERBRIDGE_HREX_VERSION": "1.1.0", "PAYERBRIDGE_PDEX_VERSION": "2.1.0"},
    ),
    PartnerProfile(
        "HRex 1.2.0 / PDex 2.2: announces maintenance windows",
        {"PAYERBRIDGE_HREX_VERSION": "1.2.0", "PAYERBRIDGE_PDEX_VERSION": "2.2.0"},
        {
            "weekly": "sun",
            "start": "02:00",
            "end": "04:00",
            "zone": "America/New_York",
            "reason": "weekly maintenance",
        },
    ),
)
SANDBOX_PARTNERS = len(PARTNER_PROFILES)


def profile_of(index: int) -> PartnerProfile:
    return PARTNER_PROFILES[index % len(PARTNER_PROFILES)]


DataDir = Annotated[Path, typer.Option("--data-dir", help="The platform's data directory.")]
AsOf = Annotated[
    str | None, typer.Option(help="Reference date (ISO) of the generated data; default today.")
]


def _network_dir(data_dir: Path) -> Path:
    return data_dir / "sandbox" / "network"


def _generate(
    out_dir: Path, payers: int, members: int, seed: int, as_of: date, sources: int = 0
) -> None:
    """``payers`` with FHIR files, and ``sources`` more whose history is in their own
    systems (the demo's X12/CSV and FHIR-server partners)."""
    from rich.progress import Progress

    from payerbridge_tools.sandbox.generator import write_network

    with Progress(console=err, transient=True) as progress:
        task = progress.add_task("generating", total=None)
        files = write_network(
            out_dir,
            payers + sources,
            members,
            seed,
            as_of,
            progress=lambda n: progress.update(task, completed=n),
            fhir_payers=payers,
        )
    err.print(f"generated {files.resources:,} resources for {payers} payers in {out_dir}")


@sandbox_app.command("generate")
def generate(
    out_dir: Annotated[Path, typer.Option("--out", help="Output directory.")] = Path(
        "var/sandbox/network"
    ),
    payers: Annotated[int, typer.Option(min=1, max=26, help="Old payers (partners).")] = 2,
    members: Annotated[int, typer.Option(min=1, help="Members per payer.")] = 200,
    seed: Annotated[int, typer.Option(help="Seed: same seed and date, same bytes.")] = 42,
    as_of: AsOf = None,
) -> None:
    """Write a deterministic synthetic population (NDJSON) for each payer."""
    _generate(out_dir, payers, members, seed, date.fromisoformat(as_of) if as_of else date.today())


def _load_network(network_dir: Path) -> dict[str, Any]:
    path = network_dir / "network.json"
    if not path.exists():
        err.print(
            f"[red]error:[/red] no sandbox network at {network_dir}; run "
            "`payerbridge sandbox generate` first"
        )
        raise typer.Exit(3)
    return dict(orjson.loads(path.read_bytes()))


def _start_partners(
    data_dir: Path,
    network: dict[str, Any],
    base_port: int,
    us: tuple[str, str],
    instances: list[Instance],
) -> None:
    """Load each partner's data once, register ``us`` (name, NPI) as its client with our
    real public key, then start it as its own SQLite-backed instance, added to
    ``instances`` as soon as it runs (so that an interruption meanwhile stops it)."""
    from payerbridge.bootstrap import build_platform
    from payerbridge.config import load_settings
    from payerbridge.routing.model import DEFAULT_PARTNER_SCOPE

    network_dir = _network_dir(data_dir)
    our_keys = our_key_set(data_dir)
    for index, payer in enumerate(network["payers"]):
        payer_dir = data_dir / "sandbox" / payer["slug"]
        env = {
            "PAYERBRIDGE_ORG_NAME": payer["name"],
            "PAYERBRIDGE_ORG_NPI": payer["npi"],
            **profile_of(index).env,
        }
        marker = payer_dir / ".loaded"
        if not marker.exists():
            platform = build_platform(load_settings(data_dir=payer_dir, database_url=None))
            report = platform.import_members(network_dir / payer["file"])
            platform.close()
            if not report.accepted:
                raise RuntimeError(f"sandbox data for {payer['slug']} was rejected")
            marker.write_text(str(report.resources))
            err.print(f"loaded {report.resources:,} resources into {payer['slug']}")
        register_client(payer_dir, our_client_id(us[1]), us, DEFAULT_PARTNER_SCOPE, our_keys)
        instances.append(spawn(payer["slug"], payer_dir, base_port + index, env, embedded=True))


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _require_free_ports(port: int, base_port: int) -> None:
    """Refuse to start (exit 2) when a port the demo needs is taken, naming it and the
    options that choose others: found later, a busy port ends in errors far from here."""
    from payerbridge_tools.cli.sandbox_sources import source_ports

    partners = range(base_port, base_port + SANDBOX_PARTNERS + SOURCE_PORTS)
    wanted = [(port, "the platform (--port)")] + [
        (p, f"sandbox partner {p - base_port + 1} (--base-port)")
        for p in partners[:SANDBOX_PARTNERS]
    ]
    wanted += [
        (p, f"{role} (--base-port)") for p, role in source_ports(base_port, SANDBOX_PARTNERS)
    ]
    problems = [f"port {p} is busy: wanted for {role}" for p, role in wanted if not bindable(p)]
    if port in partners:
        problems.append(f"port {port} is wanted twice: --port is in the partners' range")
    for problem in problems:
        err.print(f"[red]{problem}[/red]")
    if problems:
        err.print(
            "choose others: payerbridge demo --port N --base-port M (partners take "
            f"M to M+{SANDBOX_PARTNERS + SOURCE_PORTS - 1}), or make run PORT=N BASE_PORT=M"
        )
        raise typer.Exit(2)


def _serve_until_interrupted(instances: list[Instance], data_dir: Path) -> None:
    """Serve until Ctrl-C or SIGTERM, stopping and starting single instances as
    ``payerbridge sandbox partner`` asks; one that exits is reported, not fatal."""
    supervisor = Supervisor(instances, data_dir)
    try:
        while True:
            supervisor.check()
            time.sleep(0.5)
    except KeyboardInterrupt:
        err.print("stopping")
    finally:
        stop(instances)
        supervisor.close()


def _ensure_network(data_dir: Path, members: int, seed: int, as_of: str | None) -> dict[str, Any]:
    """The network: the FHIR partners' populations, and the source partners' payers
    (``source_payers``, whose data ``sandbox_sources`` writes or serves); generated
    again when an older one lacks them."""
    network_dir = _network_dir(data_dir)
    path = network_dir / "network.json"
    if not path.exists() or "source_payers" not in orjson.loads(path.read_bytes()):
        _generate(
            network_dir,
            SANDBOX_PARTNERS,
            members,
            seed,
            date.fromisoformat(as_of) if as_of else date.today(),
            sources=2,
        )
    return _load_network(network_dir)


@sandbox_app.command("up")
def up(
    data_dir: DataDir = Path("var"),
    base_port: Annotated[int, typer.Option(help="Port of the first partner.")] = 8101,
    members: Annotated[int, typer.Option(help="Members per payer if generating.")] = 200,
    seed: Annotated[int, typer.Option(help="Seed if generating.")] = 42,
    as_of: AsOf = None,
) -> None:
    """Start the sandbox partner payers and register them with the platform in DATA_DIR."""
    from payerbridge.config import load_settings

    network = _ensure_network(data_dir, members, seed, as_of)
    settings = load_settings(data_dir=data_dir)
    us = (settings.org_name, settings.org_npi)
    signal.signal(signal.SIGTERM, _interrupt)
    instances: list[Instance] = []
    try:
        _start_partners(data_dir, network, base_port, us, instances)
        wait_healthy(instances)
        _register_partners_locally(data_dir, instances, network, us[1])
    except BaseException:
        stop(instances)
        raise
    for index, instance in enumerate(instances):
        out.print(
            f"{instance.name} ({profile_of(index).label}): {instance.base_url}/fhir "
            f"(log {instance.data_dir}/server.log)"
        )
    _serve_until_interrupted(instances, data_dir)


def _register_partners_locally(
    data_dir: Path,
    instances: list[Instance],
    network: dict[str, Any],
    our_npi: str,
    *,
    window_seconds: float = 0,
    weekly: bool = True,
    payers: list[dict[str, Any]] | None = None,
) -> None:
    """Register each running partner (of ``payers``, by default the network's FHIR
    partners), read what its CapabilityStatement says, and set the maintenance windows
    it announces (``window_seconds``: also one starting now, so that the sample exchange
    shows the wait; only the FHIR partners announce any). Of the FHIR partners the
    first is found by its HRex ``.well-known`` alone and the next two are imported from
    the sandbox's directory bundle, as a plan finds real payers (ADR 0061, 0062)."""
    from payerbridge.bootstrap import build_platform
    from payerbridge.config import load_settings
    from payerbridge.routing.enrolment import (
        RefreshPartner,
        SetOperations,
        refresh_partner,
        set_operations,
    )

    listed = network["payers"] if payers is None else payers
    _enrol_partners(data_dir, instances, listed, our_client_id(our_npi), found=payers is None)
    platform = build_platform(load_settings(data_dir=data_dir))
    try:
        for index, payer in enumerate(listed):
            partner_id = payer["slug"]
            refresh_partner(RefreshPartner(partner_id, "sandbox"), platform.units.partners())
            announces = profile_of(index).weekly_maintenance if payers is None else None
            windows = [announces] if announces and weekly else []
            if announces and window_seconds:
                now = datetime.now(UTC)
                windows.append(
                    {
                        "start": now.isoformat(),
                        "end": (now + timedelta(seconds=window_seconds)).isoformat(),
                        "reason": "sandbox: a short window, to show an exchange waiting",
                    }
                )
            set_operations(
                SetOperations(partner_id, {"maintenance": windows}, "sandbox"),
                platform.units.partners(),
            )
    finally:
        platform.close()


_DIRECTORY_LISTED = 2  # the FHIR partners after the first, imported from the directory


def _enrol_partners(
    data_dir: Path,
    instances: list[Instance],
    payers: list[dict[str, Any]],
    client_id: str,
    *,
    found: bool,
) -> None:
    """Register the running partners: when ``found``, the first from its ``.well-known``
    and the next from the sandbox directory (approved as an operator would), the rest,
    and all when not ``found``, as given."""
    from payerbridge.bootstrap import build_platform
    from payerbridge.config import load_settings
    from payerbridge.routing.discovered import DiscoverPartner, PartnerAccess, discover_partner
    from payerbridge.routing.enrolment import StorePartner, store_partner
    from payerbridge.routing.model import Partner, PartnerAuth
    from payerbridge_tools.sandbox.directory import import_sandbox_directory

    pairs = list(zip(instances, payers, strict=True))
    listed = pairs[1 : 1 + _DIRECTORY_LISTED] if found else []
    if listed:
        bases = {payer["slug"]: instance.base_url for instance, payer in listed}
        import_sandbox_directory(data_dir, bases, client_id)
        out.print(
            f"{', '.join(bases)}: imported from the sandbox's directory bundle and approved "
            "as an operator would (payerbridge partners import / approve)"
        )
    platform = build_platform(load_settings(data_dir=data_dir))
    try:
        for index, (instance, payer) in enumerate(pairs):
            if found and index == 0:
                location = f"{instance.base_url}/.well-known/davinci-configuration"
                access = PartnerAccess(PartnerAuth.SMART, client_id)
                asked = DiscoverPartner(
                    "sandbox", location, id=payer["slug"], name=payer["name"], access=access
                )
                discover_partner(asked, platform.units.partners())
                out.print(f"{payer['slug']}: found by its HRex .well-known alone ({location})")
            elif (instance, payer) not in listed:
                partner = Partner(
                    payer["slug"],
                    payer["name"],
                    payer["npi"],
                    f"{instance.base_url}/fhir",
                    client_id=client_id,
                )
                store_partner(StorePartner(partner, "sandbox"), platform.units.partners())
    finally:
        platform.close()


_CONSOLE_CLIENT = "sandbox-console"
# The plan's own systems reading the records it received: its own NPI, no consent needed.
_READER_CLIENT, _READER_SCOPE = "sandbox-plan-systems", "system/*.rs"


def _console_token(
    data_dir: Path, port: int, org: tuple[str, str], client: str = _CONSOLE_CLIENT, scope: str = ""
) -> str:
    """A token of a client of the plan's own organization (by default for its own API,
    the exchanges), as ``payerbridge token issue`` makes."""
    from payerbridge.bootstrap import build_platform, utcnow
    from payerbridge.config import load_settings
    from payerbridge.security.model import EXCHANGES_SCOPE
    from payerbridge.types import ClientId

    scope = scope or EXCHANGES_SCOPE
    register_client(data_dir, client, org, scope, our_key_set(data_dir))
    platform = build_platform(load_settings(data_dir=data_dir, port=port))
    try:
        grant = platform.tokens.issue(ClientId(client), scope, now=utcnow(), actor="sandbox")
    finally:
        platform.close()
    return grant.access_token


def _records_read(platform: Instance, token: str, patient_id: str) -> int:
    """How many resources the member's ``$everything`` gives the plan's own reader, every
    page followed (our transmitter Provenance of each page not counted)."""
    headers = {"Authorization": f"Bearer {token}"}
    count = 0
    with httpx.Client(base_url=platform.base_url, timeout=30, headers=headers) as client:
        url: str | None = f"/fhir/Patient/{patient_id}/$everything"
        while url is not None:
            response = client.get(url)
            if response.status_code != 200:
                raise RuntimeError(f"$everything refused: {response.status_code}")
            page = response.json()
            count += sum(1 for e in page.get("entry", []) if e["search"]["mode"] == "match")
            url = next((x["url"] for x in page["link"] if x["relation"] == "next"), None)
    return count


def _console_logins(data_dir: Path, accounts: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """A console account per (name, role), each with a password made now (an account from
    an earlier run gets a new one: passwords are kept only as hashes)."""
    from payerbridge.bootstrap import build_platform
    from payerbridge.config import load_settings
    from payerbridge.security.model import Role
    from payerbridge.security.operator_accounts import (
        AddOperator,
        ReplacePassword,
        add_operator,
        set_operator_password,
    )

    logins = []
    platform = build_platform(load_settings(data_dir=data_dir))
    try:
        for name, role in accounts:
            password = secrets.token_urlsafe(15)
            uow = platform.units.operators()
            if uow.accounts.get(name) is None:
                add_operator(AddOperator(name, Role(role), password, "sandbox"), uow)
            else:
                set_operator_password(ReplacePassword(name, password, "sandbox"), uow)
            logins.append((name, password))
    finally:
        platform.close()
    return logins


def _run_sample_exchanges(
    platform: Instance, requests: list[dict[str, Any]], token: str
) -> list[dict[str, Any]]:
    """Submit every request at once, then follow each to where it stops."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=platform.base_url, timeout=30, headers=headers) as client:
        locations = []
        for request in requests:
            response = client.post(
                "/exchanges", json=request, headers={"Idempotency-Key": str(uuid.uuid4())}
            )
            if response.status_code != 202:
                raise RuntimeError(
                    f"exchange refused: {response.status_code} {response.text[:300]}"
                )
            locations.append(response.headers["location"])
        deadline = time.monotonic() + 120
        while True:
            exchanges: list[dict[str, Any]] = [client.get(at).json() for at in locations]
            if all(_settled(e, deadline) for e in exchanges) or time.monotonic() > deadline:
                return exchanges
            time.sleep(0.2)


def _deliveries_ended(
    platform: Instance, exchanges: list[dict[str, Any]], token: str
) -> list[dict[str, Any]]:
    """The exchanges again once the delivery of each that stored data has ended (at
    most half a minute)."""
    headers = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + 30
    with httpx.Client(base_url=platform.base_url, timeout=30, headers=headers) as client:
        while True:
            exchanges = [client.get(f"/exchanges/{e['id']}").json() for e in exchanges]
            pending = [
                e
                for e in exchanges
                if e["state"] in ("completed", "partial", "conflict")
                and not any(d["state"] in _DELIVERY_ENDS for d in e.get("delivery") or [])
            ]
            if not pending or time.monotonic() > deadline:
                return exchanges
            time.sleep(0.3)


_DELIVERY_ENDS = ("delivered", "refused", "failed")


def _settled(exchange: dict[str, Any], deadline: float) -> bool:
    """Stopped, or waiting for a maintenance window that outlasts the demo's patience."""
    if exchange["state"] in _TERMINAL:
        return True
    wait = (exchange.get("route") or {}).get("wait")
    if not wait or exchange["state"] != "route_selected":
        return False
    left = (datetime.fromisoformat(wait["until"]) - datetime.now(UTC)).total_seconds()
    return left > deadline - time.monotonic()


def _print_route(exchange: dict[str, Any], label: str) -> None:
    """The route decision of an exchange, as an operator reads it."""
    route = exchange.get("route") or {}
    out.print(f"[bold]{exchange['old_payer']}[/bold] ({label}): {exchange['state']}")
    out.print(
        f"  route: $member-match as {route.get('request_shape')}, member found by "
        f"{route.get('find_member')}, data by {route.get('data')}"
    )
    if route.get("wait"):
        out.print(f"  waited: {route['wait']['reason']}")
    for rejected in route.get("rejected") or []:
        out.print(f"  not chosen: {rejected['option']}: {rejected['reason']}")


def _print_exchange(exchange: dict[str, Any]) -> None:
    table = Table("seq", "from", "to", "at", "reason", title=f"Exchange {exchange['id']}")
    for step in exchange["history"]:
        table.add_row(
            str(step["seq"]), step["from"] or "", step["to"], step["at"], step["reason_code"] or ""
        )
    out.print(table)


def demo(
    data_dir: DataDir = Path("var"),
    port: Annotated[int, typer.Option(help="Port of the platform (the new payer).")] = 8080,
    base_port: Annotated[int, typer.Option(help="Port of the first sandbox partner.")] = 8101,
    members: Annotated[int, typer.Option(help="Members per sandbox payer.")] = 200,
    seed: Annotated[int, typer.Option(help="Generator seed.")] = 42,
    window_seconds: Annotated[
        float,
        typer.Option(
            help="A maintenance window starting now at the partner that announces them, "
            "so its sample exchange shows the wait (0: none)."
        ),
    ] = 5,
    weekly_maintenance: Annotated[
        bool,
        typer.Option(help="Register that partner's weekly window too (Sun 02:00-04:00, New York)."),
    ] = True,
) -> None:
    """Start the platform with three sandbox partners that speak different HRex/PDex
    versions (one announces maintenance windows) and two whose history comes from a
    plan's own systems (X12 and CSV files; a FHIR server asked live), send one exchange
    to each and show the route decided for each, its completeness and the mappings its
    data came through. Ctrl-C or SIGTERM stops every process it started."""
    from payerbridge_tools.cli.sandbox_provider import print_provider_run, run_provider_access
    from payerbridge_tools.cli.sandbox_sources import (
        SOURCE_PARTNER_LABELS,
        exchange_sources,
        print_completeness,
        print_destination,
        start_destination,
        start_source_partners,
    )

    _require_free_ports(port, base_port)
    # SIGTERM as Ctrl-C: the instances run in sessions of their own, so only we stop them.
    signal.signal(signal.SIGTERM, _interrupt)
    network = _ensure_network(data_dir, members, seed, None)
    platform_env = {
        "PAYERBRIDGE_ORG_NAME": network["platform"]["name"],
        "PAYERBRIDGE_ORG_NPI": network["platform"]["npi"],
    }
    us = (network["platform"]["name"], network["platform"]["npi"])
    write_environment(data_dir, us, port)
    instances: list[Instance] = []
    try:
        _start_partners(data_dir, network, base_port, us, instances)
        partners = list(instances)
        sources = start_source_partners(
            data_dir, network, base_port + SANDBOX_PARTNERS, us, instances
        )
        destination = start_destination(
            data_dir, base_port + SANDBOX_PARTNERS + SOURCE_PORTS - 1, instances
        )
        platform_env["PAYERBRIDGE_SOURCES_FILE"] = str(destination)
        platform = spawn("platform", data_dir, port, platform_env)
        instances.append(platform)
        wait_healthy(instances)
        _register_partners_locally(
            data_dir, sources.partners, network, us[1], payers=sources.payers
        )
        switchers = orjson.loads((_network_dir(data_dir) / "switchers.json").read_bytes())
        token = _console_token(data_dir, port, us)
        # Last before the exchanges: the short maintenance window starts when it is set.
        _register_partners_locally(
            data_dir,
            partners,
            network,
            us[1],
            window_seconds=window_seconds,
            weekly=weekly_maintenance,
        )
        # One member moving from each partner.
        requests = [
            next(s["request"] for s in switchers if s["request"]["old_payer"] == payer["slug"])
            for payer in network["payers"]
        ] + sources.requests
        exchanges = _run_sample_exchanges(platform, requests, token)
        exchanges = _deliveries_ended(platform, exchanges, token)
        # After the exchanges: the short maintenance window is timed. An operator runs the
        # platform; identity review cases (demographics) are a reviewer's to open.
        login, reviewer = _console_logins(
            data_dir, [("sandbox-operator", "operator"), ("sandbox-reviewer", "reviewer")]
        )
        reader = _console_token(data_dir, port, us, _READER_CLIENT, _READER_SCOPE)
        read = {
            e["id"]: _records_read(platform, reader, e["imported_patient_id"])
            for e in exchanges
            if e.get("imported_patient_id")
        }
        provider = run_provider_access(partners[0], our_key_set(data_dir))
    except BaseException:
        stop(instances)
        raise
    _print_exchange(exchanges[0])
    labels = [profile_of(i).label for i in range(len(partners))] + list(SOURCE_PARTNER_LABELS)
    for exchange, label in zip(exchanges, labels, strict=True):
        _print_route(exchange, label)
        print_completeness(exchange, exchange_sources(data_dir, exchange))
    done = [e for e in exchanges if e["state"] == "completed"]
    out.print(
        f"exchanges completed: [bold]{len(done)} of {len(exchanges)}[/bold], "
        f"{sum(e.get('resource_count') or 0 for e in done)} resources stored"
    )
    print_destination(next(i for i in instances if i.name == "plan-fhir"), exchanges)
    print_provider_run(provider, out)
    out.print("where to look:")
    for exchange in exchanges:
        out.print(f"  exchange:     {platform.base_url}/exchanges/{exchange['id']}")
        if exchange.get("imported_patient_id"):
            out.print(
                f"  member data:  {platform.base_url}/fhir/Patient/"
                f"{exchange['imported_patient_id']}/$everything ({read[exchange['id']]} "
                f"records, read by the plan's own {_READER_CLIENT})"
            )
    out.print(
        f"  platform API: {platform.base_url}/openapi.json, with an operator token "
        f"(log {data_dir}/server.log)"
    )
    out.print(
        f"  a token:      payerbridge token issue --data-dir {data_dir} --client "
        f"{_CONSOLE_CLIENT} --scope payerbridge/exchanges"
    )
    out.print(
        f"  to read them: payerbridge token issue --data-dir {data_dir} --client "
        f"{_READER_CLIENT} --scope {_READER_SCOPE} (the plan's own NPI: no consent asked)"
    )
    out.print(f"  the console:  {platform.base_url}/console/")
    out.print(
        f"    sign in as  {login[0]} / {login[1]} (role operator; more accounts: "
        f"payerbridge operators add NAME --role viewer --data-dir {data_dir})"
    )
    out.print(
        f"    or as       {reviewer[0]} / {reviewer[1]} (role reviewer: the identity review queue)"
    )
    for instance in instances[:-1]:
        if instance.name == "plan-fhir":
            continue  # printed with what arrived there
        what = "its FHIR server" if instance.name == "fhir-source" else "partner"
        out.print(f"  {what} {instance.name}: {instance.base_url}/fhir/metadata")
    waiting = [
        e
        for e in exchanges
        if e["state"] == "route_selected" and (e.get("route") or {}).get("wait")
    ]
    if waiting:
        out.print(f"{len(waiting)} exchange(s) wait for a maintenance window; see them above")
    out.print(
        f"  break one:    payerbridge sandbox partner stop {partners[1].name} --data-dir "
        f"{data_dir} (then start; the others keep serving)"
    )
    out.print("serving; Ctrl-C to stop")
    _serve_until_interrupted(instances, data_dir)


@sandbox_app.command("fhir-source")
def fhir_source(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8190,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    members: Annotated[int, typer.Option(min=1, help="Members it holds.")] = 50,
    seed: Annotated[int, typer.Option(help="Seed: same seed and date, same resources.")] = 42,
    as_of: AsOf = None,
    payer: Annotated[
        str, typer.Option(help="Whose population it serves: this old payer of the network.")
    ] = "payer-a",
    network_payers: Annotated[
        int, typer.Option(min=1, max=26, help="Old payers in that network (sandbox generate).")
    ] = 1,
    client_id: Annotated[
        str | None, typer.Option(help="The SMART client it accepts (with --jwks-file).")
    ] = None,
    jwks_file: Annotated[
        Path | None, typer.Option(help="The client's public JWK Set (JSON); none: no token asked.")
    ] = None,
    export: Annotated[
        bool, typer.Option("--export/--no-export", help="Offer Patient/$export.")
    ] = True,
    last_updated: Annotated[
        bool, typer.Option("--last-updated/--no-last-updated", help="Offer _lastUpdated.")
    ] = True,
    token_seconds: Annotated[int, typer.Option(help="Lifetime of its access tokens.")] = 300,
    export_retry_after: Annotated[
        int, typer.Option(help="Seconds its export status asks a client to wait.")
    ] = 1,
    mode: Annotated[
        str, typer.Option(help="Start misbehaving: normal, down, slow, fail-page, bad-page.")
    ] = "normal",
    delay: Annotated[float, typer.Option(help="slow: seconds added to each request.")] = 0.0,
) -> None:
    """Serve a plan's FHIR R4 server with quirks (local lab codes, other date forms,
    missing elements), SMART Backend Services and Patient $export: a live source to read.
    POST /_control {"mode": "slow", "delay": 5} changes how it misbehaves."""
    import uvicorn

    from payerbridge_tools.population import build_network
    from payerbridge_tools.sandbox.fhir_source import FhirSourceOptions, build_app
    from payerbridge_tools.sandbox.fhir_source_state import Control

    slugs = [p.slug for p in build_network(network_payers).payers]
    if payer not in slugs:
        err.print(f"[red]error:[/red] --payer: {payer} is not one of {', '.join(slugs)}")
        raise typer.Exit(2)
    if (client_id is None) != (jwks_file is None):
        err.print("[red]error:[/red] --client-id and --jwks-file go together")
        raise typer.Exit(2)
    control = Control()
    problem = control.set({"mode": mode, "delay": delay})
    if problem:
        err.print(f"[red]error:[/red] --mode: {problem}")
        raise typer.Exit(2)
    clients = {}
    if client_id is not None and jwks_file is not None:
        clients[client_id] = dict(orjson.loads(jwks_file.read_bytes()))
    options = FhirSourceOptions(
        members=members,
        seed=seed,
        as_of=date.fromisoformat(as_of) if as_of else date.today(),
        payer=slugs.index(payer),
        payers=network_payers,
        clients=clients,
        token_seconds=token_seconds,
        export=export,
        last_updated=last_updated,
        export_retry_after=export_retry_after,
        control=control,
    )
    app = build_app(options)
    err.print(f"FHIR source with quirks: http://{host}:{port}/fhir ({members} members)")
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
