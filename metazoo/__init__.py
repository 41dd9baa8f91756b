"""metazoo: gradient-based meta-learning on one verified, vectorised functional core."""

__version__ = "0.1.0"
