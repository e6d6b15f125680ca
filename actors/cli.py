"""The ``citystream`` command line: run the city job (live view), explain its plan."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
from rich.console import Console
from rich.live import Live

from actors.schemas import INCIDENT
from actors.topology import DEFAULT_CONFIG, City, ConfigError, load_city
from engine import ChannelOptions, CitystreamError, InlineExecutor, JobResult, build_plan
from engine.checkpoint import CheckpointOptions


class _Parser(argparse.ArgumentParser):
    """No abbreviated options (`--conf` for `--config`): a submitted command line is rewritten
    by its options' full names."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="citystream", description="Real-time stream processing for city operations centers.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = commands.add_parser("run", help="run the city job (until Ctrl-C, or --duration)")
    run.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="city topology (TOML)")
    run.add_argument(
        "--mode",
        choices=["live", "replay"],
        default="live",
        help="live: the clock drives the simulated feeds; replay: simulated time from the config's start, as fast as it goes",
    )
    run.add_argument(
        "--duration", type=float, default=None, help="seconds to run (replay: of simulated time); default: until Ctrl-C"
    )
    run.add_argument("--seed", type=int, default=None, help="seed of the simulated feeds (default: the config's)")
    run.add_argument("--executor", choices=["ray", "inline"], default="ray", help="ray: one actor per task (default)")
    run.add_argument("--address", default=None, help="Ray cluster address (default: a local Ray instance)")
    run.add_argument("--credits", type=int, default=8, help="frames in flight per channel")
    run.add_argument("--batch-rows", type=int, default=10_000, help="rows per frame")
    run.add_argument("--linger-ms", type=float, default=5.0, help="longest wait of a frame that is not full")
    run.add_argument("--no-view", action="store_true", help="no live terminal view; print a summary at the end")
    run.add_argument(
        "--restore",
        action="store_true",
        help="resume from the last complete checkpoint (a stopped job's savepoint) under the config's [checkpoints] directory",
    )
    run.add_argument(
        "--checkpoint-interval", type=float, default=None, help="seconds between checkpoints (default: the config's; 0: none)"
    )
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=SET_HELP)
    explain = commands.add_parser("explain", help="print the physical plan of the city job, or of a SQL file")
    explain.add_argument("file", type=Path, nargs="?", default=None, help="a .sql file (default: the city job)")
    explain.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    explain.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=SET_HELP)
    sql = commands.add_parser("sql", help="run a SQL file against the city's streams (or data files), printing results")
    sql.add_argument("file", type=Path, help="the .sql file")
    sql.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="city topology (TOML) of the 'city' connector")
    sql.add_argument("--executor", choices=["inline", "ray"], default="inline")
    sql.add_argument("--mode", choices=["replay", "live"], default="replay", help="of the city's simulated feeds")
    sql.add_argument("--duration", type=float, default=120.0, help="seconds of simulated time of a replay (default 120)")
    sql.add_argument("--seed", type=int, default=None)
    sql.add_argument("--parallelism", type=int, default=1)
    sql.add_argument(
        "--data", action="append", default=[], metavar="TABLE=FILE", help="read TABLE from FILE (csv, parquet, json, arrow)"
    )
    sql.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=SET_HELP)
    console_cmd = commands.add_parser("console", help="a dispatch console: print a gateway's incidents as they come")
    console_cmd.add_argument("--gateway", required=True, help="host:port of a police gateway")
    console_cmd.add_argument("--token", required=True, help="the console's bearer token")
    console_cmd.add_argument("--district", action="append", default=[], help="only these districts (repeatable)")
    console_cmd.add_argument("--kind", action="append", default=[], help="only these kinds (repeatable)")
    console_cmd.add_argument("--min-severity", type=int, default=0)
    console_cmd.add_argument("--ca-cert", default=None, help="PEM of the CA of the gateway's certificate (default: plaintext)")
    console_cmd.add_argument("--ack-as", default=None, help="acknowledge every incident, as this officer")
    console_cmd.add_argument("--state", type=Path, default=None, help="file keeping the last sequence seen (resume across runs)")
    console_cmd.add_argument("--resume-after", type=int, default=None, help="start after this sequence number")
    loadtest = commands.add_parser(
        "loadtest", help="drive the city pipeline on Ray at a target rate (open loop) and measure latency, throughput, memory"
    )
    loadtest.add_argument("--rate", type=float, default=10_000.0, help="detections/s offered (default 10,000)")
    loadtest.add_argument("--duration", type=float, default=30.0, help="seconds at that rate (default 30)")
    loadtest.add_argument("--out", type=Path, default=Path("loadtest-results"), help="results folder (JSON, Markdown, PNG)")
    loadtest.add_argument("--ramp", default="", help="rates to step through, comma-separated (e.g. 10000,100000,1000000)")
    loadtest.add_argument("--step", type=float, default=10.0, help="seconds of each ramp step (default 10)")
    loadtest.add_argument("--p99-bound", type=float, default=50.0, help="a ramp step passes with p99 under this many ms")
    loadtest.add_argument("--districts", type=int, default=3)
    loadtest.add_argument("--cameras", type=int, default=300)
    loadtest.add_argument("--stations", type=int, default=6)
    loadtest.add_argument("--gateways", type=int, default=1)
    loadtest.add_argument("--consoles", type=int, default=2)
    loadtest.add_argument("--camera-actors", type=int, default=1, help="camera source actors (default 1)")
    loadtest.add_argument("--station-actors", type=int, default=1)
    loadtest.add_argument("--intrusions", type=float, default=20.0, help="intrusions per second (each raises an incident)")
    loadtest.add_argument("--linger-ms", type=float, default=5.0, help="longest wait of a frame that is not full (default 5)")
    loadtest.add_argument(
        "--source-interval-ms", type=float, default=5.0, help="a source caught up with its schedule emits this often (default 5)"
    )
    loadtest.add_argument("--credits", type=int, default=8)
    loadtest.add_argument("--batch-rows", type=int, default=10_000)
    loadtest.add_argument("--warmup", type=float, default=2.0, help="seconds left out of the 'after warm-up' figures")
    loadtest.add_argument("--checkpoint-interval", type=float, default=0.0, help="seconds between checkpoints (default 0: none)")
    loadtest.add_argument("--address", default=None, help="Ray cluster address (default: a local Ray instance)")
    loadtest.add_argument("--no-progress", action="store_true", help="no progress bar")
    _cluster_commands(commands)
    return parser


