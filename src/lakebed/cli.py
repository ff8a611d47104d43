"""The ``lakebed`` command: one entry point for every stage of the platform."""

from __future__ import annotations

import json
import time
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.table import Table

from lakebed.config import Settings, flatten
from lakebed.console import (
    answer_panel,
    build_table,
    console,
    errors,
    flow_progress,
    index_progress,
    index_table,
    ingest_table,
    layers_table,
    metrics_table,
    publish_table,
    quarantine_table,
    rag_eval_table,
    replay_table,
    stream_progress,
    training_progress,
    versions_table,
    world_table,
)
from lakebed.lake.pipeline import LakehouseReport
from lakebed.world.generate import Generated, generate_world
from lakebed.world.spec import WorldSpec

if TYPE_CHECKING:
    from lakebed.fraud.train import TrainingReport
    from lakebed.rag.service import RagService
    from lakebed.serve.engine import SqlEngine
    from lakebed.services import (
        KafkaCluster,
        PostgresServer,
        RedisServer,
        SeaweedfsServer,
        TrinoServer,
        WeaviateServer,
    )

app = typer.Typer(
    help="Lakebed: an open data & AI platform for card payments, laptop to cluster.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Inspect the resolved configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")
models_app = typer.Typer(
    help="The fraud model registry: list the versions (no command), promote the champion."
)
app.add_typer(models_app, name="models")
rag_app = typer.Typer(help="The RAG service's evaluation and maintenance.", no_args_is_help=True)
app.add_typer(rag_app, name="rag")


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


def run_generate(settings: Settings, chunk_days: int, force: bool) -> Generated:
    started = time.perf_counter()
    with flow_progress(settings.world.n_days) as progress:
        try:
            generated = generate_world(
                settings.world,
                settings.data_home,
                chunk_days=chunk_days,
                force=force,
                on_progress=progress.generate,
            )
        except (ValueError, OSError) as error:
            fail(str(error))
        if generated.reused:  # no day was generated: show the world as complete
            progress.generate(settings.world.n_days, generated.summary.transactions)
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
    generated = run_generate(settings, chunk_days, force)
    console.print(world_table(generated))
    console.print(f"landing files in [bold]{generated.data_home / 'landing'}[/]")
    if (warning := _future_world_warning(spec, date.today())) is not None:
        console.print(f"[yellow]{warning}[/]", highlight=False)


def _future_world_warning(spec: WorldSpec, today: date) -> str | None:
    """A world that runs past today can be generated and built into the lake, but the
    stream engine takes a transaction dated more than an hour after its message was sent
    for an error (a dead letter): replaying those days would score nothing. Said at once,
    not discovered as a dead-letter topic full of valid events."""
    from lakebed.stream.events import MAX_AHEAD_S

    if spec.last_day <= today:
        return None
    return (
        f"note: this world runs until {spec.last_day}, after today; `lakebed stream` sends "
        f"its transactions dated more than {MAX_AHEAD_S // 3_600} h ahead of when they are "
        "sent to the dead-letter topic, so replay a world that ends by today"
    )


def _parse_date(text: str | None, option: str = "--start-date") -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        fail(f"{option} must be YYYY-MM-DD (got {text!r})")


@app.command()
def ingest(
    data_home: Annotated[Path | None, typer.Option(help="Data home to ingest.")] = None,
) -> None:
    """Ingest new landing files into bronze Iceberg tables (idempotent, one commit per batch)."""
    from lakebed.lake.catalog import open_catalog
    from lakebed.lake.pipeline import ingest_stage

    settings = load_settings(data_home=data_home)
    with flow_progress() as progress:
        report = ingest_stage(settings, open_catalog(settings), on_progress=progress.ingest)
    console.print(ingest_table(report))
    if report.refused:
        fail("landing files refused:\n  " + "\n  ".join(report.refused), code=1)


@app.command()
def transform(
    data_home: Annotated[Path | None, typer.Option(help="Data home to build.")] = None,
) -> None:
    """Build silver and gold with dbt (tests included) and publish them as Iceberg tables."""
    from lakebed.lake.catalog import open_catalog
    from lakebed.lake.pipeline import build_stage, publish_stage

    settings = load_settings(data_home=data_home)
    catalog = open_catalog(settings)
    with console.status("dbt build ..."):
        try:
            result = build_stage(settings, catalog)
        except RuntimeError as error:
            fail(str(error), code=1)
    console.print(build_table(result))
    with console.status("publishing to Iceberg ..."):
        console.print(publish_table(publish_stage(settings, catalog)))


