"""ANIL, "almost no inner loop" (Raghu, Raghu, Bengio & Vinyals, ICLR 2020).

Update: ∇θ L_query(θ_body, φ_head(θ)), where the k inner steps adapt only the head (the
final layer) and the body is reused as it is; second order through the head's steps. The
standard probe of feature reuse versus rapid learning: if ANIL matches MAML, adaptation
mostly re-reads the features rather than changing them.
"""

from __future__ import annotations

from dataclasses import dataclass

from metazoo.algorithms.base import Settings, option, register, sgd_path
from metazoo.core import adapt
from metazoo.core.autodiff import grad


@dataclass(frozen=True)
class ANILSettings(Settings):
    # Five inner steps by default: trained with one, ANIL's θ makes that one head step so
    # large that further test steps diverge on some sinusoid tasks (loss 0.45 after 5 steps,
    # 0.60 ± 0.35 after 10; with five: 0.23 after 10, results/sinusoid.md).
    inner_steps: int = option(5, "inner steps k per task while meta-training (the head's)")
    head: str = option("", "name prefix of the adapted head's parameters (empty: the last layer)",
                       formerly="anil_head")

    def head_names(self, params) -> list[str]:
        """Names of the head's parameters (those of the last layer by default)."""
        names = list(params)
        prefix = self.head or names[-1].rpartition(".")[0]
        if prefix:
            head = [name for name in names if name.startswith(prefix + ".") or name == prefix]
        else:  # the last parameter belongs to the top module: its own parameters are the head
            head = [name for name in names if "." not in name]
        if not head:
            raise ValueError(f"head {prefix!r} is the prefix of no parameter name; "
                             f"names are: {', '.join(names)}")
        return head


def init(settings: ANILSettings, params):
    """θ itself; the head must name some of its parameters (checked before training)."""
    settings.head_names(params)
    return params


def test_adapt(settings: ANILSettings, loss, meta, x, y, steps):
    """Test-time adaptation of the head alone (step size 0 keeps the body fixed)."""
    head = set(settings.head_names(meta))
    rates = {name: (settings.inner_lr if name in head else 0.0) for name in meta}
    return sgd_path(loss, meta, x, y, steps, rates)


@register("anil", ANILSettings, "ANIL: MAML whose inner loop adapts only the head",
          init=init, adapt=test_adapt)
def anil(loss, params, task, settings: ANILSettings):
    head = settings.head_names(params)

    def query_loss(theta):
        body = {name: p for name, p in theta.items() if name not in head}

        def head_loss(head_params, x, y):
            return loss({**body, **head_params}, x, y)

        adapted = adapt(head_loss, {name: theta[name] for name in head}, task.support_x,
                        task.support_y, settings.inner_steps, settings.inner_lr,
                        differentiable=True).params
        value = loss({**body, **adapted}, task.query_x, task.query_y)
        return value, value.detach()

    gradient, value = grad(query_loss, has_aux=True)(params)
    return gradient, {"loss": value}


# The options worth searching (``metazoo tune``): the shared ones, each range with its reason
# (the head is a choice of architecture, not a setting to search).
from metazoo.search.space import SHARED

SPACE = SHARED
