"""ANIL, "almost no inner loop" (Raghu, Raghu, Bengio & Vinyals, ICLR 2020).

Update: ∇θ L_query(θ_body, φ_head(θ)), where the k inner steps adapt only the head (the
final layer) and the body is reused as it is; second order through the head's steps. The
standard probe of feature reuse versus rapid learning: if ANIL matches MAML, adaptation
mostly re-reads the features rather than changing them.
"""

from __future__ import annotations

from dataclasses import dataclass

from metazoo.algorithms.base import Algorithm, Method, Settings, model_itself, register
from metazoo.options import option
from metazoo.space import SHARED


@dataclass(frozen=True)
class ANILSettings(Settings):
    # Five inner steps by default: trained with one, ANIL's head steps diverge at test time on
    # some sinusoid tasks (results/sinusoid.md).
    inner_steps: int = option(5, "inner steps k per task while meta-training (the head's)")
    head: str = option("", "name prefix of the adapted head's parameters (empty: the last layer)",
                       formerly="anil_head")


def head_names(settings: ANILSettings, params) -> list[str]:
    """Names of the head's parameters (those of the last layer by default)."""
    names = list(params)
    prefix = settings.head or names[-1].rpartition(".")[0]
    if prefix:
        head = [name for name in names if name.startswith(prefix + ".") or name == prefix]
    else:  # the last parameter belongs to the top module: its own parameters are the head
        head = [name for name in names if "." not in name]
    if not head:
        raise ValueError(f"head {prefix!r} is the prefix of no parameter name; "
                         f"names are: {', '.join(names)}")
    return head


def make(settings: ANILSettings) -> Method:
    """ANIL with ``settings``: MAML whose inner steps adapt the head alone."""
    from metazoo.core import adapt, adapt_path, sgd
    from metazoo.core.autodiff import grad

    optimizer = sgd(settings.inner_lr)

    def init(params):
        """θ itself; the head must name some of its parameters (checked before training)."""
        head_names(settings, params)
        return params, {}

    def meta_gradient(loss, params, state, task):
        head = head_names(settings, params)

        def query_loss(theta):
            body = {name: p for name, p in theta.items() if name not in head}

            def head_loss(head_params, x, y):
                return loss({**body, **head_params}, x, y)

            adapted = adapt(head_loss, {name: theta[name] for name in head}, task.support_x,
                            task.support_y, settings.inner_steps, optimizer,
                            differentiable=True).params
            value = loss({**body, **adapted}, task.query_x, task.query_y)
            return value, value.detach()

        gradient, value = grad(query_loss, has_aux=True)(params)
        return gradient, {"loss": value}, state

    def test_adapt(loss, params, state, x, y, steps):
        """Test-time adaptation of the head alone (step size 0 keeps the body fixed)."""
        head = set(head_names(settings, params))
        rates = {name: (settings.inner_lr if name in head else 0.0) for name in params}
        return adapt_path(loss, params, x, y, steps, sgd(rates))

    return Method("anil", settings, init, meta_gradient, test_adapt, model_itself)


# The options worth searching (``metazoo tune``): the shared ones, each range with its reason
# (the head is a choice of architecture, not a setting to search).
SPACE = SHARED


register(Algorithm("anil", "ANIL: MAML whose inner loop adapts only the head", ANILSettings,
                   make, space=SPACE))