@app.command()
def run(
    data_home: Annotated[Path | None, typer.Option(help="Data home to work in.")] = None,
    generate_world: Annotated[
        bool, typer.Option("--generate/--no-generate", help="Generate the world first.")
    ] = True,
) -> None:
    """Run the lakehouse flow (Prefect): generate, ingest, dbt build, publish; then report."""
    settings = load_settings(data_home=data_home)
    report = _run_flow(settings, generate_world)
    _print_lakehouse(report)


def _run_flow(settings: Settings, generate_world: bool) -> LakehouseReport:
    from lakebed.flows.environment import prepare_prefect

    prepare_prefect(settings)
    from lakebed.flows import lakehouse

    started = time.perf_counter()
    with flow_progress(settings.world.n_days) as progress:
        try:
            report = lakehouse.run(
                settings,
                generate_world=generate_world,
                on_generate=progress.generate,
                on_ingest=progress.ingest,
            )
        except lakehouse.RefusedFilesError as error:
            fail(
                f"{error}\nThe landing area holds files of another world than the one in "
                "bronze: use a fresh data home (or delete its lakehouse/ folder) to start over.",
                code=1,
            )
        except Exception as error:  # the flow already logged the details
            fail(f"the lakehouse flow failed: {type(error).__name__}: {error}", code=1)
    console.log(f"lakehouse flow finished in {time.perf_counter() - started:.1f} s")
    return report


def _print_lakehouse(report: LakehouseReport) -> None:
    console.print(ingest_table(report.ingest))
    if report.skipped:
        console.print(f"[yellow]dbt build skipped:[/] {report.skipped}")
    if report.build:
        console.print(build_table(report.build))
    if report.published:
        console.print(publish_table(report.published))
    console.print(layers_table(report))
    console.print(quarantine_table(report))


@app.command()
def sql(
    statement: Annotated[str, typer.Argument(help="One SELECT (or WITH ... SELECT) statement.")],
    output: Annotated[str, typer.Option("--format", "-f", help="table, csv or json.")] = "table",
    data_home: Annotated[Path | None, typer.Option(help="Data home to query.")] = None,
) -> None:
    """Query silver and gold, read-only (one SELECT; no writes, files or settings)."""
    if output not in ("table", "csv", "json"):
        fail(f"--format must be table, csv or json (got {output!r})")
    from lakebed.serve.engine import open_engine

    try:
        engine = open_engine(load_settings(data_home=data_home))
    except (NotImplementedError, OSError, ValueError) as error:
        fail(f"cannot open the SQL engine: {error}", code=1)
    try:
        _print_query(engine, statement, output)
    finally:
        engine.close()


def _print_query(engine: SqlEngine, statement: str, output: str) -> None:
    from lakebed.serve.engine import QueryFailed, to_csv, to_json
    from lakebed.serve.guard import QueryRefused

    try:
        result = engine.query(statement)
    except QueryRefused as error:
        fail(f"refused: {error}")
    except QueryFailed as error:
        fail(str(error), code=1)
    if output == "csv":
        console.out(to_csv(result), end="")
    elif output == "json":
        console.out(to_json(result))
    else:
        table = Table(caption=_caption(result.row_count, result.truncated, result.elapsed_seconds))
        for column, kind in zip(result.columns, result.types, strict=True):
            table.add_column(f"{column}\n[dim]{kind.lower()}", overflow="fold")
        for row in result.rows:
            table.add_row(*("∅" if value is None else str(value) for value in row))
        console.print(table)


def _caption(rows: int, truncated: bool, seconds: float) -> str:
    more = " (truncated: raise serve.max_rows for more)" if truncated else ""
    return f"{rows:,} rows{more} in {seconds * 1000:.0f} ms"


