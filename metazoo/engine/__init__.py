"""Engine: the stateful outer loop (``train``) and meta-test evaluation (``evaluate``).

Modules by job: ``config`` (the options), ``setup`` (what a run builds from them), ``layout``
(the run folder's file names), ``folder`` (its checks and lock), ``checkpoint`` (atomic
writes, the one safe reader), ``distributed`` (ranks under ``torchrun``), ``stopping``
(signals), ``tensorboard`` (the event files of ``--tensorboard``), ``train`` (the loop),
``run`` (a run read back, evaluated, its results written),
``evaluate`` (adaptation on held-out tasks, mean ± 95% CI).
"""

from metazoo.engine.checkpoint import Checkpoint, read_checkpoint
from metazoo.engine.config import TrainConfig
from metazoo.engine.evaluate import Estimate, evaluate, format_table
from metazoo.engine.run import evaluate_params, read_run, rebuild_run
from metazoo.engine.setup import build
from metazoo.engine.stopping import Interrupted
from metazoo.engine.train import NonFiniteError, train

__all__ = ["Checkpoint", "Estimate", "Interrupted", "NonFiniteError", "TrainConfig", "build",
           "evaluate", "evaluate_params", "format_table", "read_checkpoint", "read_run",
           "rebuild_run", "train"]
