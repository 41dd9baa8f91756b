"""Hyperparameter search (``metazoo tune``): spaces, studies, trials and their report."""