@app.command()
def train(
    data_home: Annotated[Path | None, typer.Option(help="Data home to train from.")] = None,
    train_start: Annotated[
        str | None,
        typer.Option(help="First training day, YYYY-MM-DD (default: fraud.train_start)."),
    ] = None,
    model: Annotated[
        list[str] | None, typer.Option(help="Train only this model (repeatable).")
    ] = None,
    promote_best: Annotated[
        bool, typer.Option(help="Make the best new version the champion.")
    ] = False,
) -> None:
    """Train the fraud models on gold features (the handbook's protocol), evaluate, register."""
    from lakebed.fraud.models import MODEL_NAMES

    settings = _train_settings(data_home, train_start)
    names = model or list(MODEL_NAMES)
    unknown = [name for name in names if name not in MODEL_NAMES]
    if unknown:
        fail(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODEL_NAMES)}")
    report = _train(settings, names)
    if promote_best:
        _promote(settings, report.best.version)


def _train_settings(data_home: Path | None, train_start: str | None) -> Settings:
    settings = load_settings(data_home=data_home)
    if train_start is not None:
        start = _parse_date(train_start, "--train-start")
        fraud = settings.fraud.model_copy(update={"train_start": start})
        settings = settings.model_copy(update={"fraud": fraud})
    return settings


def _train(settings: Settings, names: list[str]) -> TrainingReport:
    from lakebed.fraud.dataset import NoTrainingDataError
    from lakebed.fraud.train import train as train_models

    with training_progress(len(names)) as on_model:
        try:
            report = train_models(settings, names, on_model=on_model)
        except (NoTrainingDataError, ValueError) as error:
            fail(str(error))
    console.print(metrics_table(report))
    console.print(f"curves: {', '.join(str(path) for path in report.plots)}")
    return report


def _promote(settings: Settings, version: str | None) -> None:
    from lakebed.fraud.registry import Registry, UnknownVersionError

    if version is None:
        fail("nothing to promote")
    try:
        promoted = Registry(settings).promote(version)
    except UnknownVersionError as error:
        fail(str(error))
    console.print(
        f"champion: version [bold]{promoted.version}[/] ({promoted.model}) · "
        f"AP {promoted.metrics.get('average_precision', float('nan')):.3f}"
    )
    if settings.profile == "cluster":
        _announce_champion(settings, promoted.version)


def _announce_champion(settings: Settings, version: str) -> None:
    """Tell running stream workers (they follow the compacted ``fraud.champion`` topic)."""
    from lakebed.stream.engine import publish_champion
    from lakebed.stream.log import LogError, open_log

    log = open_log(settings)
    try:
        publish_champion(log, version)
        console.print(f"stream workers will score with version {version} within seconds")
    except LogError as error:
        errors.print(
            f"the stream workers were not told (Kafka: {error}); they will load "
            "the registry's champion when they start"
        )
    finally:
        log.close()


@models_app.callback(invoke_without_command=True)
def models(
    context: typer.Context,
    data_home: Annotated[Path | None, typer.Option(help="Data home of the registry.")] = None,
) -> None:
    """List the registered fraud model versions and which one is the champion."""
    if context.invoked_subcommand is not None:
        return
    from lakebed.fraud.registry import Registry

    settings = load_settings(data_home=data_home)
    versions = Registry(settings).versions()
    if not versions:
        console.print("no model registered yet: run [bold]lakebed train[/]")
        return
    console.print(versions_table(versions))


@models_app.command("promote")
def models_promote(
    version: Annotated[str | None, typer.Argument(help="The version to make champion.")] = None,
    best: Annotated[
        bool, typer.Option(help="Promote the version with the best Average Precision.")
    ] = False,
    data_home: Annotated[Path | None, typer.Option(help="Data home of the registry.")] = None,
) -> None:
    """Make one version the champion that scoring uses."""
    from lakebed.fraud.registry import Registry

    settings = load_settings(data_home=data_home)
    if (version is None) == (not best):
        fail("give a VERSION or --best (not both)")
    if best:
        versions = Registry(settings).versions()
        if not versions:
            fail("no model registered yet: run `lakebed train`")
        version = max(
            versions, key=lambda v: (v.metrics.get("average_precision", -1.0), int(v.version))
        ).version
    _promote(settings, version)


@app.command()
def serve(
    data_home: Annotated[Path | None, typer.Option(help="Data home to serve.")] = None,
) -> None:
    """Start the API (POST /sql, POST /score, GET /tables, GET /health) on serve.host:port."""
    from lakebed.serve.api import run_server

    settings = load_settings(data_home=data_home)
    console.print(
        f"serving on http://{settings.serve.host}:{settings.serve.port} "
        "(docs at /docs; Ctrl+C stops)"
    )
    run_server(settings)


