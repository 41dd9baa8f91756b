"""Engine: the stateful outer loop (``train``) and meta-test evaluation (``evaluate``).

Modules by job: ``config`` (the options), ``setup`` (what a run builds from them),
``memory`` (peak memory, and the machine's), ``strategy`` (vmap or loop, measured), ``layout``
(the run folder's file names), ``folder`` (its checks and lock), ``checkpoint`` (atomic
writes, the one safe reader), ``distributed`` (ranks under ``torchrun``), ``stopping``
(signals), ``tensorboard`` (the event files of ``--tensorboard``), ``train`` (the loop),
``run`` (a run read back, evaluated, its results written),
``evaluate`` (adaptation on held-out tasks, mean ± 95% CI).

The public names below are imported from their modules on first use, so that reading the
options (``config``, ``layout``: what the command line builds its flags from) does not load
torch.
"""

from __future__ import annotations

import sys
import types

from metazoo.lazy import lazy_names

#: Each public name → the module of this package that defines it.
_HOMES = {"Checkpoint": "checkpoint", "read_checkpoint": "checkpoint", "TrainConfig": "config",
          "Estimate": "evaluate", "evaluate": "evaluate", "format_table": "evaluate",
          "evaluate_params": "run", "read_run": "run", "rebuild_run": "run", "build": "setup",
          "Interrupted": "stopping", "NonFiniteError": "train", "train": "train"}


__getattr__, __dir__ = lazy_names(__name__, _HOMES, globals())


class _Package(types.ModuleType):
    """``train`` and ``evaluate`` each name a function and the module that defines it. Python
    sets a package's attribute to the module when that module is first imported; here it
    stays the function, as ``from metazoo.engine import train`` promises."""

    def __setattr__(self, name: str, value) -> None:
        if isinstance(value, types.ModuleType) and _HOMES.get(name) == name:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

__all__ = ["Checkpoint", "Estimate", "Interrupted", "NonFiniteError", "TrainConfig", "build",
           "evaluate", "evaluate_params", "format_table", "read_checkpoint", "read_run",
           "rebuild_run", "train"]
