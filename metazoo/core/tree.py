"""Arithmetic on parameter dicts (``{name: tensor}``), the pytrees of this library."""

from __future__ import annotations

from collections.abc import Callable

import torch

from metazoo.types import Params


def tree_map(fn: Callable[..., torch.Tensor], tree: Params, *rest: Params) -> Params:
    """Apply ``fn`` leaf-wise over dicts with identical keys."""
    return {name: fn(leaf, *(other[name] for other in rest)) for name, leaf in tree.items()}


def tree_axpy(alpha: float | torch.Tensor, x: Params, y: Params) -> Params:
    """``alpha * x + y``."""
    return {name: y[name] + alpha * leaf for name, leaf in x.items()}


def tree_sub(x: Params, y: Params) -> Params:
    """``x - y``."""
    return {name: leaf - y[name] for name, leaf in x.items()}


def tree_dot(x: Params, y: Params) -> torch.Tensor:
    """Inner product summed over every leaf (a 0-d tensor)."""
    return sum((leaf * y[name]).sum() for name, leaf in x.items())


def tree_norm(x: Params) -> torch.Tensor:
    """Euclidean norm of all leaves taken together."""
    return torch.sqrt(tree_dot(x, x))


def tree_detach(x: Params) -> Params:
    """Cut every leaf from the autodiff graph (all levels of ``torch.func`` included)."""
    return {name: leaf.detach() for name, leaf in x.items()}


def flatten(tree: dict, prefix: str = "") -> dict[str, torch.Tensor]:
    """A nested dict of tensors as one flat dict, its keys joined by dots."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def unflatten(flat: dict[str, torch.Tensor], like: dict) -> dict:
    """The inverse of :func:`flatten`: ``flat``'s values in the nesting of ``like``."""
    def build(node: dict, prefix: str) -> dict:
        return {key: build(value, f"{prefix}{key}.") if isinstance(value, dict)
                else flat[prefix + key] for key, value in node.items()}

    return build(like, "")
