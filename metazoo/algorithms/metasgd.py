"""Meta-SGD (Li, Zhou, Chen & Li, 2017): MAML that also learns its inner step sizes.

Update: ∇(θ, α) L_query(φ), φ = θ − α ∘ Σ_k ∇L_support, with one learned step size per
parameter entry (α has θ's shapes, initialised to ``inner_lr``), both trained by the outer
optimizer; second order through the k steps as in MAML. The step sizes are stored beside θ
under the names ``inner_lr.<parameter>`` and used again at test time.
"""

from __future__ import annotations

from dataclasses import dataclass

from metazoo.algorithms.base import Algorithm, Analysis, Method, Settings, register
from metazoo.space import SHARED

PREFIX = "inner_lr."


def split(params):
    """(model parameters θ, step sizes α keyed like θ)."""
    model = {name: p for name, p in params.items() if not name.startswith(PREFIX)}
    rates = {name[len(PREFIX):]: p for name, p in params.items() if name.startswith(PREFIX)}
    if rates.keys() != model.keys():
        raise ValueError("Meta-SGD needs a step size for every parameter: build its "
                         "meta-parameters with make_method('metasgd').init(params)")
    return model, rates


@dataclass(frozen=True)
class MetaSGDSettings(Settings):
    """Meta-SGD's only hyperparameters are the inner loop's; ``inner_lr`` initialises α."""


def make(settings: MetaSGDSettings) -> Method:
    """Meta-SGD with ``settings``: θ and one learned step size per entry, both trained."""
    import torch

    from metazoo.core import adapt, adapt_path, sgd
    from metazoo.core.autodiff import grad


    def init(params):
        """θ and one step size per parameter entry, each starting at ``inner_lr``."""
        return {**params, **{PREFIX + name: torch.full_like(p, settings.inner_lr)
                             for name, p in params.items()}}, {}

    def meta_gradient(loss, params, state, task):
        def query_loss(meta):
            theta, rates = split(meta)
            adapted = adapt(loss, theta, task.support_x, task.support_y, settings.inner_steps,
                            sgd(rates), differentiable=True).params
            value = loss(adapted, task.query_x, task.query_y)
            return value, value.detach()

        gradient, value = grad(query_loss, has_aux=True)(params)
        return gradient, {"loss": value}, state

    def test_adapt(loss, params, state, x, y, steps):
        """Test-time adaptation as trained: the learned per-parameter step sizes, for the k
        steps they were learned for. The step sizes are fitted to exactly those k steps (the
        paper evaluates with one step after training with one); taking more with them is
        outside the method, and on sinusoid it diverges. So asking for more than k steps
        returns φ_k."""
        theta, rates = split(params)
        return adapt_path(loss, theta, x, y, [min(s, settings.inner_steps) for s in steps],
                          sgd(rates))

    return Method("metasgd", settings, init, meta_gradient, test_adapt,
                  lambda params: split(params)[0], test_steps=settings.inner_steps)


def analysis(settings: MetaSGDSettings) -> Analysis:
    return Analysis(test_rule=f"test steps: the learned step sizes (for {settings.inner_steps})")


# The options worth searching (``metazoo tune``): the shared ones; inner_lr is where the
# learned step sizes start, and inner_steps the steps they are learned (and tested) for.
SPACE = SHARED


register(Algorithm("metasgd", "Meta-SGD: MAML with learned per-parameter step sizes",
                   MetaSGDSettings, make, analysis, space=SPACE))
