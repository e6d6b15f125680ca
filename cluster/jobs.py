"""Jobs on a Ray cluster through the Ray Jobs API: submit (the code travels as the job's working
directory, the dependencies through its runtime environment), follow the logs, status, stop.

The address is the cluster's dashboard (``http://head:8265``); ``RAY_ADDRESS`` is used when none
is given, as by ``ray job submit``.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import CitystreamError

PROJECT = Path(__file__).resolve().parent.parent  # the checkout: pyproject.toml, engine/, actors/ ...
DEFAULT_ADDRESS = "http://127.0.0.1:8265"
# Never shipped with the code (besides what .gitignore leaves out, which Ray honours too).
EXCLUDES = [".git", ".venv", "var", "benchmarks/results", "benchmarks/peers/.venvs", "benchmarks/peers/.data", "**/__pycache__"]
# A stopped job gets SIGINT, as Ctrl-C on `citystream run`: it takes a savepoint (with
# checkpoints) or drains, within the wait; then Ray kills it.
STOP_WAIT_S = 120
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}
HOME = "~/citystream"  # on each node
AGENT_WAIT_S = 60.0  # for the job agents of a cluster that has just started


class JobsError(CitystreamError):
    """The Jobs API refused or could not be reached; the message says which and why."""


@dataclass(frozen=True)
class JobInfo:
    submission_id: str
    status: str
    entrypoint: str
    message: str
    start_time: float | None  # seconds since the epoch
    end_time: float | None


def address_of(address: str | None) -> str:
    """The dashboard address: the one given, else $RAY_ADDRESS, else the local one."""
    chosen = address or os.environ.get("RAY_ADDRESS") or DEFAULT_ADDRESS
    if chosen == "auto" or chosen.startswith("ray://"):
        raise JobsError(f"'{chosen}' is not an HTTP address; the Jobs API is on the dashboard, such as http://head:8265")
    return chosen if "://" in chosen else f"http://{chosen}"


def pinned_requirements(project: Path = PROJECT) -> list[str]:
    """The project's dependencies at the versions of constraints.txt, Ray left out (the
    cluster's own Ray runs the job; its version must be the one the code was tested with)."""
    dependencies = tomllib.loads((project / "pyproject.toml").read_text())["project"]["dependencies"]
    pins: dict[str, str] = {}
    constraints = project / "constraints.txt"
    if constraints.exists():
        for line in constraints.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if "==" in line:
                name, version = line.split("==", 1)
                pins[canonicalize_name(name.split("[", 1)[0])] = version.strip()
    requirements = []
    for text in dependencies:
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", text)
        if match is None:
            raise JobsError(f"pyproject.toml: cannot read the dependency {text!r}")
        name = canonicalize_name(match.group(1))
        if name == "ray":
            continue
        pin = pins.get(name)
        requirements.append(f"{match.group(1)}=={pin}" if pin else text)
    return requirements


