"""Outputs never overwrite what a user has: an output path is never one of a run's own files,
an input of the same command, or anything but a regular file or a new name. Each is refused
in one line before any work, and the atomic writer itself never renames over a file that is
not a regular one."""

import json
import os

import pytest

from metazoo.fileio import WriteError, atomic_write_data
from tests.hostile.harness import OK, cli, digest, refused

RUN_FILES = ["checkpoint.pt", "config.json", "log.jsonl", "results.json", "results.md"]


def tables(folder):
    """A support and a query table for the tiny sinusoid run."""
    support, query = folder / "sup.csv", folder / "qry.csv"
    support.write_text("x,y\n" + "".join(f"{i / 10},{i / 20}\n" for i in range(5)))
    query.write_text("x\n0.5\n1.5\n")
    return support, query


@pytest.mark.parametrize("option", ["--out", "--json"])
@pytest.mark.parametrize("name", RUN_FILES)
def test_eval_outputs_are_never_a_file_of_the_run(name, option, run, tmp_path):
    refused("eval", run, "--tasks", "2", option, run / name, watch=tmp_path,
            message=f"is the run's own {name}")


def test_eval_out_writes_its_results_and_refuses_what_it_cannot_write(run, tmp_path):
    out, report = tmp_path / "eval.json", tmp_path / "report.json"
    result = cli("eval", run, "--tasks", "3", "--steps", "0", "2", "--out", out,
                 "--json", report)
    assert result.code == OK, result.err
    written = json.loads(out.read_text())
    assert written["evaluation"] == json.loads(report.read_text())
    assert set(written["evaluation"]) == {"0", "2"}
    assert written["run"] == str(run) and written["iteration"] == 2
    assert written["config"]["eval_tasks"] == 3 and written["config"]["eval_steps"] == [0, 2]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["eval.json", "report.json",
                                                                "run"]  # no temporary left
    refused("eval", run, "--tasks", "2", "--out", tmp_path, watch=tmp_path,
            message=f"--out {tmp_path} is a folder; name a file")
    refused("eval", run, "--tasks", "2", "--out", tmp_path / "no" / "eval.json",
            watch=tmp_path, message="does not exist; create it first")
    refused("eval", run, "--tasks", "2", "--out", out, "--json", tmp_path / "." / out.name,
            watch=tmp_path, message="--out and --json both name")


@pytest.mark.parametrize("name", RUN_FILES)
def test_predict_out_is_never_a_file_of_the_run(name, run, tmp_path):
    support, query = tables(tmp_path)
    refused("predict", run, "--support", support, "--query", query, "--out", run / name,
            watch=tmp_path, message=f"is the run's own {name}")


def test_predict_out_is_never_a_file_of_another_run(run, tmp_path, finished_template):
    support, query = tables(tmp_path)
    refused("predict", run, "--support", support, "--query", query, "--out",
            finished_template / "checkpoint.pt", watch=finished_template,
            message="is a run's own checkpoint.pt")


@pytest.mark.parametrize("which", ["support", "query"])
def test_predict_out_is_never_an_input(which, run, tmp_path):
    support, query = tables(tmp_path)
    target = support if which == "support" else query
    refused("predict", run, "--support", support, "--query", query, "--out", target,
            watch=tmp_path, message=f"is the --{which} file of this command")
    # Another name for the same file (a hard link, a path through ..) is the same file.
    os.link(target, tmp_path / "again.csv")
    refused("predict", run, "--support", support, "--query", query, "--out",
            tmp_path / "again.csv", watch=tmp_path, message=f"is the --{which} file")
    refused("predict", run, "--support", support, "--query", query, "--out",
            run / ".." / target.name, watch=tmp_path, message=f"is the --{which} file")


def test_an_output_that_is_not_a_regular_file(run, tmp_path):
    support, query = tables(tmp_path)
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    for option in ("--out", "--json"):
        refused("eval", run, "--tasks", "2", option, pipe, watch=tmp_path,
                message="is not a regular file (a named pipe)")
    refused("predict", run, "--support", support, "--query", query, "--out", pipe,
            watch=tmp_path, message="is not a regular file (a named pipe)")
    assert pipe.is_fifo()
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "sup.csv")
    refused("eval", run, "--tasks", "2", "--json", link, watch=tmp_path,
            message="is not a regular file (a symbolic link)")
    assert link.is_symlink()


def test_the_atomic_writer_never_renames_over_a_file_that_is_not_regular(tmp_path):
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    with pytest.raises(WriteError, match="is not a regular file"):
        atomic_write_data(pipe, b"data")
    assert pipe.is_fifo() and sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


def test_an_output_beside_the_run_is_still_written(run, tmp_path):
    support, query = tables(tmp_path)
    before = digest(run)
    result = cli("predict", run, "--support", support, "--query", query, "--out",
                 run / "predictions.csv")
    assert result.code == OK, result.err
    assert (run / "predictions.csv").read_text().startswith("x,prediction")
    after = digest(run)
    del after[str(run / "predictions.csv")]
    assert after == before
