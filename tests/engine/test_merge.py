"""A run's options merged in Python as on the command line: stored < preset < file < given,
an algorithm's option under any of its spellings, another algorithm's refused."""

import pytest

from metazoo.engine.merge import merged_config


def test_each_source_overrides_the_ones_before():
    config = merged_config(stored={"algorithm": "imaml", "outer_lr": 0.1, "meta_batch": 3},
                           preset={"outer_lr": 0.2, "meta_batch": 4, "seed": 5},
                           file={"outer_lr": 0.3, "imaml_cg_steps": 7},
                           given={"outer_lr": 0.4})
    assert (config.outer_lr, config.meta_batch, config.seed) == (0.4, 4, 5)
    assert config.algorithm_options["cg_steps"] == 7


def test_a_given_flag_of_an_algorithm_option_wins_over_the_file():
    config = merged_config(file={"algorithm": "imaml", "cg_steps": 7},
                           given={"algorithm:imaml:cg_steps": 9})
    assert config.algorithm_options["cg_steps"] == 9


def test_another_algorithm_s_option_is_refused_wherever_it_comes_from():
    with pytest.raises(ValueError, match="--imaml-cg-steps is an option of imaml, not of maml"):
        merged_config(file={"algorithm": "maml", "imaml_cg_steps": 7})
    with pytest.raises(ValueError, match="unknown option"):
        merged_config(preset={"no_such_option": 1})