@app.command()
def dashboard(
    background: Annotated[
        bool, typer.Option(help="Keep running after this command returns; stop with --stop.")
    ] = False,
    stop: Annotated[bool, typer.Option(help="Stop a dashboard started with --background.")] = (
        False
    ),
    port: Annotated[int | None, typer.Option(help="Port of the dashboard.")] = None,
    data_home: Annotated[Path | None, typer.Option(help="Data home to show.")] = None,
) -> None:
    """The web dashboard (Streamlit) over the API: lakehouse, fraud model, live alerts,
    ask the documents. Starts the API too when nothing answers at serve.host:serve.port."""
    from lakebed.dashboard.launcher import DashboardError, start, stop_background

    overrides: dict[str, Any] = {"data_home": data_home}
    if port is not None:
        overrides["dashboard"] = {"port": port}
    settings = load_settings(**overrides)
    if stop:
        stopped = stop_background(settings)
        console.print("dashboard stopped" if stopped else "no background dashboard was running")
        return
    if background:
        stop_background(settings)  # a rerun replaces the last one (and its API)
    try:
        with console.status("starting the dashboard"):
            board = start(settings, background=background)
    except DashboardError as error:
        fail(str(error))
    api = "started" if board.api_started else "already running"
    if settings.dashboard.api_url and not board.api_answering():
        api = "[red]not answering[/]: the pages will say so until it does"
    console.print(f"dashboard: [bold]{board.url}[/] (API {board.api_url}, {api})")
    if background:
        console.print("runs in the background; stop it with [bold]lakebed dashboard --stop[/]")
        return
    console.print("Ctrl+C stops it")
    try:
        board.processes[-1].wait()
    except KeyboardInterrupt:
        pass
    finally:
        board.stop()


services_app = typer.Typer(
    help="Start, stop and check the native services of the cluster profile.",
    no_args_is_help=True,
)
app.add_typer(services_app, name="services")
SERVICES = ("kafka", "redis", "weaviate", "postgres", "seaweedfs", "trino")


def _service(
    name: str, settings: Settings, brokers: int
) -> KafkaCluster | RedisServer | WeaviateServer | PostgresServer | SeaweedfsServer | TrinoServer:
    from urllib.parse import urlsplit

    from lakebed.services import KafkaCluster, RedisServer, WeaviateServer, service_home

    if name not in SERVICES:
        fail(f"unknown service {name!r}; choose from {', '.join(SERVICES)}")
    home = service_home(settings, name)
    if name == "kafka":
        port = int(settings.stream.kafka_bootstrap.split(",")[0].rsplit(":", 1)[1])
        return KafkaCluster(home, brokers=brokers, base_port=port)
    if name == "weaviate":
        http_port = urlsplit(settings.rag.weaviate_url).port or 8080
        return WeaviateServer(home, http_port, settings.rag.weaviate_grpc_port)
    if name == "postgres":
        return _postgres(settings, home)
    if name == "seaweedfs":
        return _seaweedfs(settings, home)
    if name == "trino":
        return _trino(settings, home)
    port = urlsplit(settings.stream.redis_url.get_secret_value()).port or 6379
    return RedisServer(home, port=port)


def _postgres(settings: Settings, home: Path) -> PostgresServer:
    """The server that lake.catalog_uri names, when it names a PostgreSQL one."""
    from urllib.parse import unquote, urlsplit

    from lakebed.services import PostgresServer

    catalog = urlsplit(settings.lake.catalog_uri or "")
    if not catalog.scheme.startswith("postgresql"):
        return PostgresServer(home)
    return PostgresServer(
        home,
        port=catalog.port or 15432,
        user=unquote(catalog.username or "lakebed"),
        password=unquote(catalog.password or "lakebed"),
        database=unquote(catalog.path.lstrip("/")) or "lakebed",
    )


def _seaweedfs(settings: Settings, home: Path) -> SeaweedfsServer:
    """The S3 server that lake.s3_endpoint names, with the lake's keys and bucket."""
    from urllib.parse import urlsplit

    from lakebed.services import SeaweedfsServer

    lake = settings.lake
    warehouse = urlsplit(lake.warehouse or "")
    return SeaweedfsServer(
        home,
        s3_port=urlsplit(lake.s3_endpoint or "").port or 19000,
        access_key=lake.s3_access_key or "lakebed",
        secret_key=(
            lake.s3_secret_key.get_secret_value() if lake.s3_secret_key else "lakebed-secret"
        ),
        bucket=warehouse.netloc if warehouse.scheme.startswith("s3") else "lakebed",
    )


