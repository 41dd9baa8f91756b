"""ANIL, "almost no inner loop" (Raghu, Raghu, Bengio & Vinyals, ICLR 2020).

Update: ∇θ L_query(θ_body, φ_head(θ)), where the k inner steps adapt only the head (the
final layer) and the body is reused as it is; second order through the head's steps. The
standard probe of feature reuse versus rapid learning: if ANIL matches MAML, adaptation
mostly re-reads the features rather than changing them.
"""

from __future__ import annotations

from dataclasses import dataclass

from metazoo.algorithms.base import InnerLoop, option, register
from metazoo.core import adapt
from metazoo.core.autodiff import grad


@dataclass(frozen=True)
class ANILSettings(InnerLoop):
    anil_head: str = option(
        "", "ANIL: name prefix of the adapted head's parameters (empty: the last layer)")

    def head(self, params) -> list[str]:
        """Names of the head's parameters (those of the last layer by default)."""
        names = list(params)
        prefix = self.anil_head or names[-1].rpartition(".")[0]
        if prefix:
            head = [name for name in names if name.startswith(prefix + ".") or name == prefix]
        else:  # the last parameter belongs to the top module: its own parameters are the head
            head = [name for name in names if "." not in name]
        if not head:
            raise ValueError(f"no parameter name starts with --anil-head {prefix!r}; "
                             f"names are: {', '.join(names)}")
        return head

    def test_time(self, params):
        head = set(self.head(params))
        return params, {name: (self.inner_lr if name in head else 0.0) for name in params}


@register("anil", ANILSettings, "ANIL: MAML whose inner loop adapts only the head")
def anil(loss, params, task, settings: ANILSettings):
    head = settings.head(params)

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
