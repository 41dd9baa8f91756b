"""A study survives its processes: a trial killed mid-run (SIGKILL) is finished from its
checkpoint by the next command, never counted twice; two processes sharing a PostgreSQL
study finish its trials between them, none run twice."""

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.search.helpers import TINY

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
#: Trials long enough to be killed in the middle (400 iterations, a point every 100).
LONGER = [*TINY, "--iterations", "400", "--val-every", "100", "--heartbeat", "1",
          "--no-progress"]


def tune_command(*options):
    return [sys.executable, "-m", "metazoo", "tune", *options]


def counted(study):
    return study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))


@pytest.mark.slow
def test_a_killed_trial_resumes_from_its_checkpoint_and_counts_once(tmp_path):
    out = tmp_path / "study"
    command = tune_command(*LONGER, "--algorithm", "fomaml", "--trials", "3", "--out", str(out))
    process = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    curve = out / "trials" / "0" / "validation.jsonl"
    checkpoint = curve.with_name("checkpoint.pt")

    def checkpointed_after_a_point():  # the checkpoint follows the point it was made at
        return (curve.is_file() and curve.read_text().endswith("\n")
                and checkpoint.stat().st_mtime_ns > curve.stat().st_mtime_ns)

    deadline = time.time() + 120
    while not checkpointed_after_a_point():
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        assert time.time() < deadline, "the first trial never reached its first validation point"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)  # mid-trial: after its point at 100, before 400
    process.wait()
    storage = f"sqlite:///{out / 'study.db'}"
    killed = optuna.load_study(study_name="fomaml-sinusoid", storage=storage).trials[0]
    assert killed.state == TrialState.RUNNING and len(killed.intermediate_values) < 4

    result = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    study = optuna.load_study(study_name="fomaml-sinusoid", storage=storage)
    assert len(counted(study)) == 3
    assert [t.number for t in study.trials if t.state == TrialState.FAIL] == [0]
    retry = [t for t in study.trials if t.user_attrs.get("resumed_from")]
    assert len(retry) == 1 and retry[0].params == killed.params
    assert retry[0].user_attrs["resumed_from"]["trial"] == 0
    assert retry[0].user_attrs["resumed_from"]["iteration"] >= 100  # not from scratch
    # Its folder moved to its own number; one folder per counted trial.
    folders = sorted(path.name for path in (out / "trials").iterdir())
    assert folders == sorted(str(t.number) for t in counted(study))


def postgres_binaries() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))  # Debian's packages
    return Path(versions[-1]).parent if versions else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def postgres():
    """A PostgreSQL server of this test's own on 127.0.0.1 (as the postgres user when run as
    root, since the server refuses to run as root); yields its URL."""
    import sqlalchemy

    try:  # the driver SQLAlchemy opens postgresql:// with (psycopg 3 from SQLAlchemy 2.1 on)
        sqlalchemy.create_engine("postgresql://")
    except ImportError:
        pytest.skip("PostgreSQL tests need its driver: pip install 'metazoo[tune-postgres]'")
    binaries = postgres_binaries()
    if binaries is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    prefix: list[str] = []
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run the server as")
        prefix = ["runuser", "-u", "postgres", "--"]
    # Not under pytest's folder, which only its owner may enter.
    home = Path(tempfile.mkdtemp(prefix="metazoo-pg-"))
    os.chmod(home, 0o755)
    data = home / "data"
    data.mkdir()
    if prefix:
        os.chown(data, user.pw_uid, user.pw_gid)
    port = free_port()
    subprocess.run([*prefix, str(binaries / "initdb"), "-D", str(data), "-U", "postgres",
                    "--auth=trust"], check=True, capture_output=True, timeout=120)
    subprocess.run([*prefix, str(binaries / "pg_ctl"), "-D", str(data), "-w", "-l",
                    str(data / "server.log"), "-o",
                    f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "start"],
                   check=True, capture_output=True, timeout=120)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate",
                        "stop"], check=False, capture_output=True, timeout=120)
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.slow
def test_two_processes_share_one_postgresql_study(tmp_path, postgres):
    options = [*TINY, "--algorithm", "maml", "--trials", "5", "--storage", postgres, "--study",
               "shared", "--heartbeat", "2"]
    processes = [subprocess.Popen(tune_command(*options, "--out", str(tmp_path / name)),
                                  env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for name in ("a", "b")]
    for process in processes:
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-2000:]
        assert "best: trial" in stdout
    study = optuna.load_study(study_name="shared", storage=postgres)
    numbers = sorted(t.number for t in counted(study))
    assert len(numbers) == 5
    ran = {name: {path.name for path in (tmp_path / name / "trials").glob("*")}
           for name in ("a", "b")}
    assert not ran["a"] & ran["b"]  # no trial ran twice
    assert sorted(int(n) for n in ran["a"] | ran["b"]) == numbers
    assert ran["a"] and ran["b"]  # both machines took part


@pytest.mark.slow
def test_sigterm_stops_a_trial_that_the_same_command_resumes(tmp_path):
    out = tmp_path / "study"
    command = tune_command(*LONGER, "--algorithm", "fomaml", "--trials", "2", "--out", str(out))
    process = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    curve = out / "trials" / "0" / "validation.jsonl"
    deadline = time.time() + 120
    while not (curve.is_file() and curve.read_text().endswith("\n")):
        assert process.poll() is None, process.stderr.read()[-2000:]
        assert time.time() < deadline, "the first trial never reached its first validation point"
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert stderr.count("\n") == 1 and "stopped by SIGTERM" in stderr
    assert "run the same command again" in stderr, stderr

    result = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    study = optuna.load_study(study_name="fomaml-sinusoid", storage=f"sqlite:///{out / 'study.db'}")
    assert len(counted(study)) == 2
    (retry,) = [t for t in study.trials if t.user_attrs.get("resumed_from")]
    assert retry.user_attrs["resumed_from"]["trial"] == 0
    assert retry.user_attrs["resumed_from"]["iteration"] >= 100


@pytest.mark.slow
def test_jobs_run_trials_side_by_side_none_twice(tmp_path):
    out = tmp_path / "study"
    result = subprocess.run(tune_command(*TINY, "--algorithm", "maml", "--trials", "4",
                                         "--jobs", "2", "--out", str(out)),
                            env=ENV, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    study = optuna.load_study(study_name="maml-sinusoid", storage=f"sqlite:///{out / 'study.db'}")
    assert sorted(t.number for t in counted(study)) == [0, 1, 2, 3]
    assert sorted(p.name for p in (out / "trials").iterdir()) == ["0", "1", "2", "3"]
    assert result.stdout.count("trials done") == 4
