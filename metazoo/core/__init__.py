"""Functional core: the inner loop, its optimizers and parameter-dict arithmetic."""

from metazoo.core.adapt import Adapted, adapt, adapt_path, iterates_at, proximal
from metazoo.core.optimizers import InnerOptimizer, RMSState, rms, sgd
from metazoo.core.tree import tree_axpy, tree_detach, tree_dot, tree_map, tree_norm, tree_sub

__all__ = ["Adapted", "InnerOptimizer", "RMSState", "adapt", "adapt_path", "iterates_at",
           "proximal", "rms", "sgd", "tree_axpy", "tree_detach", "tree_dot", "tree_map",
           "tree_norm", "tree_sub"]