def _trino(settings: Settings, home: Path) -> TrinoServer:
    """Trino at serve.trino_url over the lake's catalog and S3 store, serving as
    serve.trino_user."""
    from urllib.parse import urlsplit

    from lakebed.services import TrinoServer

    lake = settings.lake
    # The same derivations as the postgres and seaweedfs services: one set of defaults.
    postgres, s3 = _postgres(settings, home), _seaweedfs(settings, home)
    return TrinoServer(
        home,
        port=urlsplit(settings.serve.trino_url).port or 18090,
        jdbc_url=postgres.jdbc_url,
        jdbc_user=postgres.user,
        jdbc_password=postgres.password,
        warehouse=lake.warehouse or f"s3://{s3.bucket}/warehouse",
        s3_endpoint=lake.s3_endpoint or s3.endpoint,
        s3_region=lake.s3_region,
        s3_path_style=lake.s3_path_style,
        s3_access_key=s3.access_key,
        s3_secret_key=s3.secret_key,
        reader_user=settings.serve.trino_user,
    )


@services_app.command("up")
def services_up(
    names: Annotated[list[str], typer.Argument(help=f"any of {', '.join(SERVICES)}")],
    brokers: Annotated[int, typer.Option(help="Kafka brokers (1, or 3 for a cluster).")] = 1,
    data_home: Annotated[Path | None, typer.Option(help="Data home.")] = None,
) -> None:
    """Fetch (once, cached under ~/.cache/lakebed) and start services on 127.0.0.1."""
    from lakebed.services import ServiceError

    settings = load_settings(data_home=data_home)
    for name in names:
        service = _service(name, settings, brokers)
        try:
            service.up()
        except ServiceError as error:
            fail(str(error), code=1)
        where = _address(service)
        console.print(f"[green]{name} is up[/] on {where} ({service.home})")


@services_app.command("down")
def services_down(
    names: Annotated[list[str], typer.Argument(help=f"any of {', '.join(SERVICES)}")],
    data_home: Annotated[Path | None, typer.Option(help="Data home.")] = None,
) -> None:
    """Stop services (their data stays in the data home)."""
    settings = load_settings(data_home=data_home)
    for name in names:
        _service(name, settings, 1).down()
        console.print(f"{name} is down")


@services_app.command("status")
def services_status(
    data_home: Annotated[Path | None, typer.Option(help="Data home.")] = None,
) -> None:
    """Whether each service answers, and where it listens (or would)."""
    settings = load_settings(data_home=data_home)
    for name in SERVICES:
        service = _service(name, settings, 1)
        state = "[green]up[/]" if service.healthy() else "[red]down[/]"
        console.print(f"{name}: {state} {_address(service)}")


def _address(service: object) -> str:
    """Where clients reach a service: Kafka's bootstrap list, or the others' URL."""
    return str(getattr(service, "bootstrap_servers", None) or getattr(service, "url", ""))


@app.command()
def stream(
    worker: Annotated[str, typer.Option(help="This worker's name in the consumer group.")] = (
        "worker-0"
    ),
    replay: Annotated[
        bool | None,
        typer.Option(
            help="Replay the world's last stream.replay_days days first (the local profile "
            "always does: its log lives in this process)."
        ),
    ] = None,
    rate: Annotated[
        float | None, typer.Option(help="Offered load of the replay, events/s.")
    ] = None,
    idle_exit: Annotated[
        float | None, typer.Option(help="Stop after this many seconds without input.")
    ] = None,
    stats: Annotated[
        Path | None, typer.Option(help="Write the worker's counts and latencies (JSON) here.")
    ] = None,
    data_home: Annotated[Path | None, typer.Option(help="Data home.")] = None,
) -> None:
    """Run the real-time engine: consume transactions, update online features, score with
    the champion, publish scores and alerts. SIGTERM finishes the batch, commits, exits."""
    settings = load_settings(data_home=data_home)
    if replay or (replay is None and settings.profile == "local"):
        _replay(settings, rate or settings.stream.replay_rate)
        return
    _run_worker(settings, worker, idle_exit, stats)


