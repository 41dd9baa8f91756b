"""Hostile flags and config files: each is refused in one line naming the option, exit 2,
before anything is written."""

import json

import pytest

from tests.hostile.harness import OK, TINY, cli, refused
from tests.tasks.test_image_tasks import make_tree

BIG = str(10**30)

FLAGS = [
    (["--k-shot", BIG], "lower meta_batch, k_shot, query_shots"),
    (["--meta-batch", BIG], "lower meta_batch, k_shot, query_shots"),
    (["--query-shots", BIG], "lower meta_batch, k_shot, query_shots"),
    (["--eval-tasks", BIG], "lower eval_tasks, eval_k_shot, eval_query_shots"),
    (["--eval-k-shot", BIG], "lower eval_tasks, eval_k_shot, eval_query_shots"),
    (["--eval-query-shots", BIG], "lower eval_tasks, eval_k_shot, eval_query_shots"),
    (["--outer-lr", "1e39"], "outer_lr must be at most 3.4e+38"),
    (["--inner-lr", "1e39"], "inner_lr must be at most 3.4e+38"),
    (["--device", "meta"], "device 'meta' is not available here"),
    (["--device", "tpu"], "device 'tpu' is not available here"),
    (["--seed", BIG], "seed must be an integer from 0 to 2**62"),
    (["--eval-seed", BIG], "eval_seed must be an integer from 0 to 2**62"),
    (["--seed", "-1"], "seed must be an integer from 0 to 2**62"),
    (["--inner-steps", BIG], "inner_steps must be at most 10,000"),
    (["--eval-steps", "1", BIG], "eval_steps must be integers from 0 to 10,000"),
    (["--split", "foo"], "split does not apply to task 'sinusoid'"),
    (["--n-way", "100000000"], "n_way does not apply to task 'sinusoid'"),
    (["--data-dir", "/nowhere"], "data_dir does not apply to task 'sinusoid'"),
    (["--anil-head", "nope", "--algorithm", "anil"], "nope"),
]


@pytest.mark.parametrize("flags, message", FLAGS, ids=[" ".join(f)[:40] for f, _ in FLAGS])
def test_bad_flag(flags, message, tmp_path):
    refused("train", *TINY, *flags, "--out", tmp_path / "new", message=message, watch=tmp_path,
            absent=[tmp_path / "new"])


def test_empty_out_is_not_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = refused("train", *TINY, "--out", "", message="an empty path", watch=tmp_path)
    assert list(tmp_path.iterdir()) == [] and "--out" in result.line


def test_out_name_longer_than_the_filesystem_allows(tmp_path):
    refused("train", *TINY, "--out", tmp_path / ("x" * 300), watch=tmp_path,
            message="longer than this filesystem's limit")


def test_out_path_longer_than_the_system_allows(tmp_path):
    deep = tmp_path.joinpath(*["d" * 200] * 25)
    refused("train", *TINY, "--out", deep, watch=tmp_path, message="longer than this system's")


def test_out_that_is_a_file_or_under_one(tmp_path):
    (tmp_path / "file").write_text("mine")
    refused("train", *TINY, "--out", tmp_path / "file", watch=tmp_path, message="is a file")
    refused("train", *TINY, "--out", tmp_path / "file" / "run", watch=tmp_path,
            message="which is a file")


def test_resume_with_another_out_is_refused(run, tmp_path):
    refused("train", "--resume", run, "--out", tmp_path / "elsewhere", watch=tmp_path,
            message="continues the run in its own folder", absent=[tmp_path / "elsewhere"])


CONFIGS = [
    ("[1, 2]", "expected a JSON object"),
    ("null", "expected a JSON object"),
    ('"maml"', "expected a JSON object"),
    ('{"algorithm": ["maml"]}', "algorithm must be"),
    ('{"algorithm_options": null}', "algorithm_options must be"),
    ('{"algorithm": "imaml", "algorithm_options": {"cg_dampng": 1.0}}', "cg_dampng"),
    ('{"eval_steps": [true, 1]}', "eval_steps must be integers"),
    ('{"k_shot": 1e400}', "k_shot must be"),
    ('{"seed": 1e30}', "seed must be"),
    ("{not json", "cannot read it as JSON"),
    ('{"eval_seed": 1000000000000000000000000000000}', "eval_seed must be an integer"),
]


@pytest.mark.parametrize("text, message", CONFIGS, ids=[c[0][:30] for c in CONFIGS])
def test_bad_config_file(text, message, tmp_path):
    (tmp_path / "c.json").write_text(text)
    refused("train", *TINY, "--config", tmp_path / "c.json", "--out", tmp_path / "new",
            message=message, watch=tmp_path, absent=[tmp_path / "new"])


def test_config_with_200_000_unknown_keys_gives_a_short_line(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({f"key{i}": 0 for i in range(200_000)}))
    result = refused("train", *TINY, "--config", tmp_path / "c.json", "--out", tmp_path / "new",
                     message="unknown option", watch=tmp_path)
    assert len(result.line) < 500


def test_config_with_a_megabyte_key_gives_a_short_line(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"k" * 1_000_000: 0}))
    result = refused("train", *TINY, "--config", tmp_path / "c.json", "--out", tmp_path / "new",
                     message="unknown option", watch=tmp_path)
    assert len(result.line) < 500


def test_config_that_is_missing_or_a_folder(tmp_path):
    for path in (tmp_path / "missing.json", tmp_path):
        refused("train", *TINY, "--config", path, "--out", tmp_path / "new",
                message="cannot read it as JSON", watch=tmp_path, absent=[tmp_path / "new"])


