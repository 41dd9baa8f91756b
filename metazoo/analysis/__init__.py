"""Analysis: what each meta-gradient buys. Inner-path geometry, fidelity of approximate
meta-gradients to MAML's, and the split of post-adaptation loss into starting loss and
adaptation gain. Everything adapts through :func:`metazoo.core.adapt`.

Modules by job: ``grid`` (the resumable runner of named training runs, used by ``compare``
and the benchmarks, and the names of the compare grid), ``config`` (compare's options),
``compare`` (its folder and report), ``sections`` (one module per report section: numbers and
statements), ``report`` (the one writer: figures, Markdown, HTML, JSON), ``methods`` (what only
the analysis reads of the registry), ``metrics`` (paths, fidelity), ``cost`` (time and memory),
``toy`` (the drawable picture). Statistics are :mod:`metazoo.stats`.
"""