def _replay(settings: Settings, rate: float) -> None:
    from lakebed.fraud.registry import NoChampionError
    from lakebed.lake.catalog import open_catalog
    from lakebed.stream.activity import Activity
    from lakebed.stream.engine import registry_loader
    from lakebed.stream.latency import plot_latencies
    from lakebed.stream.log import open_log
    from lakebed.stream.replay import replay
    from lakebed.stream.store import open_store

    log, store, activity = open_log(settings), open_store(settings), Activity.open(settings)
    try:
        with stream_progress() as on_progress:
            report = replay(
                settings,
                log,
                store,
                open_catalog(settings),
                registry_loader(settings),
                offered_rate=rate,
                on_progress=on_progress,
                activity=activity,
            )
    except NoChampionError as error:
        fail(f"{error}: run `lakebed train --promote-best` first")
    finally:
        activity.close()
        store.close()
        log.close()
    console.print(replay_table(report))
    path = plot_latencies(
        {settings.profile: report.latencies},
        settings.data_home / "stream" / "latency.png",
        f"Stream replay at {rate:,.0f} events/s offered",
    )
    console.print(f"latency histogram: {path}")


def _run_worker(
    settings: Settings, worker: str, idle_exit: float | None, stats_file: Path | None
) -> None:
    import signal
    import threading

    from lakebed.stream.activity import Activity
    from lakebed.stream.engine import StreamEngine, registry_loader
    from lakebed.stream.log import open_log
    from lakebed.stream.store import open_store

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    log, store, activity = open_log(settings), open_store(settings), Activity.open(settings)
    try:
        engine = StreamEngine(
            log, store, registry_loader(settings), settings, worker=worker, activity=activity
        )
        console.print(f"{worker}: scoring with model version {engine.version}", highlight=False)
        stats = engine.run(stop=stop, idle_exit_s=idle_exit)
    finally:
        activity.close()
        store.close()
        log.close()
    if stats_file is not None:
        stats_file.write_text(json.dumps(stats.summary()))
    console.print(
        f"{worker}: {stats.transactions:,} transactions, {stats.alerts:,} alerts, "
        f"{stats.dead_letters:,} dead letters in {stats.batches:,} batches",
        highlight=False,
    )


@app.command("stream-to-lake")
def stream_to_lake(
    available_now: Annotated[
        bool,
        typer.Option(
            "--available-now",
            help="Land what the topic holds now, then exit (a catch-up job). Without it the "
            "job runs on, a micro-batch every --interval seconds.",
        ),
    ] = False,
    interval: Annotated[
        float, typer.Option(min=0.1, help="Seconds between micro-batches when running on.")
    ] = 10.0,
    max_offsets: Annotated[
        int | None, typer.Option(min=1, help="Kafka records per micro-batch at most.")
    ] = None,
    topic: Annotated[
        str | None, typer.Option(help="Kafka topic to land (default: payments.scored).")
    ] = None,
    data_home: Annotated[Path | None, typer.Option(help="Data home.")] = None,
) -> None:
    """Land scored events from Kafka in bronze.scored_events (Iceberg) with Spark Structured
    Streaming, exactly once (cluster profile). Spark's checkpoint lives in
    <data home>/stream/spark-checkpoints. SIGTERM or Ctrl+C lets the micro-batch in hand
    commit, then stops.

    On the local profile the log lives inside `lakebed stream`, which lands its scored
    events itself: this command then exits with status 2."""
    import signal
    import threading

    from lakebed.lake.spark import SparkSetupError
    from lakebed.stream.spark_sink import BatchReport, checkpoint_dir, run
    from lakebed.stream.topics import SCORED

    settings = load_settings(data_home=data_home)
    if settings.profile != "cluster":
        fail(
            "the local profile's log lives inside `lakebed stream`, which lands the scored "
            "events in bronze.scored_events itself; stream-to-lake reads Kafka (set "
            "LAKEBED_PROFILE=cluster)"
        )
    topic = topic or SCORED
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    def report(batch: BatchReport) -> None:
        skipped = f" ({batch.skipped:,} already landed)" if batch.skipped else ""
        console.print(f"{batch.batch_id}: {batch.landed:,} events landed{skipped}", highlight=False)

    where = checkpoint_dir(settings, topic)
    console.print(
        f"landing {topic} in bronze.scored_events (checkpoint {where})",
        highlight=False,
        soft_wrap=True,
    )
    try:
        stats = run(
            settings,
            available_now=available_now,
            topic=topic,
            interval_s=interval,
            max_offsets_per_trigger=max_offsets,
            stop=stop,
            on_batch=report,
        )
    except SparkSetupError as error:
        fail(str(error), code=1)
    ending = "stopped" if stats.stopped else "done"
    console.print(
        f"{ending}: {stats.records:,} events landed in {stats.commits:,} commits "
        f"({stats.skipped:,} already landed)",
        highlight=False,
    )


