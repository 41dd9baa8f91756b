"""Fixtures of the search tests (defined in :mod:`tests.search.helpers`)."""

from tests.search.helpers import parted_task, still_method

__all__ = ["parted_task", "still_method"]
