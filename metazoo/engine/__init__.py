"""Engine: the stateful outer loop (``train``) and meta-test evaluation (``evaluate``)."""

from metazoo.engine.config import TrainConfig
from metazoo.engine.evaluate import Estimate, evaluate, format_table
from metazoo.engine.train import NonFiniteError, build, evaluate_params, load_run, train

__all__ = ["Estimate", "NonFiniteError", "TrainConfig", "build", "evaluate", "evaluate_params",
           "format_table", "load_run", "train"]
