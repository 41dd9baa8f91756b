"""The shared types live in a leaf module: the algorithms load no task family."""

import subprocess
import sys


def test_importing_the_algorithms_loads_no_data_set_code():
    code = ("import sys, metazoo.algorithms; "
            "print(sorted(m for m in sys.modules if m.startswith('metazoo.tasks')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == "[]", loaded


def test_one_params_type():
    from metazoo import types
    from metazoo.core import tree
    from metazoo.models import LossFn, Params

    assert tree.Params is types.Params is Params
    assert LossFn is types.LossFn
