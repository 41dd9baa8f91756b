import shutil

import pytest

from tests.hostile.harness import OK, TINY, cli


@pytest.fixture(scope="session")
def finished_template(tmp_path_factory):
    """A finished tiny MAML run (2 iterations), made once; tests get copies."""
    out = tmp_path_factory.mktemp("template") / "run"
    result = cli("train", *TINY, "--out", out)
    assert result.code == OK, result.err
    return out


@pytest.fixture
def run(finished_template, tmp_path):
    """A copy of the finished tiny run, in this test's own folder."""
    copy = tmp_path / "run"
    shutil.copytree(finished_template, copy)
    return copy