def _open_rag(settings: Settings) -> RagService:
    from lakebed.rag.service import RagService
    from lakebed.rag.store import StoreError

    try:
        return RagService.open(settings)
    except StoreError as error:
        fail(str(error), code=1)


def _index(service: RagService, batch_documents: int = 16) -> None:
    from lakebed.rag.loaders import LoadError

    try:
        with index_progress() as progress:
            report = service.index(
                batch_documents=batch_documents,
                on_total=progress.total,
                on_progress=progress.advance,
            )
    except LoadError as error:
        fail(str(error), code=1)
    console.print(index_table(report, service.store.count()))
    for doc_id, reason in report.failures:
        errors.print(f"[yellow]skipped[/] {doc_id}: {reason}")


@app.command()
def index(
    corpus: Annotated[
        Path | None, typer.Option(help="Folder of documents (default: the shipped corpus).")
    ] = None,
    data_home: Annotated[Path | None, typer.Option(help="Data home.")] = None,
    batch_documents: Annotated[
        int, typer.Option(help="Documents written per store commit.", min=1)
    ] = 16,
    rebuild: Annotated[
        bool, typer.Option(help="Drop the index and write it again (vectors come from the cache).")
    ] = False,
) -> None:
    """Index the documents for the RAG service: only added or changed ones are embedded,
    deleted ones are removed, and the data catalog is regenerated from dbt."""
    settings = load_settings(data_home=data_home)
    if corpus is not None:
        settings.rag.corpus = corpus
    service = _open_rag(settings)
    try:
        if rebuild:
            service.store.drop()
        _index(service, batch_documents)
    finally:
        service.close()


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question, in plain words.")],
    as_user: Annotated[str, typer.Option("--as", help="Who asks (their groups apply).")],
    mode: Annotated[str, typer.Option(help="Retrieval: hybrid, dense or bm25.")] = "hybrid",
    passages: Annotated[bool, typer.Option(help="Also print the retrieved passages.")] = False,
    under: Annotated[
        str | None, typer.Option(help="Only documents whose path starts with this.")
    ] = None,
    output: Annotated[str, typer.Option(help="table or json")] = "table",
    data_home: Annotated[Path | None, typer.Option(help="Data home.")] = None,
) -> None:
    """Answer a question from the documents the user may read, with numbered citations."""
    from lakebed.rag.answer import GenerationError
    from lakebed.rag.embeddings import ModelError
    from lakebed.rag.store import SEARCH_MODES, Filters, StoreError
    from lakebed.rag.users import UnknownUserError

    if mode not in SEARCH_MODES:
        fail(f"unknown mode {mode!r}; choose from {', '.join(SEARCH_MODES)}")
    settings = load_settings(data_home=data_home)
    service = _open_rag(settings)
    try:
        service.user(as_user)
        if service.store.count() == 0:
            fail("the index is empty: run `lakebed index` first", code=1)
        filters = Filters(path_prefix=under) if under else None
        answer = service.ask(question, as_user, mode, filters)  # type: ignore[arg-type]
    except UnknownUserError as error:
        fail(str(error))
    except (ValueError, GenerationError, StoreError, ModelError) as error:
        fail(str(error), code=1)
    finally:
        service.close()
    if output == "json":
        typer.echo(json.dumps(answer.as_dict(with_passages=passages), indent=2))
    else:
        console.print(answer_panel(answer, passages))


