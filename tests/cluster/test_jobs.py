"""`citystream submit` checks what it submits before the cluster sees it, and builds the job:
its command line, its working directory and runtime environment. (The submission itself, on
a real cluster: test_cluster_jobs.py.)"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from actors.cli import _job_command_line, build_parser, main
from cluster import jobs

ROOT = Path(__file__).resolve().parent.parent.parent


def parsed(*words: str) -> argparse.Namespace:
    return build_parser().parse_args(list(words))


def test_the_job_command_line_names_its_files_in_the_working_directory():
    words = ["run", "--mode", "live", "--config", str(ROOT / "actors/config/incheon.toml"), "--set", "a.b=1"]
    assert _job_command_line(words, parsed(*words), ROOT) == [
        "run", "--mode", "live", "--set", "a.b=1", "--config", "actors/config/incheon.toml", "--no-view",
    ]  # fmt: skip
    query = ROOT / "tests/sql/queries"
    sql = next(query.glob("*.sql"))
    data = next((ROOT / "tests/sql/data").iterdir())
    words = ["sql", "--duration", "60", str(sql), f"--data=t={data}"]
    assert _job_command_line(words, parsed(*words), ROOT) == [
        "sql", str(sql.relative_to(ROOT)), "--duration", "60", "--data", f"t={data.relative_to(ROOT)}",
        "--config", "actors/config/incheon.toml",
    ]  # fmt: skip


def test_a_file_outside_the_working_directory_is_refused(tmp_path):
    config = tmp_path / "city.toml"
    config.write_text((ROOT / "actors/config/incheon.toml").read_text())
    with pytest.raises(jobs.JobsError, match=r"the config .*city.toml is outside the job's working directory"):
        _job_command_line(["run", "--config", str(config)], parsed("run", "--config", str(config)), ROOT)


def test_the_runtime_environment_ships_the_code_and_the_pinned_dependencies():
    env = jobs.runtime_env(ROOT, pip=True)
    assert env["working_dir"] == str(ROOT) and ".venv" in env["excludes"] and ".git" in env["excludes"]
    assert env["env_vars"]["CITYSTREAM_HOME"] == "~/citystream"  # not the working directory, which Ray deletes
    assert env["env_vars"]["RAY_JOB_STOP_SIGNAL"] == "SIGINT" and int(env["env_vars"]["RAY_JOB_STOP_WAIT_TIME_S"]) >= 60
    packages = env["pip"]["packages"]
    pins = dict(line.split("==") for line in (ROOT / "constraints.txt").read_text().split() if "==" in line)
    assert packages and all("==" in p for p in packages) and not any(p.startswith("ray") for p in packages)
    assert all(pins[name] == version for name, version in (p.split("==") for p in packages))
    assert "pip" not in jobs.runtime_env(ROOT, pip=False)


def test_addresses_of_the_jobs_api():
    assert jobs.address_of("head:8265") == "http://head:8265"
    assert jobs.address_of("https://ray.example:443") == "https://ray.example:443"
    for wrong in ("ray://head:10001", "auto"):
        with pytest.raises(jobs.JobsError, match="the Jobs API is on the dashboard"):
            jobs.address_of(wrong)


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["--", "explain"], "submit runs `run ...` or `sql FILE ...`"),
        (["--", "run", "--executor", "inline"], "runs on the Ray executor"),
        (["--", "sql", "actors/config/rules/crowd.sql", "--executor=inline"], "runs on the Ray executor"),
        (["--", "run", "--address", "head:6379"], "--address of `run` or `sql`"),
        (["--", "run", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_submit_refuses_a_job_it_cannot_run_before_contacting_the_cluster(words, message, capsys):
    with pytest.raises(SystemExit) as exit:
        main(["submit", "--address", "http://127.0.0.1:9", *words])
    assert exit.value.code == 2 and message in capsys.readouterr().err


def test_submit_reports_a_bad_config_a_foreign_working_directory_and_an_absent_cluster(tmp_path, capsys):
    printed = lambda: " ".join(capsys.readouterr().out.split())  # as one line, however it wrapped
    assert main(["submit", "--", "run", "--set", "checkpoints.interval=5"]) == 2
    assert "config key 'checkpoints.interval': unknown key" in printed()
    assert main(["submit", "--working-dir", str(tmp_path), "--", "run"]) == 1
    assert "has no citystream code" in printed()
    assert main(["submit", "--address", "http://127.0.0.1:9", "--", "run", "--set", "dispatch.host=0.0.0.0"]) == 1
    out = printed()
    assert "no Ray Jobs API at http://127.0.0.1:9 (it is on the dashboard's port, 8265 by default" in out
    assert "checkpoints go to a local directory" in out and "s3://" in out  # a local checkpoint directory on a cluster: warned


def test_options_are_not_abbreviated_and_every_form_of_a_file_option_is_rewritten():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--conf", "x.toml"])
    config = str(ROOT / "actors/config/incheon.toml")
    words = ["run", f"--config={config}"]
    assert _job_command_line(words, parsed(*words), ROOT) == [
        "run", "--config", "actors/config/incheon.toml", "--no-view",
    ]  # fmt: skip
    left_out = ROOT / "var" / "city.toml"
    with pytest.raises(jobs.JobsError, match="is under var/, which does not travel with the job"):
        jobs.in_working_dir(left_out, ROOT, "config")