def canonicalize_name(name: str) -> str:
    """A distribution's name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_env(working_dir: Path, *, pip: bool, home: str = HOME, env_vars: dict[str, str] | None = None) -> dict[str, Any]:
    """The job's runtime environment: the code as its working directory; with ``pip`` the
    dependencies are installed on each node (without: the nodes' image already has them).
    ``home``: where the relative paths of the config (incident logs, local checkpoints) are
    on the nodes ($CITYSTREAM_HOME): not the working directory, which Ray deletes."""
    env: dict[str, Any] = {
        "working_dir": str(working_dir),
        "excludes": list(EXCLUDES),
        "env_vars": {
            "CITYSTREAM_HOME": home,
            "PYTHONUNBUFFERED": "1",
            "RAY_JOB_STOP_SIGNAL": "SIGINT",
            "RAY_JOB_STOP_WAIT_TIME_S": str(STOP_WAIT_S),
            **(env_vars or {}),
        },
    }
    if pip:
        env["pip"] = {"packages": pinned_requirements(working_dir), "pip_check": False}
    return env


def in_working_dir(path: Path, working_dir: Path, what: str) -> str:
    """``path`` relative to the working directory (the job sees the files that travel with it)."""
    try:
        relative = path.resolve().relative_to(working_dir.resolve())
    except ValueError:
        raise JobsError(
            f"the {what} {path} is outside the job's working directory {working_dir}: only files in it reach "
            "the cluster (move it there, or pass --working-dir)"
        ) from None
    left_out = [e for e in EXCLUDES if "*" not in e and (relative == Path(e) or Path(e) in relative.parents)]
    if left_out:
        raise JobsError(f"the {what} {path} is under {left_out[0]}/, which does not travel with the job")
    return str(relative)


def _client(address: str | None) -> Any:
    from ray.job_submission import JobSubmissionClient

    url = address_of(address)
    try:
        return JobSubmissionClient(url)
    except (ConnectionError, RuntimeError) as exc:
        raise JobsError(
            f"no Ray Jobs API at {url} (it is on the dashboard's port, 8265 by default, not Ray's own 6379): {exc}"
        ) from None


def submit(
    address: str | None,
    entrypoint: Sequence[str],
    env: dict[str, Any],
    *,
    submission_id: str | None = None,
    metadata: dict[str, str] | None = None,
) -> str:
    """Submits the job; returns its submission id."""
    import logging
    import shlex

    client = _client(address)
    # Ray logs a line per file it leaves out of the package; what it uploads is enough.
    for name in ("ray._private.runtime_env.packaging", "ray._private.runtime_env.working_dir", "ray.dashboard.modules"):
        logging.getLogger(name).setLevel(logging.WARNING)
    deadline = time.monotonic() + AGENT_WAIT_S
    while True:
        try:
            return str(
                client.submit_job(
                    entrypoint=shlex.join(entrypoint), runtime_env=env, submission_id=submission_id, metadata=metadata
                )
            )
        except RuntimeError as exc:
            # A cluster that has just started answers before its job agents are up.
            if "No available agent" in str(exc) and time.monotonic() < deadline:
                time.sleep(1.0)
                continue
            raise JobsError(f"the cluster refused the job: {exc}") from None


def info(address: str | None, submission_id: str) -> JobInfo:
    client = _client(address)
    try:
        details = client.get_job_info(submission_id)
    except RuntimeError as exc:
        raise JobsError(f"no job '{submission_id}' at {address_of(address)}: {exc}") from None
    return _info(details)


def jobs(address: str | None) -> list[JobInfo]:
    """Every job the cluster knows, the newest first."""
    try:
        listed = _client(address).list_jobs()
    except RuntimeError as exc:
        raise JobsError(f"could not list the jobs at {address_of(address)}: {exc}") from None
    found = [_info(d) for d in listed if d.submission_id]
    return sorted(found, key=lambda j: j.start_time or 0.0, reverse=True)


def _info(details: Any) -> JobInfo:
    status = getattr(details.status, "value", str(details.status))
    to_s = lambda ms: ms / 1000.0 if ms else None
    return JobInfo(
        details.submission_id or details.job_id or "",
        str(status),
        details.entrypoint,
        details.message or "",
        to_s(details.start_time),
        to_s(details.end_time),
    )


def stop(address: str | None, submission_id: str, *, wait_s: float = STOP_WAIT_S + 30) -> JobInfo:
    """Asks the job to stop (SIGINT: a savepoint or a drain) and waits until it has ended."""
    client = _client(address)
    try:
        client.stop_job(submission_id)
    except RuntimeError as exc:
        raise JobsError(f"could not stop job '{submission_id}': {exc}") from None
    return wait(address, submission_id, wait_s)


def wait(address: str | None, submission_id: str, timeout_s: float) -> JobInfo:
    deadline = time.monotonic() + timeout_s
    while True:
        current = info(address, submission_id)
        if current.status in TERMINAL:
            return current
        if time.monotonic() > deadline:
            raise JobsError(f"job '{submission_id}' is still {current.status} after {timeout_s:g} s")
        time.sleep(0.5)


def logs(address: str | None, submission_id: str) -> str:
    """The job's logs so far."""
    try:
        return str(_client(address).get_job_logs(submission_id))
    except RuntimeError as exc:
        raise JobsError(f"no logs of job '{submission_id}' at {address_of(address)}: {exc}") from None


def follow(address: str | None, submission_id: str, write: Callable[[str], None]) -> JobInfo:
    """Writes the job's logs as they come until it ends; returns how it ended."""
    client = _client(address)

    async def tail() -> None:
        async for lines in client.tail_job_logs(submission_id):
            write(lines)

    try:
        asyncio.run(tail())
    except (RuntimeError, OSError) as exc:
        raise JobsError(f"lost the logs of job '{submission_id}': {exc}") from None
    return wait(address, submission_id, 60)
