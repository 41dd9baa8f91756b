"""The command line answers at once: help, presets and usage errors load no heavy library.

The commands below run one after another in a fresh interpreter; after each, the probe
reports which of the heavy libraries are loaded. torch alone takes seconds to import; how long
each command takes against it is ``benchmarks/cli_startup.py``'s to say.
"""

import json
import subprocess
import sys

from tests.helpers import REPO
from tests.hostile.harness import OK, REFUSED

#: Libraries the answers must not wait for.
HEAVY = ("torch", "numpy", "pandas", "matplotlib", "optuna")

#: Each command, and its exit status.
COMMANDS = [
    ([], REFUSED),
    (["--help"], OK),
    (["train", "--help"], OK),
    (["tune", "--help"], OK),
    (["compare", "--help"], OK),
    (["eval", "--help"], OK),
    (["predict", "--help"], OK),
    (["plot", "--help"], OK),
    (["models", "--help"], OK),
    (["presets"], OK),
    (["presets", "maml-omniglot-5w1s"], OK),
    (["presets", "no-such-preset"], REFUSED),
    (["train", "--no-such-flag"], REFUSED),
    (["train", "--meta-batch", "many"], REFUSED),
    (["train", "--algorithm", "no-such-method"], REFUSED),
    (["train", "--task", "no-such-task"], REFUSED),
    (["tune", "--imaml-cg-steps", "x"], REFUSED),
]

PROBE = """
import contextlib, io, json, sys
from metazoo.cli import main
heavy, commands = json.loads(sys.argv[1])
for argv, _ in commands:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        status = main(argv)
    print(json.dumps([argv, status, [name for name in heavy if name in sys.modules]]))
"""


def test_help_presets_and_usage_errors_import_no_heavy_library():
    result = subprocess.run([sys.executable, "-c", PROBE, json.dumps([HEAVY, COMMANDS])],
                            capture_output=True, text=True, cwd=REPO, check=True)
    seen = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(argv, status) for argv, status, _ in seen] == [(argv, status) for argv, status in
                                                            COMMANDS]
    # The first command that loaded one names the culprit.
    assert [(argv, loaded) for argv, _, loaded in seen if loaded] == []


def test_a_command_still_imports_what_it_runs():
    """The check above would pass vacuously if ``sys.modules`` were not where imports land."""
    probe = "import sys; from metazoo.cli import main; main(['models']); print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            cwd=REPO, check=True)
    assert result.stdout.splitlines()[-1] == "True"
