"""metazoo's version, in a module of its own: what records it (a checkpoint) imports only
this, never the package's ``__init__``."""

__version__ = "0.1.0"