EVAL = [
    (["--tasks", BIG], "lower eval_tasks"),
    (["--k-shot", BIG], "lower eval_tasks, eval_k_shot"),
    (["--k-shot", "0"], "--k-shot must be a positive integer"),
    (["--steps", "-1"], "eval_steps must be"),
    (["--steps", BIG], "eval_steps must be integers from 0 to 10,000"),
]


@pytest.mark.parametrize("flags, message", EVAL, ids=[" ".join(f)[:30] for f, _ in EVAL])
def test_bad_eval_flag(flags, message, run, tmp_path):
    refused("eval", run, *flags, "--json", tmp_path / "e.json", message=message, watch=tmp_path,
            absent=[tmp_path / "e.json"])


def test_eval_json_is_checked_before_evaluating(run, tmp_path):
    refused("eval", run, "--json", tmp_path / "missing" / "e.json", watch=tmp_path,
            message="does not exist")
    refused("eval", run, "--json", tmp_path, watch=tmp_path, message="is a folder")


def test_eval_json_is_written_whole(run, tmp_path):
    result = cli("eval", run, "--tasks", "3", "--json", tmp_path / "e.json")
    assert result.code == 0 and result.err == ""
    assert set(json.loads((tmp_path / "e.json").read_text())) == {"0", "1", "5", "10"}


def test_impossible_held_out_tasks_name_the_evaluation_options(tmp_path):
    # Checked before any data is loaded, so the empty data folder is never reached.
    refused("train", *TINY, "--task", "omniglot", "--eval-query-shots", "20", "--data-dir",
            tmp_path, "--out", tmp_path / "new", watch=tmp_path, absent=[tmp_path / "new"],
            message="held-out tasks (eval_k_shot=10, eval_query_shots=20")


#: Data that cannot be had, met while the held-out tasks (built first) are made: each is the
#: training tasks' problem too, so it is reported as it is, without the evaluation options.
MISSING_DATA = [
    (["--task", "omniglot", "--data-dir", "{tmp}/nowhere"], "data_dir {tmp}/nowhere does not exist"),
    (["--task", "omniglot", "--data-dir", "{tmp}"], "download of images_background.zip from file:"),
    (["--task", "folder", "--data-dir", "{tmp}/nowhere"], "data_dir {tmp}/nowhere does not exist"),
    (["--task", "folder"], "data_dir is required"),
    (["--task", "air-quality", "--data-dir", "{tmp}/nowhere"], "air-quality data folder {tmp}/nowhere"),
    (["--task", "arrays", "--data-dir", "{tmp}"], "inputs.npy is missing"),
]


@pytest.mark.parametrize("flags, message", MISSING_DATA, ids=[m[:30] for _, m in MISSING_DATA])
def test_missing_data_is_not_taken_for_the_evaluation_options(flags, message, tmp_path,
                                                               monkeypatch):
    # Downloads, if tried, fail at once: the archives are looked for in a folder that is not there.
    monkeypatch.setenv("METAZOO_OMNIGLOT_URL", (tmp_path / "no-mirror").as_uri())
    for variable in ("METAZOO_OMNIGLOT_DIR", "METAZOO_AIR_QUALITY_DIR"):
        monkeypatch.delenv(variable, raising=False)
    flags = [flag.format(tmp=tmp_path) for flag in flags]
    result = refused("train", *TINY, *flags, "--out", tmp_path / "new", watch=tmp_path,
                     absent=[tmp_path / "new"], message=message.format(tmp=tmp_path))
    assert "held-out tasks" not in result.line


def test_conjugate_gradient_steps_that_would_not_finish(tmp_path):
    refused("train", *TINY, "--algorithm", "imaml", "--imaml-cg-steps", BIG, "--out",
            tmp_path / "new", watch=tmp_path, message="cg_steps must be at most")


def test_a_model_that_does_not_fit_the_task(tmp_path):
    refused("train", *TINY, "--model", "conv4", "--out", tmp_path / "new", watch=tmp_path,
            absent=[tmp_path / "new"], message="model 'conv4' takes square images")
    refused("train", *TINY, "--model", "no_such_module:factory", "--out", tmp_path / "new",
            watch=tmp_path, absent=[tmp_path / "new"], message="cannot import module")


@pytest.mark.parametrize("command", ["train", "eval", "predict", "compare", "tune", "presets"])
def test_help_prints_each_percent_sign_once(command):
    result = cli(command, "--help")
    assert result.code == 0 and "%%" not in result.out
    if command == "eval":
        assert "± 95% CI" in " ".join(result.out.split())


def test_a_held_out_part_with_too_few_classes_names_the_part(tmp_path, monkeypatch):
    # The default split (0.6 0.15 0.25, each rounded) leaves 19 classes 5 test classes and 18
    # only 4 (README, "A folder of images"). The evaluation shots are the training ones here,
    # so the message does not name them.
    monkeypatch.setenv("METAZOO_CACHE_DIR", str(tmp_path / "cache"))
    flags = ["--task", "folder", "--image-size", "16", "--n-way", "5", "--k-shot", "1",
             "--query-shots", "1", "--eval-query-shots", "1"]
    data = make_tree(tmp_path / "data", {f"class{i:02d}": 2 for i in range(18)})
    result = refused("train", *TINY, *flags, "--data-dir", data, "--out", tmp_path / "new",
                     watch=data, absent=[tmp_path / "new"],
                     message="n_way=5 classes per task, but the test part of")
    assert result.line.endswith("has only 4 classes") and "held-out tasks" not in result.line
    make_tree(data, {"class18": 2}, seed=1)
    trained = cli("train", *TINY, *flags, "--data-dir", data, "--out", tmp_path / "new")
    assert trained.code == OK, trained.err
