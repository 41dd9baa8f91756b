"""metazoo: gradient-based meta-learning on one verified, vectorised functional core.

``metazoo.load_run(DIR)`` reads a trained run back for adaptation and prediction
(:mod:`metazoo.predict`); it is imported on first use, so ``import metazoo`` stays light.
"""

from metazoo._version import __version__

__all__ = ["__version__", "load_run"]


def __getattr__(name: str):
    if name == "load_run":
        from metazoo.predict import load_run

        return load_run
    raise AttributeError(f"module 'metazoo' has no attribute {name!r}")
