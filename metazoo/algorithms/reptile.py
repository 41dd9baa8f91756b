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
size (``test_batch``). The reference keeps Adam's state across tasks (only the weights are
restored after each task) and into evaluation; ``carry_moment`` does the same in the closest
form that vectorises over tasks: the second moment v and Adam's step count are carried state of
the run (meta-parameters ``inner_rms.<name>`` and ``inner_rms_steps``, checkpointed, not
trained). Every task of a meta-batch starts from the carried v, and the carried v becomes the
mean of the tasks' final ones; the reference instead passes v from one task to the next within
the batch. Evaluation adapts from the carried v, as the reference does. Without
``carry_moment`` v starts at zero for every task, so the first step of each task is α·sign(g).
One departure remains: the reference reshuffles a task's examples before batching; here
batches follow the sampler's order, which is already random (for classification, shot by shot
in a random label order, so a batch holds every class equally).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from metazoo.algorithms.base import (
    Algorithm,
    Analysis,
    Method,
    Settings,
    model_itself,
    register,
    sgd_rule,
)
from metazoo.options import option, positive_int
from metazoo.space import SHARED, Choice, When


@dataclass(frozen=True)
class ReptileSettings(Settings):
    # With k = 1 Reptile's direction is joint training's (see the module docstring): its own
    # protocol takes several steps; the sinusoid defaults are the step size of the paper's
    # sinusoid code (results/sinusoid.md).
    inner_steps: int = option(5, "inner steps k per task while meta-training")
    inner_lr: float = option(0.02, "inner step size α")
    data: str = option("all", "data of the inner steps: 'all' (support ∪ query) or 'support'",
                       formerly="reptile_data")
    inner_optimizer: str = option(
        "sgd", "inner optimizer: 'sgd', or 'adam' (Adam with β1 = 0, the reference's; its second "
        "moment starts at 0 for every task)")
    beta2: float = option(0.999, "β2 of the inner Adam")
    carry_moment: bool = option(
        False, "carry the inner Adam's second moment across tasks and into evaluation, as the "
        "reference does (every task of a meta-batch starts from the carried moment, which then "
        "becomes the mean of theirs); off: it starts at 0 for every task")
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
        if self.carry_moment and self.inner_optimizer != "adam":
            raise ValueError("carry_moment needs inner_optimizer 'adam' (plain SGD has no "
                             "moment to carry)")


#: The carried state's keys: the inner Adam's second moment (keyed like θ) and its step count.
MOMENT, STEPS = "inner_rms", "inner_rms_steps"


def make(settings: ReptileSettings) -> Method:
    """Reptile with ``settings``: the direction θ − φ, and the inner Adam's carried state."""
    import torch

    from metazoo.core import RMSState, adapt, adapt_path, rms, sgd, tree_detach, tree_sub

    adam = settings.inner_optimizer == "adam"
    optimizer = rms(settings.inner_lr, settings.beta2) if adam else sgd(settings.inner_lr)

    def init(params):
        """θ, and with ``carry_moment`` the inner Adam's state: v = 0 per parameter, 0 steps."""
        if not settings.carry_moment:
            return params, {}
        first = next(iter(params.values()))
        return params, {MOMENT: {name: torch.zeros_like(p) for name, p in params.items()},
                        STEPS: first.new_zeros(())}

    def start(state):
        """The inner optimizer's state to start a task from: the carried one, or fresh."""
        return RMSState(state[MOMENT], state[STEPS]) if state else None

    def meta_gradient(loss, params, state, task):
        if settings.data == "all":
            x = torch.cat([task.support_x, task.query_x])  # [S+Q, ...]
            y = torch.cat([task.support_y, task.query_y])
        else:
            x, y = task.support_x, task.support_y
        theta = tree_detach(params)
        # The logged loss is the inner objective where the last step began (the loss at θ
        # when k = 1): a by-product of the steps. The loss at φ itself would cost one more
        # forward pass over all of the task's data, a third of the work of a step.
        adapted = adapt(loss, theta, x, y, settings.inner_steps, optimizer, state=start(state),
                        batch_size=settings.inner_batch)
        last = adapted.losses[-1] if settings.inner_steps else loss(theta, x, y).detach()
        if state:  # the engine keeps the batch's mean of the tasks' final Adam states
            state = {MOMENT: {name: v.detach() for name, v in adapted.state.second.items()},
                     STEPS: state[STEPS].detach() + settings.inner_steps}
        return tree_sub(theta, adapted.params), {"loss": last}, state

    def test_adapt(loss, params, state, x, y, steps):
        """Test-time adaptation with Reptile's own inner optimizer and ``test_batch``, from
        the carried Adam state when there is one."""
        return adapt_path(loss, params, x, y, steps, optimizer, state=start(state),
                          batch_size=settings.test_batch)

    return Method("reptile", settings, init, meta_gradient, test_adapt, model_itself)


def analysis(settings: ReptileSettings) -> Analysis:
    """Reptile's θ − φ over kα as a gradient (with k = 1 and the same data exactly the gradient
    at θ); its fidelity to MAML's support → query meta-gradient, on the support set only."""
    scale = settings.inner_steps * settings.inner_lr

    def as_gradient(direction):
        return {name: d / scale for name, d in direction.items()} if scale else direction

    rule = (f"test steps: Adam (β1 = 0), step size {settings.inner_lr:g}"
            if settings.inner_optimizer == "adam" else sgd_rule(settings))
    return Analysis(test_rule=rule, approximates="maml",
                    variants={"reptile (support)": dataclasses.replace(settings, data="support")},
                    as_gradient=as_gradient)


# The options worth searching (``metazoo tune``), each range with its reason.
SPACE = SHARED + (
    Choice("inner_optimizer", ("sgd", "adam"),
           why="plain SGD in the reference's sinusoid code, Adam (β1 = 0) in its Omniglot code"),
    Choice("carry_moment", (False, True), when=When({"inner_optimizer": ("adam",)}),
           otherwise=False,
           why="the reference carries Adam's state across tasks: 92.2% against 77.2% with it "
               "reset on Omniglot (results/omniglot.md)"),
    Choice("data", ("all", "support"),
           why="the paper steps on all of a task's data; 'support' is what a test task has"),
)


register(Algorithm("reptile", "Reptile: move θ toward φ after k steps (θ − φ)", ReptileSettings,
                   make, analysis, space=SPACE))
