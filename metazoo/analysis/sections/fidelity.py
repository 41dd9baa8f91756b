"""Section 4: cosine and norm ratio of approximate meta-gradients to the exact one they
estimate, at the same θ and tasks: every compared method whose registry entry approximates
the exact method, in each of its own variants."""

from __future__ import annotations

from pathlib import Path

from torch.func import vmap

from metazoo.analysis import report as rpt
from metazoo.analysis.config import CompareConfig
from metazoo.analysis.grid import RUNS, run_name
from metazoo.analysis.methods import approximations, fidelity_variants
from metazoo.analysis.metrics import fidelity
from metazoo.analysis.sections import analysis_tasks
from metazoo.engine import rebuild_run
from metazoo.models import initial_params
from metazoo.stats import mean_ci


def sources(config: CompareConfig) -> list[str]:
    """The exact methods that some compared method approximates, one section each."""
    return list(dict.fromkeys(exact for exact, _ in approximations(config.algorithms)))


def measure_fidelity(config: CompareConfig, out: Path, source: str) -> list[tuple]:
    """``(where, estimator label, k, cosine (mean, half-width), norm ratio (mean,
    half-width))`` at θ₀ and at the trained θ of ``source``, for every estimator and k."""
    setup, params, _, _ = rebuild_run(out / RUNS / run_name(source, config.train_steps[0],
                                                            config.seeds[0]))
    params = setup.method.model_params(params)
    start = {n: p.to(params[n]) for n, p in initial_params(setup.model).items()}
    tasks = analysis_tasks(setup, config)
    estimators = [name for exact, name in approximations(config.algorithms) if exact == source]
    found = []
    for where, theta in (("θ₀ (initialisation)", start), (f"trained {source} θ", params)):
        for name in estimators:
            for k in config.fidelity_steps:
                # The exact gradient with the same k and α as the estimate it judges.
                exact, variants = fidelity_variants(name, source, k, config.inner_lr,
                                                    config.algorithm_options)
                for label, variant in variants.items():
                    values = vmap(lambda task, m=variant, e=exact, t=theta: fidelity(
                        setup.loss, t, task, m, e))(tasks)
                    found.append((where, label, k, mean_ci(values["cosine"]),
                                  mean_ci(values["norm_ratio"])))
    return found


def blocks(config: CompareConfig, out: Path, source: str) -> list:
    blocks: list = [rpt.heading(f"4. How faithful is each cheap meta-gradient to {source}'s?")]
    rows, curves, labels = [], {}, []
    for where, label, k, cosine, ratio in measure_fidelity(config, out, source):
        rows.append([where, label, str(k), rpt.fmt(*cosine), rpt.fmt(*ratio)])
        curves.setdefault((label, where), []).append(cosine[0])
        if label not in labels:
            labels.append(label)
    blocks += [rpt.paragraph(
        f"Cosine and norm ratio of each approximate meta-gradient to the exact {source} "
        f"meta-gradient with the same k and α, on {config.analysis_tasks} "
        "held-out tasks (mean ± 95% CI). Each method's direction is first expressed as a "
        "gradient estimate by its own registry entry (Reptile's θ − φ is divided by k·α), and "
        "each method is measured in the variants its entry lists (e.g. iMAML over λ and CG "
        "steps). iMAML solves its own regularised inner problem, so it is exact only in the "
        "limit of a converged inner solve and small H/λ."),
        rpt.table(["θ", "estimator", "k", f"cosine to {source}", "norm ratio"], rows)]
    trained = f"trained {source} θ"
    blocks.append(rpt.line_figure(
        f"q4_fidelity_{source}.png", f"Fidelity against k at the {trained}.",
        config.fidelity_steps, {label: curves[(label, trained)] for label in labels},
        xlabel="inner steps k", ylabel=f"cosine to exact {source} gradient"))
    statements = []
    for label in labels:
        values = curves[(label, trained)]
        statements.append(f"{label}: cosine to {source}'s meta-gradient {values[0]:.3f} at k = "
                          f"{config.fidelity_steps[0]}, {values[-1]:.3f} at k = "
                          f"{config.fidelity_steps[-1]}.")
    blocks.append(rpt.bullets(statements))
    return blocks
