"""User code runs only when the user names it on this command (``--model`` on eval and
resume too), never because a config or checkpoint names it; a user factory's failure of any
kind is one line naming the factory, exit 2."""

import sys

import pytest

from tests.helpers import read_state, rewrite_run
from tests.hostile.harness import OK, TINY, cli, refused

PLANT = ("open('imported', 'w').close()\n"
         "from metazoo.models import MLP\n"
         "def factory(input_shape, output_size):\n"
         "    return MLP((input_shape[0], 8, output_size))\n")


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """The current folder, where ``--model module:factory`` may find a module."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("planted", "quits", "quits_at_import", "tuples", "this"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return tmp_path


def test_eval_and_resume_never_import_a_model_the_run_folder_names(run, folder):
    (folder / "planted.py").write_text(PLANT)
    rewrite_run(run, read_state(run), model="planted:factory")
    for args in (["eval", run, "--tasks", "2"], ["train", "--resume", run, "--no-progress"]):
        refused(*args, watch=run, message="name it yourself: --model planted:factory",
                absent=[folder / "imported"])
    assert "planted" not in sys.modules


def test_a_forged_model_name_imports_nothing_before_the_refusal(run, folder):
    rewrite_run(run, read_state(run), model="this:x")
    result = refused("eval", run, "--tasks", "2", watch=run, message="--model this:x")
    assert "this" not in sys.modules and result.out == ""


def test_a_user_model_named_again_is_evaluated_and_resumed(folder):
    (folder / "planted.py").write_text(PLANT)
    out = folder / "run"
    assert cli("train", *TINY, "--model", "planted:factory", "--out", out).code == OK
    sys.modules.pop("planted")
    result = cli("eval", out, "--tasks", "2", "--model", "planted:factory")
    assert result.code == OK, result.err
    refused("eval", out, "--tasks", "2", "--model", "mlp", watch=out,
            message="name it yourself: --model planted:factory")
    result = cli("train", "--resume", out, "--model", "planted:factory", "--no-progress")
    assert result.code == OK, result.err


FACTORIES = [
    ("quits", "import sys\ndef factory(input_shape, output_size):\n    sys.exit(0)\n",
     "model 'quits:factory': factory(input_shape=(1,), output_size=1) raised SystemExit"),
    ("quits_at_import", "import sys\nsys.exit(0)\ndef factory(**shapes): pass\n",
     "model 'quits_at_import:factory': cannot import module 'quits_at_import' (SystemExit"),
    ("tuples", ("import torch\nclass Pair(torch.nn.Linear):\n"
                "    def forward(self, x):\n        return super().forward(x), x\n"
                "def factory(input_shape, output_size):\n"
                "    return Pair(input_shape[0], output_size)\n"),
     "model 'tuples:factory': its forward returned a tuple, not a tensor [B, 1]"),
]


@pytest.mark.parametrize("module, source, message", FACTORIES, ids=[f[0] for f in FACTORIES])
def test_a_user_factory_that_fails_in_any_way(module, source, message, folder):
    (folder / f"{module}.py").write_text(source)
    refused("train", *TINY, "--model", f"{module}:factory", "--out", folder / "new",
            watch=folder, message=message, absent=[folder / "new"])
