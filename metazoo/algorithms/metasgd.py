"""Meta-SGD (Li, Zhou, Chen & Li, 2017): MAML that also learns its inner step sizes.

Update: ∇(θ, α) L_query(φ), φ = θ − α ∘ Σ_k ∇L_support, with one learned step size per
parameter entry (α has θ's shapes, initialised to ``inner_lr``), both trained by the outer
optimizer; second order through the k steps as in MAML. The step sizes are stored beside θ
under the names ``inner_lr.<parameter>`` and used again at test time.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from metazoo.algorithms.base import Settings, register, sgd_path
from metazoo.core import adapt
from metazoo.core.autodiff import grad

PREFIX = "inner_lr."


def split(params):
    """(model parameters θ, step sizes α keyed like θ)."""
    model = {name: p for name, p in params.items() if not name.startswith(PREFIX)}
    rates = {name[len(PREFIX):]: p for name, p in params.items() if name.startswith(PREFIX)}
    if rates.keys() != model.keys():
        raise ValueError("Meta-SGD needs a step size for every parameter: build its "
                         "meta-parameters with get_algorithm('metasgd').make(...).init(params)")
    return model, rates


@dataclass(frozen=True)
class MetaSGDSettings(Settings):
    """Meta-SGD's only hyperparameters are the inner loop's; ``inner_lr`` initialises α."""

    def test_rule(self) -> str:
        return f"test steps: the learned step sizes (for {self.inner_steps})"


def init(settings: MetaSGDSettings, params):
    """θ and one step size per parameter entry, each starting at ``inner_lr``."""
    return {**params, **{PREFIX + name: torch.full_like(p, settings.inner_lr)
                         for name, p in params.items()}}


def model_params(settings: MetaSGDSettings, meta):
    return split(meta)[0]


def test_adapt(settings: MetaSGDSettings, loss, meta, x, y, steps):
    """Test-time adaptation as trained: the learned per-parameter step sizes, for the k steps
    they were learned for. The step sizes are fitted to exactly those k steps (the paper
    evaluates with one step after training with one); taking more with them is outside the
    method, and on sinusoid it diverges. So asking for more than k steps returns φ_k."""
    theta, rates = split(meta)
    return sgd_path(loss, theta, x, y, [min(s, settings.inner_steps) for s in steps], rates)


@register("metasgd", MetaSGDSettings, "Meta-SGD: MAML with learned per-parameter step sizes",
          init=init, model_params=model_params, adapt=test_adapt,
          own_test_steps=lambda settings: settings.inner_steps)
def metasgd(loss, params, task, settings: MetaSGDSettings):
    def query_loss(meta):
        theta, rates = split(meta)
        adapted = adapt(loss, theta, task.support_x, task.support_y, settings.inner_steps,
                        rates, differentiable=True).params
        value = loss(adapted, task.query_x, task.query_y)
        return value, value.detach()

    gradient, value = grad(query_loss, has_aux=True)(params)
    return gradient, {"loss": value}


# The options worth searching (``metazoo tune``): the shared ones; inner_lr is where the
# learned step sizes start, and inner_steps the steps they are learned (and tested) for.
from metazoo.search.space import SHARED

SPACE = SHARED