@rag_app.command("eval")
def rag_eval(
    data_home: Annotated[Path | None, typer.Option(help="Data home.")] = None,
    answers: Annotated[bool, typer.Option(help="Also answer and judge the citations.")] = True,
) -> None:
    """Recall@k, MRR and nDCG@10 of BM25, dense and hybrid retrieval on the shipped QA set,
    and the citation precision of answers."""
    from lakebed.rag.evaluation import evaluate, load_questions

    settings = load_settings(data_home=data_home)
    service = _open_rag(settings)
    try:
        _index(service)
        questions = load_questions()
        with console.status(f"evaluating {len(questions)} questions"):
            report = evaluate(service.retriever, service.answerer if answers else None, questions)
    finally:
        service.close()
    console.print(rag_eval_table(report))
    if answers:
        console.print(
            f"answers: {report.answered:.0%} found something; "
            f"citation precision {report.citation_precision:.3f}"
        )


@app.command()
def demo(
    data_home: Annotated[Path | None, typer.Option(help="Where to write.")] = None,
) -> None:
    """The main job: generate the world, build the lakehouse, query gold, train the fraud
    models and promote the best, replay the last week through the stream engine, index the
    documents and answer questions as users with different access."""
    from lakebed.fraud.models import MODEL_NAMES
    from lakebed.serve.demo import EXAMPLE_QUERIES

    settings = load_settings(data_home=data_home)
    console.rule(f"[bold]Lakebed demo[/] · profile {settings.profile}")
    report = _run_flow(settings, generate_world=True)
    _print_lakehouse(report)
    from lakebed.serve.engine import open_engine

    engine = open_engine(settings)
    try:
        for title, statement in EXAMPLE_QUERIES:
            console.rule(f"[bold]{title}")
            console.print(statement.strip(), style="dim", highlight=False)
            _print_query(engine, statement, "table")
    finally:
        engine.close()
    console.rule("[bold]Fraud model")
    from lakebed.fraud.train import trained_on_current_gold

    current = trained_on_current_gold(settings)
    if current:
        console.print(
            "the models were trained on the current gold snapshots with the current "
            "features: nothing to retrain ([bold]lakebed train[/] forces it)"
        )
        console.print(versions_table(current))
    else:
        training = _train(settings, list(MODEL_NAMES))
        _promote(settings, training.best.version)
    console.rule("[bold]Real-time fraud engine")
    _replay(settings, rate=settings.stream.replay_rate)
    console.rule("[bold]Ask the documents (RAG)")
    _demo_rag(settings)
    console.rule("[bold]Dashboard")
    board = _demo_dashboard(settings)
    console.print(
        f"\nOpen [bold]{board}[/] to look at all of it. "
        '[bold]lakebed sql "SELECT ..."[/] queries silver and gold, '
        "[bold]lakebed models[/] shows the registry, "
        '[bold]lakebed ask "..." --as bob[/] asks the documents; the API '
        "(POST /sql, POST /score, POST /ask) serves the dashboard. "
        "[bold]lakebed dashboard --stop[/] stops both."
    )


def _demo_dashboard(settings: Settings) -> str:
    """Start the dashboard and its API in the background (replacing a previous demo's)."""
    from lakebed.dashboard.launcher import DashboardError, start, stop_background

    stop_background(settings)
    try:
        with console.status("starting the dashboard and the API"):
            board = start(settings, background=True)
    except DashboardError as error:
        fail(f"the dashboard did not start: {error}")
    console.print(f"dashboard: [bold]{board.url}[/] (API {board.api_url})")
    return board.url


DEMO_QUESTIONS = (
    ("Above what amount is a large card payment held for manual review?", ("dave", "alice")),
    ("How do I replay a Kafka topic from an earlier offset?", ("bob",)),
    ("What is the capital of Australia?", ("erin",)),
)


def _demo_rag(settings: Settings) -> None:
    """Index the shipped documents, ask as users whose access differs, evaluate retrieval."""
    from lakebed.rag.evaluation import evaluate, load_questions

    service = _open_rag(settings)
    try:
        _index(service)
        for question, users in DEMO_QUESTIONS:
            for user in users:
                groups = ", ".join(service.user(user).groups)
                console.print(f"\n[bold]{user}[/] [dim]({groups})[/] asks:")
                console.print(answer_panel(service.ask(question, user), show_passages=False))
        questions = load_questions()
        with console.status(f"evaluating retrieval on {len(questions)} questions"):
            report = evaluate(service.retriever, service.answerer, questions)
    finally:
        service.close()
    console.print(rag_eval_table(report))
    console.print(
        f"citation precision of the answers: {report.citation_precision:.3f} "
        f"({report.answered:.0%} of the questions answered)"
    )


if __name__ == "__main__":
    app()
