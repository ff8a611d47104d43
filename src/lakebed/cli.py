"""The ``lakebed`` command: one entry point for every stage of the platform."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from lakebed.config import Settings, flatten
from lakebed.world.generate import Generated, generate_world
from lakebed.world.spec import WorldSpec

app = typer.Typer(
    help="Lakebed: an open data & AI platform for card payments, laptop to cluster.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Inspect the resolved configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")

console = Console()
errors = Console(stderr=True)


def fail(message: str, code: int = 2) -> NoReturn:
    errors.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def load_settings(**overrides: Any) -> Settings:
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as error:
        fail(describe(error))


def describe(error: ValidationError) -> str:
    """One readable line per problem, naming the setting and the bad value."""
    lines = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem["loc"]) or "settings"
        message = problem["msg"].removeprefix("Value error, ")
        value = problem.get("input")
        shown = "" if isinstance(value, dict) else f" (got {value!r})"
        lines.append(f"{where}: {message}{shown}")
    return "invalid options:\n  " + "\n  ".join(lines)


@config_app.command("show")
def config_show() -> None:
    """Print every resolved setting, secrets masked."""
    settings = load_settings()
    table = Table(title="Lakebed settings", show_lines=False)
    table.add_column("setting", style="cyan")
    table.add_column("value")
    for key, value in flatten(settings.masked()).items():
        table.add_row(key, str(value))
    console.print(table)


@contextmanager
def day_progress(total_days: int) -> Iterator[Callable[[int, int], None]]:
    columns = (
        TextColumn("[bold]generating world"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("days · {task.fields[transactions]:,} transactions"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("world", total=total_days, transactions=0)

        def update(days: int, transactions: int) -> None:
            progress.update(task, completed=days, transactions=transactions)

        yield update


def print_world(generated: Generated) -> None:
    summary = generated.summary
    table = Table(title="Payments world", show_header=False)
    table.add_column("", style="cyan")
    table.add_column("", justify="right")
    table.add_row("transactions", f"{summary.transactions:,}")
    table.add_row("customers", f"{summary.customers:,}")
    table.add_row("terminals", f"{summary.terminals:,}")
    table.add_row("days", f"{summary.days:,}")
    table.add_row("frauds", f"{summary.frauds:,} ({summary.fraud_rate:.2%})")
    for scenario, count in summary.frauds_by_scenario.items():
        table.add_row(f"  {scenario.replace('_', ' ')}", f"{count:,}")
    table.add_row("chargebacks reported", f"{summary.chargebacks:,}")
    table.add_row("feed lines", f"{summary.transaction_lines:,}")
    for kind, count in summary.dirty_by_kind.items():
        table.add_row(f"  dirty: {kind.replace('_', ' ')}", f"{count:,}")
    table.add_row("transaction files", f"{summary.transaction_files:,}")
    table.add_row("chargeback files", f"{summary.chargeback_files:,}")
    table.add_row("reference files", f"{summary.reference_files:,}")
    table.add_row("bytes written", f"{summary.bytes_written / 1e6:,.1f} MB")
    verb = "reused (same spec)" if generated.reused else "generated"
    table.add_row("time", f"{generated.seconds:.1f} s, {verb}")
    console.print(table)
    console.print(f"landing files in [bold]{generated.data_home / 'landing'}[/]")


def run_generate(settings: Settings, chunk_days: int, force: bool) -> Generated:
    started = time.perf_counter()
    with day_progress(settings.world.n_days) as update:
        try:
            generated = generate_world(
                settings.world,
                settings.data_home,
                chunk_days=chunk_days,
                force=force,
                on_progress=update,
            )
        except (ValueError, OSError) as error:
            fail(str(error))
    if generated.reused:
        update(settings.world.n_days, generated.summary.transactions)
    console.log(f"world ready in {time.perf_counter() - started:.1f} s")
    return generated


@app.command()
def generate(
    customers: Annotated[int | None, typer.Option(help="Number of customers (cards).")] = None,
    terminals: Annotated[int | None, typer.Option(help="Number of terminals.")] = None,
    days: Annotated[int | None, typer.Option(help="Number of days simulated.")] = None,
    start_date: Annotated[
        str | None, typer.Option(help="First day, YYYY-MM-DD (default 2018-04-01).")
    ] = None,
    radius: Annotated[float | None, typer.Option(help="Customer-terminal reach r.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    currencies: Annotated[
        str | None, typer.Option(help="Comma-separated ISO 4217 codes terminals use.")
    ] = None,
    chunk_days: Annotated[int, typer.Option(help="Days generated per vectorised chunk.")] = 8,
    data_home: Annotated[Path | None, typer.Option(help="Where to write.")] = None,
    force: Annotated[bool, typer.Option(help="Regenerate even if the same world exists.")] = False,
) -> None:
    """Generate the payments world: ground truth, raw feed with dirty rows, reference CSVs."""
    base = load_settings(data_home=data_home)
    options = {
        "n_customers": customers,
        "n_terminals": terminals,
        "n_days": days,
        "start_date": _parse_date(start_date),
        "radius": radius,
        "seed": seed,
    }
    world = base.world.model_dump()
    world.update({k: v for k, v in options.items() if v is not None})
    if currencies is not None:
        world["feed"] = {**world["feed"], "currencies": currencies}
    if chunk_days < 1:
        fail(f"--chunk-days must be at least 1 (got {chunk_days})")
    try:
        spec = WorldSpec.model_validate(world)
    except ValidationError as error:
        fail(describe(error))
    settings = base.model_copy(update={"world": spec})
    print_world(run_generate(settings, chunk_days, force))


def _parse_date(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        fail(f"--start-date must be YYYY-MM-DD (got {text!r})")


@app.command()
def demo(
    data_home: Annotated[Path | None, typer.Option(help="Where to write.")] = None,
) -> None:
    """Run the main job on the local profile: generate the default world and summarise it."""
    settings = load_settings(data_home=data_home)
    console.rule(f"[bold]Lakebed demo[/] · profile {settings.profile}")
    print_world(run_generate(settings, chunk_days=8, force=False))


if __name__ == "__main__":
    app()
