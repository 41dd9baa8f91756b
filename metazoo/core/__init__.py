"""Functional core: the inner loop and parameter-dict arithmetic."""

from metazoo.core.adapt import Adapted, adapt
from metazoo.core.tree import tree_axpy, tree_detach, tree_dot, tree_map, tree_norm, tree_sub

__all__ = ["Adapted", "adapt", "tree_axpy", "tree_detach", "tree_dot", "tree_map", "tree_norm",
           "tree_sub"]
