"""Reptile (Nichol, Achiam & Schulman, 2018, "On First-Order Meta-Learning Algorithms").

Update direction: θ − φ, with φ after k inner steps on the task's data. Fed to plain SGD with
step ε this is the paper's θ ← θ + ε(φ − θ) (batched version, averaged over tasks; anneal ε
with an SGD outer optimizer and a linear schedule). Adam is invariant to its scale, so the
direction can also be given to Adam. Reptile makes no support/query distinction: by default
the inner steps use all of a task's examples (with k = 1 the direction is then exactly
α·∇L(θ; support ∪ query), joint training's).

Its own protocol (openai/supervised-reptile): the inner optimizer is Adam with β₁ = 0
(``inner_optimizer="adam"``), the inner steps take mini-batches in one pass over the task's
data (``inner_batch``), and test-time adaptation uses the same optimizer with its own batch
size (``test_batch``). One departure, forced by vectorising over tasks: the reference keeps
Adam's second moment across tasks (only the weights are restored after each task); here it
starts at zero for every task, so the first step of each task is α·sign(g) and later steps are
normalised by that task's own gradients. A second: the reference reshuffles a task's examples
before batching; here batches follow the sampler's order, which is already random (for
classification, shot by shot in a random label order, so a batch holds every class equally).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from metazoo.algorithms.base import Settings, option, positive_int, register, sgd_path
from metazoo.core import adapt, tree_detach, tree_sub


@dataclass(frozen=True)
class ReptileSettings(Settings):
    # With k = 1 Reptile's direction is joint training's (see the module docstring): its own
    # protocol takes several steps. On sinusoid, 5 SGD steps of 0.02 over the task's data
    # (the step size of the paper's sinusoid code) learn (results/sinusoid.md).
    inner_steps: int = option(5, "inner steps k per task while meta-training")
    inner_lr: float = option(0.02, "inner step size α")
    data: str = option("all", "data of the inner steps: 'all' (support ∪ query) or 'support'",
                       formerly="reptile_data")
    inner_optimizer: str = option(
        "sgd", "inner optimizer: 'sgd', or 'adam' (Adam with β1 = 0, the reference's; its second "
        "moment starts at 0 for every task)")
    beta2: float = option(0.999, "β2 of the inner Adam")
    inner_batch: int = option(0, "examples per inner step (0: all of the task's data each step)")
    test_batch: int = option(0, "examples per test-time step (0: the whole support set)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.data not in ("all", "support"):
            raise ValueError(f"data must be 'all' or 'support', got {self.data!r}")
        if self.inner_optimizer not in ("sgd", "adam"):
            raise ValueError(f"inner_optimizer must be 'sgd' or 'adam', got {self.inner_optimizer!r}")
        if not 0 < self.beta2 < 1:
            raise ValueError(f"beta2 must be in (0, 1), got {self.beta2!r}")
        positive_int("inner_batch", self.inner_batch, minimum=0)
        positive_int("test_batch", self.test_batch, minimum=0)

    def optimizer(self, batch: int) -> dict:
        """``adapt``'s options for this inner optimizer with ``batch`` examples per step."""
        return {"batch_size": batch, "rms_decay": self.beta2 if self.inner_optimizer == "adam"
                else 0.0}


def test_adapt(settings: ReptileSettings, loss, meta, x, y, steps):
    """Test-time adaptation with Reptile's own inner optimizer and ``test_batch``."""
    return sgd_path(loss, meta, x, y, steps, settings.inner_lr,
                    **settings.optimizer(settings.test_batch))


def as_gradient(settings: ReptileSettings, direction):
    """θ − φ over kα: with k = 1 (and the same data) exactly the gradient at θ."""
    scale = settings.inner_steps * settings.inner_lr
    return {name: d / scale for name, d in direction.items()} if scale else direction


def variants(settings: ReptileSettings):
    """Fidelity to MAML's support → query meta-gradient: Reptile on the support set only."""
    return {"reptile (support)": dataclasses.replace(settings, data="support")}


@register("reptile", ReptileSettings, "Reptile: move θ toward φ after k steps (θ − φ)",
          adapt=test_adapt, as_gradient=as_gradient, variants=variants, approximates="maml")
def reptile(loss, params, task, settings: ReptileSettings):
    if settings.data == "all":
        x = torch.cat([task.support_x, task.query_x])  # [S+Q, ...]
        y = torch.cat([task.support_y, task.query_y])
    else:
        x, y = task.support_x, task.support_y
    theta = tree_detach(params)
    # The logged loss is the inner objective where the last step began (the loss at θ when
    # k = 1): a by-product of the steps. The loss at φ itself would cost one more forward
    # pass over all of the task's data, a third of the work of a step.
    adapted = adapt(loss, theta, x, y, settings.inner_steps, settings.inner_lr,
                    **settings.optimizer(settings.inner_batch))
    last = adapted.losses[-1] if settings.inner_steps else loss(theta, x, y).detach()
    return tree_sub(theta, adapted.params), {"loss": last}
