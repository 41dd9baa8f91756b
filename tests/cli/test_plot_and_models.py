"""``metazoo plot`` on real run folders, its refusals, and ``metazoo models``."""

import pytest

from metazoo.models import MODELS
from tests.hostile.harness import OK, TINY, cli, refused

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two tiny runs with a validation curve, differing in their inner step size, and one
    without a curve."""
    root = tmp_path_factory.mktemp("runs")
    curve = ["--log-every", "1", "--val-every", "1", "--val-tasks", "2"]
    for name, flags in (("a", [*curve, "--inner-lr", "0.01"]), ("b", [*curve, "--inner-lr", "0.02"]),
                        ("plain", [])):
        result = cli("train", *TINY, *flags, "--out", root / name)
        assert result.code == OK, result.err
    return root


def test_plot_writes_one_png_of_the_runs(runs, tmp_path):
    out = tmp_path / "curves.png"
    result = cli("plot", runs / "a", runs / "b", runs / "plain", "--out", out)
    assert result.code == OK, result.err
    assert out.read_bytes().startswith(PNG)
    assert result.out.strip() == f"{out}: the curves of 3 runs"


@pytest.mark.parametrize("case, message", [
    ("jpg", "the figure is a PNG; name a file ending in .png"),
    ("not-a-run", "is not a run folder (it has no config.json)"),
    ("missing", "is not a folder; name a run folder"),
    ("twice", "are one run; name each run once"),
    ("no-folder", "does not exist; create it first"),
    ("a-folder", "is a folder; name a file"),
])
def test_plot_refuses_bad_input_in_one_line(case, message, runs, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "taken.png").mkdir()
    out = {"jpg": tmp_path / "curves.jpg", "no-folder": tmp_path / "nowhere" / "curves.png",
           "a-folder": tmp_path / "taken.png"}.get(case, tmp_path / "curves.png")
    run = {"not-a-run": [tmp_path / "empty"], "missing": [tmp_path / "gone"],
           "twice": [runs / "a", runs / "b" / ".." / "a"]}.get(case, [runs / "a"])
    refused("plot", *run, "--out", out, message=message, watch=tmp_path,
            absent=[tmp_path / "curves.png", tmp_path / "curves.jpg"])


def test_models_lists_every_built_in_model_and_how_to_plug_in_your_own():
    result = cli("models")
    assert result.code == OK, result.err
    for name, factory in MODELS.items():
        assert f"{name:13s} {factory.__doc__.splitlines()[0]}" in result.out
    assert "the default of omniglot" in result.out
    assert "--model package.module:factory" in result.out
    assert "factory(input_shape=..., output_size=...)" in result.out
