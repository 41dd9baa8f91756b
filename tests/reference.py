"""The plain reference the tests trust: the usual way of writing these algorithms in PyTorch,
written plainly: a Python loop over the tasks of a meta-batch, inner steps with
``torch.autograd.grad`` on a list of parameters (``create_graph=True`` for second-order MAML),
the query losses of all tasks summed, then one backward pass / an optimizer step. It is the
independent check of the library's numbers (``tests/algorithms/test_baseline_agreement.py``)
and the speed baseline of ``benchmarks/bench.py``; the package never imports it.

Reptile's update is not the gradient of a loss, and iMAML's is solved task by task, so those
two sum per-task updates instead.
"""

from __future__ import annotations

import torch
from torch.func import functional_call


class Baseline:
    """One meta-iteration of ``algorithm`` in the plain style, on ``model``'s parameters.

    Each method is a Python method of this class named after the algorithm; those listed in
    ``SUMMED_UPDATES`` return a per-task update, the others (query loss, what it is
    differentiated with respect to).
    """

    SUMMED_UPDATES = frozenset({"reptile", "imaml"})

    def __init__(self, algorithm: str, model: torch.nn.Module, loss: str, settings) -> None:
        self.algorithm, self.model, self.settings = algorithm, model, settings
        self.names = [name for name, _ in model.named_parameters()]
        self.criterion = (torch.nn.functional.cross_entropy if loss == "cross_entropy"
                          else lambda out, y: ((out - y) ** 2).mean())

    def loss(self, weights, x, y):
        return self.criterion(functional_call(self.model, dict(zip(self.names, weights)), (x,)), y)

    def meta_gradient(self, params: list[torch.Tensor], batch) -> list[torch.Tensor]:
        """Mean meta-gradient over the batch (a list aligned with ``params``)."""
        method = getattr(self, self.algorithm)
        if self.algorithm in self.SUMMED_UPDATES:
            total = [torch.zeros_like(p) for p in params]
            for index in range(batch.num_tasks):
                total = [t + g for t, g in zip(total, method(params, batch.task(index)))]
            return [t / batch.num_tasks for t in total]
        theta = [p.detach().requires_grad_() for p in params]
        meta_loss, leaves = 0.0, []
        for index in range(batch.num_tasks):
            query_loss, wrt = method(theta, batch.task(index))
            meta_loss = meta_loss + query_loss
            leaves.append(wrt)
        if all(wrt is theta for wrt in leaves):
            return list(torch.autograd.grad(meta_loss / batch.num_tasks, theta))
        # First-order MAML: each task's gradient is taken at its own adapted weights.
        grads = torch.autograd.grad(meta_loss / batch.num_tasks, [w for wrt in leaves for w in wrt])
        return [sum(grads[i::len(params)]) for i in range(len(params))]

    def _sgd(self, weights, x, y, create_graph=False, anchor=None, rates=None):
        s = self.settings
        rates = rates or [s.inner_lr] * len(weights)
        for _ in range(s.inner_steps):
            value = self.loss(weights, x, y)
            if anchor is not None:
                value = value + 0.5 * s.lam * sum(
                    ((w - a) ** 2).sum() for w, a in zip(weights, anchor))
            grads = torch.autograd.grad(value, weights, create_graph=create_graph)
            weights = [w - r * g for w, r, g in zip(weights, rates, grads)]
            if not create_graph:
                weights = [w.detach().requires_grad_() for w in weights]
        return weights

    # maml, fomaml, joint, anil, metasgd: (this task's query loss, what it is differentiated
    # with respect to); ``theta`` is shared by all tasks of the batch.

    def maml(self, theta, task):
        fast = self._sgd(theta, task.support_x, task.support_y, create_graph=True)
        return self.loss(fast, task.query_x, task.query_y), theta

    def fomaml(self, theta, task):
        fast = self._sgd([p.detach().requires_grad_() for p in theta],
                         task.support_x, task.support_y)
        return self.loss(fast, task.query_x, task.query_y), fast

    def reptile(self, params, task):
        x = torch.cat([task.support_x, task.query_x])
        y = torch.cat([task.support_y, task.query_y])
        fast = self._sgd([p.detach().requires_grad_() for p in params], x, y)
        return [p.detach() - f.detach() for p, f in zip(params, fast)]

    def joint(self, theta, task):
        x = torch.cat([task.support_x, task.query_x])
        y = torch.cat([task.support_y, task.query_y])
        return self.loss(theta, x, y), theta

    def anil(self, theta, task):
        head = [i for i, n in enumerate(self.names)
                if n.rpartition(".")[0] == self.names[-1].rpartition(".")[0]]
        fast = list(theta)
        for _ in range(self.settings.inner_steps):
            value = self.loss(fast, task.support_x, task.support_y)
            grads = torch.autograd.grad(value, [fast[i] for i in head], create_graph=True)
            for i, g in zip(head, grads):
                fast[i] = fast[i] - self.settings.inner_lr * g
        return self.loss(fast, task.query_x, task.query_y), theta

    def metasgd(self, meta, task):
        # meta: θ then α, in the model's parameter order.
        theta, rates = meta[: len(self.names)], meta[len(self.names):]
        fast = self._sgd(theta, task.support_x, task.support_y, create_graph=True, rates=rates)
        return self.loss(fast, task.query_x, task.query_y), meta

    def _newton(self, weights, x, y, anchor):
        """iMAML's Hessian-free inner solver written plainly: per Newton step, Steihaug's CG
        on (H + λI) d = −∇G within ‖d‖ ≤ ‖∇G‖/λ (stopping with ``break``), then
        backtracking from the full step until Armijo's condition holds."""
        s = self.settings

        def objective(w):
            return self.loss(w, x, y) + 0.5 * s.lam * sum(((a - b) ** 2).sum()
                                                          for a, b in zip(w, anchor))

        def dot(u, v):
            return sum((a * b).sum() for a, b in zip(u, v))

        weights = [w.detach() for w in weights]
        for _ in range(s.inner_steps):
            w = [a.requires_grad_() for a in weights]
            value = objective(w)
            grads = torch.autograd.grad(value, w, create_graph=True)
            g = [a.detach() for a in grads]
            radius = dot(g, g).sqrt() / s.lam
            d = [torch.zeros_like(a) for a in g]
            r = [-a for a in g]
            p = [a.clone() for a in r]
            rr = dot(r, r)
            for _ in range(s.solver_cg_steps):
                hp = [a.detach() for a in torch.autograd.grad(grads, w, grad_outputs=p,
                                                               retain_graph=True)]
                curvature = dot(p, hp)
                dp, pp, room = dot(d, p), dot(p, p), radius ** 2 - dot(d, d)
                to_boundary = ((dp ** 2 + pp * room.clamp_min(0)).sqrt() - dp) / pp
                if curvature <= 0 or rr / curvature >= to_boundary:
                    d = [a + to_boundary * b for a, b in zip(d, p)]
                    break
                step = rr / curvature
                d = [a + step * b for a, b in zip(d, p)]
                r = [a - step * b for a, b in zip(r, hp)]
                new_rr = dot(r, r)
                p = [a + (new_rr / rr) * b for a, b in zip(r, p)]
                rr = new_rr
            slope, value = dot(g, d), value.detach()
            weights = [a.detach() for a in w]
            for length in [0.5 ** i for i in range(8)]:
                trial = [a + length * b for a, b in zip(weights, d)]
                with torch.no_grad():
                    if objective(trial) <= value + 1e-4 * length * slope:
                        weights = trial
                        break
        return [w.detach().requires_grad_() for w in weights]

    def imaml(self, params, task):
        s = self.settings
        anchor = [p.detach() for p in params]
        if getattr(s, "inner_solver", "gd") == "newton":
            fast = self._newton(params, task.support_x, task.support_y, anchor)
        else:
            fast = self._sgd([p.detach().requires_grad_() for p in params],
                             task.support_x, task.support_y, anchor=anchor)
        query = torch.autograd.grad(self.loss(fast, task.query_x, task.query_y), fast)
        support = torch.autograd.grad(self.loss(fast, task.support_x, task.support_y), fast,
                                      create_graph=True)

        def operator(v):
            hv = torch.autograd.grad(support, fast, grad_outputs=v, retain_graph=True)
            return [(1 + s.cg_damping) * a + h / s.lam for a, h in zip(v, hv)]

        # Conjugate gradient from x = 0, a fixed number of steps.
        x = [torch.zeros_like(q) for q in query]
        r = [q.clone() for q in query]
        d = [q.clone() for q in query]
        rr = sum((a * a).sum() for a in r)
        for _ in range(s.cg_steps):
            ad = operator(d)
            step = rr / sum((a * b).sum() for a, b in zip(d, ad))
            x = [a + step * b for a, b in zip(x, d)]
            r = [a - step * b for a, b in zip(r, ad)]
            new_rr = sum((a * a).sum() for a in r)
            d = [a + (new_rr / rr) * b for a, b in zip(r, d)]
            rr = new_rr
        return [a.detach() for a in x]
