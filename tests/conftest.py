"""What every test suite shares.

``pytest`` runs everything (the README's command, and CI's); ``pytest -m "not slow"`` is the
quick loop, leaving out the tests marked ``slow`` (methods trained to convergence, processes
killed and resumed, the whole compare report): a few minutes on a 2-core CPU.
"""

import shutil

import pytest
import torch

from tests.hostile.harness import OK, TINY, cli


def pytest_report_header(config):
    return (f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
            "quick loop: pytest -m 'not slow'")


@pytest.fixture(scope="session")
def finished_template(tmp_path_factory):
    """A finished tiny MAML run on sinusoid (2 iterations), made once; tests get copies."""
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
