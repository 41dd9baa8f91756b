"""Analysis: what each meta-gradient buys. Inner-path geometry, fidelity of approximate
meta-gradients to MAML's, and the split of post-adaptation loss into starting loss and
adaptation gain. Everything adapts through :func:`metazoo.core.adapt`."""
