"""``payerbridge identity …``: rebuild the member index, train the match model, match a
file of $member-match requests in bulk.

These commands print ids and counts only, never a name, a birth date or a card number.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import orjson
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from payerbridge import errors
from payerbridge.cli.options import DataDir
from payerbridge.processes import fork_workers
from payerbridge.types import ClientId

if TYPE_CHECKING:
    from payerbridge.bootstrap import Platform
    from payerbridge.identity.batch import BatchMatcher

__all__ = ["identity_app"]

identity_app = typer.Typer(
    no_args_is_help=True, help="The identity engine: member index, match model, bulk matching."
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

# Who the decisions of a bulk match file are recorded for (and audited as).
MATCH_CLIENT = ClientId("cli:identity-match")


@identity_app.command("reindex")
def identity_reindex(data_dir: DataDir = None) -> None:
    """Rebuild the matching index from the member data (after a secret or spec change)."""
    from payerbridge.bootstrap import build_platform
    from payerbridge.cli.console import settings_for
    from payerbridge.identity.indexing import reindex_all

    platform = build_platform(settings_for(data_dir))
    try:
        with Progress(
            TextColumn("indexing members"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=True,
        ) as progress:
            task = progress.add_task("reindex", total=None)
            uow = platform.units.identity()
            with uow:
                indexed = reindex_all(
                    uow.identity, uow, at=uow.now, progress=lambda n: progress.advance(task, n)
                )
    finally:
        platform.close()
    out.print(f"{indexed} members indexed")


@identity_app.command("train")
def identity_train(
    data_dir: DataDir = None,
    sample: Annotated[
        int, typer.Option(min=2, help="Train on at most this many members (a random sample).")
    ] = 200_000,  # identity.service.DEFAULT_TRAINING_SAMPLE, not imported at CLI start-up
    seed: Annotated[int, typer.Option(help="Seed of the sample and of the random pairs.")] = 42,
    activate: Annotated[
        bool,
        typer.Option("--activate/--no-activate", help="Make the new model the one matching uses."),
    ] = True,
) -> None:
    """Train the match model on the indexed members and store it.

    u comes from random pairs of members, m by EM over the members that share a
    blocking key. Prints the model version and a summary of the training."""
    from payerbridge.bootstrap import build_platform
    from payerbridge.cli.console import fail, settings_for
    from payerbridge.identity.service import TrainModel, train_on_members

    platform = build_platform(settings_for(data_dir))
    try:
        with err.status(f"training on up to {sample:,} indexed members"):
            fitted = train_on_members(TrainModel(seed, sample, activate), platform.units.identity())
    except errors.PayerBridgeError as exc:
        raise fail(exc) from exc
    finally:
        platform.close()
    summary = fitted.summary
    table = Table("", "", title=f"model {fitted.model.version}", show_header=False)
    for name, value in summary.items():
        table.add_row(name.replace("_", " "), str(value))
    out.print(table)
    state = "active" if activate else "stored, not active"
    out.print(f"model {fitted.model.version} {state}")


@identity_app.command("match")
def identity_match(
    requests: Annotated[
        Path,
        typer.Option(
            "--requests",
            help="$member-match Parameters, one per line (NDJSON), each with an id.",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    out_path: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Where to write one answer per request line (NDJSON).",
            dir_okay=False,
            writable=True,
        ),
    ],
    policy: Annotated[
        Literal["bulk", "single_exchange"], typer.Option(help="Match thresholds to apply.")
    ] = "bulk",
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Processes that decide (default: one per available CPU)."),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Match a file of $member-match requests against the members.

    Every decision is stored with its evidence (a review opens a case). Each answer
    line gives the request id, the outcome (match, review, nomatch, multiple or
    invalid), the member (for a match), the score and the decision id, in input order.
    Worker processes decide; this one stores each chunk of decisions in one transaction
    before writing their answers."""
    from payerbridge.bootstrap import build_platform, new_id, utcnow
    from payerbridge.cli.console import settings_for
    from payerbridge.identity.batch import OUTCOMES, BatchMatcher
    from payerbridge.identity.matching.decision import BULK, SINGLE_EXCHANGE
    from payerbridge.identity.service import model_for, trained_model

    if not out_path.parent.is_dir():
        raise typer.BadParameter(f"the folder of {out_path} does not exist", param_hint="--out")
    chosen = BULK if policy == "bulk" else SINGLE_EXCHANGE
    platform = build_platform(settings_for(data_dir))
    index = platform.units.identity().identity
    started = time.perf_counter()

    try:
        model = model_for(index)
        if index.member_count() == 0:
            err.print(
                "[yellow]warning:[/yellow] no members are indexed: nothing can match "
                "(payerbridge import, or payerbridge identity reindex)"
            )
        elif trained_model(index) is None:
            err.print(
                "[yellow]note:[/yellow] no model is trained yet: matching with the "
                "untrained prior (payerbridge identity train)"
            )
        matcher = BatchMatcher(index, model, chosen, MATCH_CLIENT, utcnow, new_id)
        counts = _match_file(platform, matcher, requests, out_path, workers or fork_workers())
    finally:
        platform.close()
    seconds = time.perf_counter() - started
    total = sum(counts.values())
    err.print(
        f"{total} request(s) answered in {seconds:.1f}s "
        f"({total / seconds if seconds else 0:.0f}/s, policy {chosen.name}, "
        f"model {model.version}); answers in {out_path}"
    )
    for outcome in OUTCOMES:
        err.print(f"  {outcome:<9}{counts[outcome]:>10}")


def _match_file(
    platform: Platform, matcher: BatchMatcher, requests: Path, out_path: Path, workers: int
) -> Counter[str]:
    """Answer each request line of ``requests`` into ``out_path`` in input order, with a
    progress bar; the outcomes counted."""
    from payerbridge.identity.batch import Workers, match_lines

    counts: Counter[str] = Counter()
    with (
        requests.open("rb") as source,
        out_path.open("wb") as sink,
        Progress(
            TextColumn("matching"),
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=True,
            auto_refresh=False,  # its refresh thread would be running when workers fork
        ) as progress,
    ):
        task = progress.add_task("match", total=requests.stat().st_size)
        for size, answers in match_lines(
            matcher, platform.units.identity(), source, Workers(workers, platform.before_fork)
        ):
            for answer in answers:
                counts[answer["outcome"]] += 1
                sink.write(orjson.dumps(answer) + b"\n")
            progress.update(task, advance=size, refresh=True)
    return counts
