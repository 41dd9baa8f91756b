"""metazoo.core.autodiff: plain autograd outside transforms, torch.func inside, same numbers."""

from __future__ import annotations

import torch

from metazoo.core import autodiff


def _params(generator: torch.Generator) -> dict[str, torch.Tensor]:
    return {"w": torch.randn(3, 4, generator=generator, dtype=torch.float64),
            "b": torch.randn(4, generator=generator, dtype=torch.float64),
            "unused": torch.randn(2, generator=generator, dtype=torch.float64)}


def _loss(params, x):
    return (torch.tanh(x @ params["w"] + params["b"]) ** 2).sum()


def _maml_like(grad, grad_and_value):
    """θ ↦ loss at θ − 0.1·∇loss(θ), differentiated through the inner step."""
    def outer(theta, x_support, x_query):
        inner, _ = grad_and_value(_loss)(theta, x_support)
        phi = {n: theta[n] - 0.1 * inner[n] for n in theta}
        value = _loss(phi, x_query)
        return value, value.detach()
    return grad(outer, has_aux=True)


def test_outside_transforms_it_is_autograd_and_matches_torch_func():
    generator = torch.Generator().manual_seed(0)
    params, x, xq = (_params(generator), torch.randn(5, 3, generator=generator,
                     dtype=torch.float64), torch.randn(7, 3, generator=generator,
                     dtype=torch.float64))
    assert not autodiff.inside_transform()
    ours = autodiff.grad(_loss)(params, x)
    reference = torch.func.grad(_loss)(params, x)
    for name in params:
        torch.testing.assert_close(ours[name], reference[name], rtol=1e-12, atol=1e-12)
    assert torch.equal(ours["unused"], torch.zeros(2, dtype=torch.float64))
    assert not any(g.requires_grad for g in ours.values())  # no graph kept without need
    # Second order, nested as MAML nests them.
    ours, ours_value = _maml_like(autodiff.grad, autodiff.grad_and_value)(params, x, xq)
    reference, value = _maml_like(torch.func.grad, torch.func.grad_and_value)(params, x, xq)
    torch.testing.assert_close(ours_value, value, rtol=1e-12, atol=0)
    for name in params:
        torch.testing.assert_close(ours[name], reference[name], rtol=1e-12, atol=1e-12)


def test_inside_a_transform_it_defers_to_torch_func():
    generator = torch.Generator().manual_seed(1)
    params = _params(generator)
    xs = torch.randn(4, 5, 3, generator=generator, dtype=torch.float64)
    seen = []

    def per_task(x):
        seen.append(autodiff.inside_transform())
        return autodiff.grad(_loss)(params, x)

    batched = torch.vmap(per_task)(xs)
    assert seen == [True]
    for index in range(xs.shape[0]):
        one = autodiff.grad(_loss)(params, xs[index])
        for name in params:
            torch.testing.assert_close(batched[name][index], one[name], rtol=1e-12, atol=1e-12)