SET_HELP = "change a key of the config (repeatable): checkpoints.directory=s3://bucket/city, gateways.0.port=50061"
CLUSTER_HELP = "the Ray cluster's dashboard (default: $RAY_ADDRESS, else http://127.0.0.1:8265)"


def _cluster_commands(commands: Any) -> None:
    submit = commands.add_parser(
        "submit",
        help="submit the city job (or a SQL file) to a Ray cluster through the Jobs API, then follow its logs",
        usage="citystream submit [options] [-- run [RUN OPTIONS] | -- sql FILE [SQL OPTIONS]]",
        description="Submits a citystream command as a Ray job (after --: `run ...`, the default, or `sql FILE "
        "...`, checked here first): the code travels as the job's working directory, the dependencies through "
        "its runtime environment; the config and the SQL file must be in the working directory.",
    )
    submit.add_argument("--address", default=None, help=CLUSTER_HELP)
    submit.add_argument("--working-dir", type=Path, default=None, help="the code that travels (default: this checkout)")
    submit.add_argument(
        "--deps",
        choices=["pip", "image"],
        default="pip",
        help="pip: the runtime environment installs the pinned dependencies on each node (default); "
        "image: the nodes already have them",
    )
    submit.add_argument(
        "--home",
        default=None,
        help="on the nodes, where the config's relative paths (incident logs, local checkpoints) go (default ~/citystream)",
    )
    submit.add_argument("--job-id", default=None, help="the submission id (default: one Ray picks)")
    submit.add_argument("--no-wait", action="store_true", help="return once submitted, without following the logs")
    status = commands.add_parser("status", help="the state of a job on a Ray cluster (or of every job)")
    status.add_argument("job_id", nargs="?", default=None)
    status.add_argument("--address", default=None, help=CLUSTER_HELP)
    stop = commands.add_parser(
        "stop", help="stop a job on a Ray cluster (the city job: a savepoint with checkpoints, else a drain)"
    )
    stop.add_argument("job_id")
    stop.add_argument("--address", default=None, help=CLUSTER_HELP)
    logs = commands.add_parser("logs", help="the logs of a job on a Ray cluster")
    logs.add_argument("job_id")
    logs.add_argument("--address", default=None, help=CLUSTER_HELP)
    logs.add_argument("--follow", action="store_true", help="until the job ends")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["submit"]:
        own, job = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
        return _submit(parser, parser.parse_args(own), job or ["run"])
    args = parser.parse_args(argv)
    if args.command in ("status", "stop", "logs"):
        return _job_command(args)
    if args.command == "console":
        return _console(args)
    if args.command == "loadtest":
        return _loadtest(args)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Into a log (a cluster job's, a pipe), a line stays one line: no wrapping at 80 columns.
    console = Console(soft_wrap=not sys.stdout.isatty())

    from actors.city import checkpoint_options, city_flow

    try:
        city = load_city(args.config, getattr(args, "set", ()))
    except ConfigError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    if args.command in ("run", "sql"):
        # Ctrl-C, and a stop by a supervisor (a Ray job's stop sends SIGINT, as submit asks;
        # others send SIGTERM), end the job cleanly, even in a process started with SIGINT
        # ignored (as a shell without job control starts background commands).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _interrupt)
    if args.command == "sql" or (args.command == "explain" and args.file is not None):
        return _sql(args, city, console)
    if args.command == "explain":
        print(build_plan(city_flow(city)).explain())
        return 0
    if args.mode == "live" and args.executor == "inline":
        console.print("[red]error:[/red] a live run needs the Ray executor (the inline one runs to the end of its sources)")
        return 2
    import secrets

    screen_key = secrets.token_hex(16)  # this driver posts the pipeline's health to the screen with it
    duration = args.duration if args.mode == "replay" else None
    flow = city_flow(city, mode=args.mode, duration_s=duration, seed=args.seed, screen_key=screen_key)
    started = time.monotonic()
    try:
        checkpoints = checkpoint_options(city, interval_s=args.checkpoint_interval, restore=args.restore)
        if checkpoints is not None:
            where = "restoring from the last checkpoint under" if args.restore else "checkpoints every"
            detail = checkpoints.directory if args.restore else f"{checkpoints.interval_s:g} s to {checkpoints.directory}"
            console.print(f"{where} {detail}", highlight=False)
        if args.executor == "inline":
            result = InlineExecutor(checkpoints=checkpoints).run(flow)
        else:
            result = _run_on_ray(flow, city, args, console, checkpoints, screen_key)
    except CitystreamError as exc:
        console.print(f"[red]job failed:[/red] {exc}")
        return 1
    except KeyboardInterrupt:
        console.print("interrupted before the job had started; its actors are stopped")
        return 130
    print_summary(console, city, result, time.monotonic() - started, args.executor)
    return 0


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _submit(parser: argparse.ArgumentParser, args: argparse.Namespace, job: list[str]) -> int:
    """``citystream submit [options] -- run ...``: the command after ``--`` is checked here (its
    options, the config with its overrides), then submitted as a Ray job."""
    import shlex

    from cluster import jobs

    console = Console()
    if job[0] not in ("run", "sql"):
        parser.error(f"submit runs `run ...` or `sql FILE ...` on the cluster (after --), not {job[0]!r}")
    if job[0] == "sql" and not any(w == "--executor" or w.startswith("--executor=") for w in job):
        job = [*job, "--executor", "ray"]  # `sql` runs inline unless told: on a cluster, on Ray
    job_args = parser.parse_args(job)
    if getattr(job_args, "address", None):
        parser.error("--address of `run` or `sql`: on the cluster the job connects to its own Ray (give submit --address)")
    if job_args.executor == "inline":
        parser.error("a job on a cluster runs on the Ray executor, not --executor inline")
    working_dir = (args.working_dir or jobs.PROJECT).resolve()
    try:
        if not ((working_dir / "actors" / "cli.py").exists() and (working_dir / "pyproject.toml").exists()):
            raise jobs.JobsError(
                f"the working directory {working_dir} has no citystream code (actors/cli.py, pyproject.toml): "
                "give --working-dir a checkout of it"
            )
        city = load_city(job_args.config, job_args.set)  # wrong keys fail here, not on the cluster
        entrypoint = ["python", "-m", "actors.cli", *_job_command_line(job, job_args, working_dir)]
        env = jobs.runtime_env(working_dir, pip=args.deps == "pip", home=args.home or jobs.HOME)
        for warning in _cluster_warnings(city, job_args):
            console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
        submission = jobs.submit(args.address, entrypoint, env, submission_id=args.job_id, metadata={"citystream": job[0]})
    except (ConfigError, jobs.JobsError) as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        return 2 if isinstance(exc, ConfigError) else 1
    where = jobs.address_of(args.address)
    console.print(f"job [bold]{submission}[/bold] submitted to {where}: {shlex.join(entrypoint)}", highlight=False)
    console.print(
        f"  citystream status {submission} | citystream logs {submission} --follow | citystream stop {submission}"
        + (f"  (with --address {args.address})" if args.address else ""),
        highlight=False,
    )
    if args.no_wait:
        return 0
    try:
        final = jobs.follow(args.address, submission, lambda text: print(text, end="", flush=True))
    except KeyboardInterrupt:
        console.print(f"\nno longer following; the job goes on (citystream stop {submission})", highlight=False)
        return 130
    except jobs.JobsError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        return 1
    ended = f"job {submission}: {final.status}" + (f" ({final.message})" if final.message else "")
    console.print(ended, highlight=False, markup=False)
    return 0 if final.status in ("SUCCEEDED", "STOPPED") else 1


def _job_command_line(job: list[str], job_args: argparse.Namespace, working_dir: Path) -> list[str]:
    """The command the job runs, its files (config, SQL file, --data files) as paths in the
    working directory (where the job runs); a file outside it is an error."""
    from cluster import jobs

    out = [job[0]]
    if job[0] == "sql":
        out.append(jobs.in_working_dir(job_args.file, working_dir, "SQL file"))
    tokens = iter(job[1:])
    for token in tokens:
        option, eq, value = token.partition("=")
        if option in ("--config", "--data") and token.startswith("--"):
            value = value if eq else next(tokens)
            if option == "--data":
                table, _, path = value.partition("=")
                out += ["--data", f"{table}={jobs.in_working_dir(Path(path), working_dir, f'data file of {table}')}"]
            continue
        if job[0] == "sql" and not token.startswith("-") and Path(token) == job_args.file:
            continue
        out.append(token)
    out += ["--config", jobs.in_working_dir(job_args.config, working_dir, "config")]
    if job[0] == "run":
        out.append("--no-view")
    return out


def _cluster_warnings(city: City, job_args: argparse.Namespace) -> list[str]:
    warnings = []
    if city.dispatch.host in ("127.0.0.1", "localhost", "::1"):
        warnings.append(
            f"the gateways listen on {city.dispatch.host}: consoles on other machines cannot reach them "
            "(--set dispatch.host=0.0.0.0)"
        )
    interval = getattr(job_args, "checkpoint_interval", None)
    interval = city.checkpoints.interval_s if interval is None else interval
    if job_args.command == "run" and interval > 0 and "://" not in city.checkpoints.directory:
        warnings.append(
            "checkpoints go to a local directory on each node's own disk: after a lost node the job "
            "cannot restore (--set checkpoints.directory=s3://bucket/prefix)"
        )
    return warnings


def _job_command(args: argparse.Namespace) -> int:
    """``citystream status|stop|logs``: a job on a Ray cluster, through the Jobs API."""
    from cluster import jobs

    console = Console()
    try:
        if args.command == "logs":
            if args.follow:
                final = jobs.follow(args.address, args.job_id, lambda text: print(text, end="", flush=True))
                console.print(f"job {args.job_id}: {final.status}", highlight=False)
            else:
                print(jobs.logs(args.address, args.job_id), end="")
            return 0
        if args.command == "stop":
            console.print(f"stopping job {args.job_id} (the city job: a savepoint with checkpoints, else a drain) ...")
            final = jobs.stop(args.address, args.job_id)
            ended = f"job {args.job_id}: {final.status}" + (f" ({final.message})" if final.message else "")
            console.print(ended, highlight=False, markup=False)
            return 0 if final.status == "STOPPED" or final.status == "SUCCEEDED" else 1
        found = [jobs.info(args.address, args.job_id)] if args.job_id else jobs.jobs(args.address)
    except jobs.JobsError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        return 1
    except KeyboardInterrupt:
        console.print("no longer following; the job goes on", highlight=False)
        return 130
    if not found:
        console.print(f"no jobs at {jobs.address_of(args.address)}", highlight=False)
    stamp = lambda t: time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"
    for job in found:
        console.print(
            f"{job.submission_id:<28} {job.status:<10} started {stamp(job.start_time)}  ended {stamp(job.end_time)}",
            highlight=False,
        )
        console.print(f"  {job.entrypoint}" + (f"\n  {job.message}" if job.message else ""), highlight=False, markup=False)
    return 0


def _sql(args: argparse.Namespace, city: City, console: Console) -> int:
    from actors.city_sql import run_sql_file
    from operators.sql import SqlError

    files = {}
    for item in getattr(args, "data", []):
        table, sep, path = item.partition("=")
        if not sep:
            console.print(f"[red]error:[/red] --data takes TABLE=FILE, not '{item}'")
            return 2
        files[table] = Path(path)
    try:
        return run_sql_file(
            args.file,
            city,
            executor=getattr(args, "executor", "inline"),
            mode=getattr(args, "mode", "replay"),
            duration_s=getattr(args, "duration", 120.0),
            seed=getattr(args, "seed", None),
            files=files,
            parallelism=getattr(args, "parallelism", 1),
            explain_only=args.command == "explain",
        )
    except FileNotFoundError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    except SqlError as exc:
        print(exc, file=sys.stderr)
        return 2
    except CitystreamError as exc:
        console.print(f"[red]job failed:[/red] {exc}")
        return 1
    except KeyboardInterrupt:
        console.print("stopped: the SQL job ended with its actors (the results above are what it had)")
        return 130


def _console(args: argparse.Namespace) -> int:
    import asyncio

    import grpc

    from actors.console import ConsoleClient, run_console

    resume = args.resume_after
    if resume is None and args.state is not None and args.state.exists():
        resume = int(args.state.read_text().strip() or 0)
    client = ConsoleClient(
        args.gateway, args.token, args.ca_cert, args.district, args.kind, args.min_severity, resume_after=resume or 0
    )
    try:
        asyncio.run(run_console(client, args.ack_as, args.state, lambda line: print(line, flush=True)))
    except KeyboardInterrupt:
        print(f"stopped after sequence {client.resume_after}")
    except grpc.aio.AioRpcError as exc:
        print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    return 0


def _loadtest(args: argparse.Namespace) -> int:
    from benchmarks.loadtest.harness import Options, run
    from benchmarks.loadtest.workload import Scale

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    console = Console()
    try:
        ramp = tuple(float(x) for x in args.ramp.split(",") if x.strip())
    except ValueError:
        console.print(f"[red]error:[/red] --ramp takes rates separated by commas, not {args.ramp!r}")
        return 2
    try:
        scale = Scale(
            districts=args.districts, cameras=args.cameras, stations=args.stations, gateways=args.gateways,
            consoles=args.consoles, camera_tasks=args.camera_actors, station_tasks=args.station_actors,
        )  # fmt: skip
        options = Options(
            rate=args.rate, duration_s=args.duration, out=args.out, ramp=ramp, step_s=args.step, p99_bound_ms=args.p99_bound,
            scale=scale, intrusions_per_s=args.intrusions, linger_ms=args.linger_ms, credits=args.credits,
            batch_rows=args.batch_rows, warmup_s=args.warmup, address=args.address, source_interval_ms=args.source_interval_ms,
            checkpoint_interval_s=args.checkpoint_interval, progress=not args.no_progress,
        )  # fmt: skip
        report, paths = run(options, say=lambda text: console.print(text, highlight=False))
    except CitystreamError as exc:
        console.print(f"[red]load test failed:[/red] {exc}")
        return 1
    from benchmarks.loadtest.report import markdown

    summary = markdown(report).split("Per second", 1)[0]
    console.print(summary, highlight=False, markup=False)
    console.print("results: " + ", ".join(str(p) for p in paths), highlight=False)
    return 0 if report["delivery"]["every_console_has_all_it_is_entitled_to"] else 1


def _run_on_ray(
    flow: Any, city: City, args: argparse.Namespace, console: Console, checkpoints: CheckpointOptions | None, screen_key: str = ""
) -> JobResult:
    from actors.live import LiveView
    from cluster.placement import decide, live_nodes
    from engine import RayExecutor

    channels = ChannelOptions(credits=args.credits, batch_rows=args.batch_rows, linger_ms=args.linger_ms)
    with RayExecutor(args.address, channels=channels, checkpoints=checkpoints) as executor:
        nodes = live_nodes()
        decision = decide(placement_policy(city, live=args.mode == "live"), nodes)
        executor.colocation, executor.placement = decision.colocation, decision.placement
        for stale in Path(city.dispatch.log_dir).glob("*.address"):  # from an earlier run
            stale.unlink()
        job = executor.submit(flow)
        view = LiveView(city)
        started = time.monotonic()
        show = not args.no_view and console.is_terminal
        live = Live(console=console, refresh_per_second=2) if show else contextlib.nullcontext()
        try:
            console.print(f"job [bold]{flow.name}[/bold]: {len(job.tasks)} actors in Ray namespace {job.namespace}")
            addresses = {n.node_id: n.address for n in nodes}
            _print_placement(console, decision.notes, job.tasks, addresses)
            screen = _print_endpoints(console, city, job.tasks, addresses)
            health = _Health(screen, screen_key)
            with live:
                while True:
                    with contextlib.suppress(TimeoutError):
                        return job.wait(timeout=1.0)
                    health.post(job)
                    elapsed = time.monotonic() - started
                    if args.mode == "live" and args.duration is not None and elapsed >= args.duration:
                        return _stop(job, console, checkpoints is not None, timeout=120)
                    if show:
                        metrics = job.metrics()
                        view.update(metrics)
                        live.update(view.render(metrics, gateway_incidents(job.peek()), elapsed))  # type: ignore[union-attr]
        except KeyboardInterrupt:
            try:
                return _stop(job, console, checkpoints is not None, timeout=60)
            except BaseException:
                job.cancel()
                raise


INGEST_OPERATORS = ("ingest_detections", "ingest_readings")  # of live runs with an ingest port
WEB_OPERATORS = ("screen",)  # the operations screen and the residents' pages


def placement_policy(city: City, live: bool = False) -> Any:
    """The city's ``[placement]`` as a ``cluster.placement.PlacementPolicy``: the district
    actors spread, the simulated cameras and stations next to their district, the city's
    network edge (the gateways, the screen, the ingest services of live runs) on the nodes
    labelled for it."""
    from actors.city import source_districts
    from cluster.placement import PlacementPolicy

    config = city.placement
    edge = ("gateways", *WEB_OPERATORS, *(INGEST_OPERATORS if live and city.dispatch.ingest_port >= 0 else ()))
    return PlacementPolicy(
        spread=None if config.districts == "none" else "districts",
        strategy="spread" if config.districts == "none" else config.districts,
        bundle_cpus=config.district_cpus,
        near=source_districts(city) if config.sources_near_district else {},
        # The gRPC edge of the city (the gateways' dispatch, the ingest services) on the labelled nodes.
        labels={op: config.gateway_resource for op in edge} if config.gateway_resource else {},
        labels_required=config.gateway_nodes == "required",
    )


def _print_placement(console: Console, notes: list[str], tasks: dict[str, dict[str, Any]], addresses: dict[str, str]) -> None:
    """What the placement decided and, with more than one node, which tasks run on which."""
    for note in notes:
        console.print(f"  placement: {note}", highlight=False)
    by_node: dict[str, list[str]] = {}
    for name, info in tasks.items():
        by_node.setdefault(info["node"], []).append(name)
    if len(by_node) > 1:
        for node, names in sorted(by_node.items()):
            console.print(f"  node {addresses.get(node, '?')} ({node[:12]}): {', '.join(names)}", highlight=False)


def _stop(job: Any, console: Console, savepoint: bool, timeout: float) -> JobResult:
    """With checkpoints: a savepoint, then the job ends without draining (``--restore`` goes on
    from there, open windows included); without: the sources end and what is in flight drains."""
    if not savepoint:
        console.print("stopping: sources end, in-flight rows drain ...")
        result: JobResult = job.stop(timeout=timeout)
        return result
    console.print("stopping: taking a savepoint ...")
    checkpoint_id, result = job.stop_with_savepoint(timeout=timeout)
    console.print(f"savepoint {checkpoint_id} written; resume with: citystream run --restore", highlight=False)
    return result


class _Health:
    """Posts the pipeline's health to the operations screen every few seconds: rows per second
    by kind of task, the districts' watermark lag, time waiting for credits, checkpoints."""

    def __init__(self, screen: str, key: str, every_s: float = 2.0) -> None:
        self.url = f"http://{screen}/api/health" if screen else ""
        self.key, self.every_s = key, every_s
        self.last: tuple[float, dict[str, int]] | None = None

    def post(self, job: Any) -> None:
        now = time.monotonic()
        if not self.url or (self.last is not None and now - self.last[0] < self.every_s):
            return
        import json
        import urllib.request

        metrics = job.metrics()
        rows: dict[str, int] = {}
        for name, m in metrics.items():
            kind = name.split("[", 1)[0]
            rows[kind] = rows.get(kind, 0) + m.rows_in
        wall_ms = int(time.time() * 1000)
        body: dict[str, Any] = {
            "rows_per_s": {k: round((n - self.last[1].get(k, 0)) / (now - self.last[0]), 1) for k, n in rows.items()}
            if self.last is not None
            else {},
            "watermark_lag_ms": {n: m.watermark_lag_ms(wall_ms) for n, m in metrics.items() if n.startswith("districts[")},
            "backpressure_s": round(sum(m.backpressure_s for m in metrics.values()), 2),
        }
        stats = job.status().get("checkpoints")
        if stats is not None:
            body["checkpoints"] = {"completed": stats.completed, "last_duration_ms": stats.last_duration_ms}
        self.last = (now, rows)
        request = urllib.request.Request(
            self.url, data=json.dumps(body).encode(), headers={"X-Citystream-Key": self.key, "Content-Type": "application/json"}
        )
        try:
            urllib.request.urlopen(request, timeout=2).close()
        except OSError as exc:
            logging.getLogger(__name__).debug("health to the screen: %s", exc)


def _print_endpoints(
    console: Console, city: City, tasks: dict[str, dict[str, Any]], addresses: dict[str, str], wait_s: float = 15.0
) -> str:
    """The addresses the gateways (and ingest services) serve on, once they have started: as
    they wrote them to the log directory when they run on this node, else the node's address
    and the configured port."""
    import ray

    here = ray.get_runtime_context().get_node_id()
    log_dir = Path(city.dispatch.log_dir)
    local = [g.id for i, g in enumerate(city.gateways) if tasks.get(f"gateways[{i}]", {}).get("node", here) == here]
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and not all((log_dir / f"{n}.address").exists() for n in local):
        time.sleep(0.2)
    for i, gateway in enumerate(city.gateways):
        path = log_dir / f"{gateway.id}.address"
        if gateway.id in local and path.exists():
            console.print(f"  {gateway.id}: {path.read_text()}", highlight=False)
        elif gateway.id not in local:
            node = tasks[f"gateways[{i}]"]["node"]
            port = gateway.port or "(a free port: see the gateway's log)"
            console.print(f"  {gateway.id}: {addresses.get(node, node)}:{port} (node {node[:12]})", highlight=False)
    for name in ("ingest-detections", "ingest-readings"):
        path = log_dir / f"{name}.address"
        if path.exists():
            console.print(f"  {name}: {path.read_text()}", highlight=False)
    screen = ""
    node = tasks.get("screen[0]", {}).get("node")
    if node == here:
        path = log_dir / "screen.address"
        while time.monotonic() < deadline and not path.exists():
            time.sleep(0.2)
        screen = path.read_text() if path.exists() else ""
    elif node is not None and city.screen.port:
        screen = f"{addresses.get(node, node)}:{city.screen.port}"
    if screen:
        console.print(f"  operations screen: http://{screen}/?token=<token>", highlight=False)
        console.print(f"  residents' pages: http://{screen}/residents/<district>", highlight=False)
    return screen
    console.print(f"  a console: citystream console --gateway {city.dispatch.host}:<port> --token <token>", highlight=False)


def gateway_incidents(outputs: dict[str, list[Any]]) -> pa.Table:
    tables = [t for t in outputs.get("gateways", []) if isinstance(t, pa.Table)]
    return pa.concat_tables(tables) if tables else INCIDENT.empty_table()


def print_summary(console: Console, city: City, result: JobResult, elapsed: float, executor: str) -> None:
    incidents = gateway_incidents(result.outputs)
    detections = sum(m.rows_in for name, m in result.metrics.items() if name.startswith("cameras["))
    readings = sum(m.rows_in for name, m in result.metrics.items() if name.startswith("stations["))
    console.print(f"\n{detections:,} detections and {readings:,} readings in {elapsed:.1f} s ({executor} executor)")
    by_kind = Counter(incidents.column("kind").to_pylist())
    console.print(f"{incidents.num_rows} incidents: " + ", ".join(f"{k} {n}" for k, n in sorted(by_kind.items())))
    by_gateway = Counter(incidents.column("gateway").to_pylist())
    for gateway in city.gateways:
        console.print(f"  {gateway.id}: {by_gateway.get(gateway.id, 0)}")
    for sink in ("refused_detections", "refused_readings", "late_detections"):
        table = result.table(sink)
        reasons = Counter(table.column("reason").to_pylist()) if "reason" in table.column_names else {}
        detail = f" ({', '.join(f'{r}: {n}' for r, n in reasons.items())})" if reasons else ""
        console.print(f"{sink}: {table.num_rows}{detail}")
    if result.checkpoints is not None:
        stats = result.checkpoints
        console.print(
            f"checkpoints: {stats.completed} complete, {stats.aborted} given up; the last "
            + (f"({stats.last_id}) took {stats.last_duration_ms:.1f} ms, {stats.last_size:,} bytes" if stats.last_id else "-"),
            highlight=False,
        )
    for reason in result.recoveries:
        console.print(f"[yellow]recovered from a failure:[/yellow] {reason}", highlight=False)
    console.print(metrics_table(result), soft_wrap=True, highlight=False)


def metrics_table(result: JobResult) -> str:
    """One line per task: rows in and out, frames, time waiting for credits, latency."""
    lines = [f"\n{'task':<28} {'rows in':>10} {'rows out':>10} {'frames in/out':>14} {'backpressure':>12} {'hop p50/p99 ms':>15}"]
    for name, m in result.metrics.items():
        latency = sorted(m.hop_latency_ms)
        hop = f"{latency[len(latency) // 2]:.2f}/{latency[int(len(latency) * 0.99)]:.2f}" if latency else "-"
        lines.append(
            f"{name:<28} {m.rows_in:>10,} {sum(m.rows_out.values()):>10,} {f'{m.frames_in}/{m.frames_out}':>14}"
            f" {m.backpressure_s:>11.2f}s {hop:>15}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
