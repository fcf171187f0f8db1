"""``payerbridge bench``: benchmarks that print a table and write a report under docs/benchmarks."""

import typer

bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks (reports in docs/benchmarks/).")
