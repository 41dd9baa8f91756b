"""Tasks a batch at a time: for every registered family, :func:`sample_batches` gives the
tasks of one ``sample`` call, bit for bit, whatever the batch size, so that evaluating many
held-out tasks a batch at a time scores the same tasks as drawing them all at once.

Families that need data are built from generated files (folder, faces, mini-ImageNet,
arrays, air quality) or the real Omniglot zips (``$METAZOO_OMNIGLOT_DIR``, skipped when
absent).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from metazoo.tasks import TASKS, AirQuality, make_task, sample_batches
from metazoo.tasks import base as tasks_base
from metazoo.tasks import images as images_module
from metazoo.tasks.air_quality import HourIndices
from metazoo.tasks.omniglot import ARCHIVES
from metazoo.tasks.omniglot import data as omniglot_data
from metazoo.tasks.sampler import TaskIndices
from tests.helpers import SHARED_DATA
from tests.tasks.test_air_quality import STATIONS, station_frame, write_station
from tests.tasks.test_image_tasks import fake_mini_imagenet, identity_arrays, make_tree


def _omniglot_root() -> Path | None:
    env = os.environ.get("METAZOO_OMNIGLOT_DIR")
    root = Path(env) if env else SHARED_DATA / "omniglot"
    return root if all((root / a.filename).is_file() for a in ARCHIVES) else None


def _folder(tmp: Path) -> dict:
    return {"data_dir": make_tree(tmp / "birds", {f"class{c:02d}": 6 for c in range(8)}),
            "n_way": 3, "image_size": 8, "k_shot": 2, "query_shots": 2}


def _faces(tmp: Path) -> dict:
    return {"data_dir": make_tree(tmp / "people", {f"s{c}": 5 for c in range(1, 11)}),
            "n_way": 2, "k_shot": 1, "query_shots": 3, "part": "train"}


def _mini_imagenet(tmp: Path) -> dict:
    fake_mini_imagenet(tmp / "mini", tmp / "lists", "images/{filename}")
    return {"data_dir": tmp / "mini", "split_dir": tmp / "lists", "n_way": 3, "k_shot": 1,
            "query_shots": 2, "part": "test"}


def _arrays(tmp: Path) -> dict:
    inputs, labels = identity_arrays([3, 10, 4, 7, 5, 12, 6, 9])
    folder = tmp / "arrays"
    folder.mkdir()
    np.save(folder / "inputs.npy", inputs)
    np.save(folder / "labels.npy", labels)
    return {"data_dir": folder, "n_way": 3, "k_shot": 1, "query_shots": 2, "part": "train",
            "split_fractions": (0.75, 0.0, 0.25)}


def _air_quality(tmp: Path) -> dict:
    folder = tmp / "air"
    folder.mkdir()
    for seed, station in enumerate(STATIONS):
        write_station(folder, station_frame(station, seed))
    return {"root": folder, "stations": STATIONS, "k_shot": 5, "query_shots": 7}


def _omniglot(tmp: Path) -> dict:
    root = _omniglot_root()
    if root is None:
        pytest.skip("Omniglot zips not found: set METAZOO_OMNIGLOT_DIR")
    return {"data_dir": root, "cache_dir": tmp / "omniglot-cache", "download": False,
            "n_way": 5, "k_shot": 1, "query_shots": 3, "part": "test"}


#: Registered family → options of a small one (a function of a scratch folder). A family
#: registered without an entry here fails the test below, so none goes untested.
OPTIONS = {
    "sinusoid": lambda tmp: {"k_shot": 3, "query_shots": 4},
    "linear": lambda tmp: {"dim": 3, "k_shot": 2, "query_shots": 3, "noise": 0.5},
    "omniglot": _omniglot,
    "air-quality": _air_quality,
    "folder": _folder,
    "faces": _faces,
    "mini-imagenet": _mini_imagenet,
    "arrays": _arrays,
}


@pytest.fixture(scope="module")
def family(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(request.param)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("METAZOO_CACHE_DIR", str(tmp / "cache"))  # decoded images stay here
        # Data sets loaded here stay here: other tests load theirs from their own caches.
        patch.setattr(images_module, "_LOADED", {})
        patch.setattr(omniglot_data, "_LOADED", {})
        yield make_task(request.param, **OPTIONS[request.param](tmp))


def batched(family, num_tasks: int, batch_size: int, seed: int) -> list:
    return list(sample_batches(family, num_tasks, batch_size,
                               torch.Generator().manual_seed(seed)))


def assert_same_tasks(family, num_tasks: int, batch_size: int, seed: int) -> None:
    whole = family.sample(num_tasks, torch.Generator().manual_seed(seed))
    batches = batched(family, num_tasks, batch_size, seed)
    assert [batch.num_tasks for batch in batches] == [
        min(batch_size, num_tasks - start) for start in range(0, num_tasks, batch_size)]
    for name, tensor in zip(whole._fields, whole):
        parts = torch.cat([getattr(batch, name) for batch in batches])
        assert parts.dtype == tensor.dtype and torch.equal(parts, tensor), name


def test_every_registered_family_is_covered():
    assert sorted(OPTIONS) == sorted(TASKS)


@pytest.mark.parametrize("family", sorted(TASKS), indirect=True)
def test_batches_are_the_tasks_of_one_draw(family):
    for num_tasks, batch_size in ((7, 3), (12, 4), (5, 5), (3, 8), (1, 1)):
        assert_same_tasks(family, num_tasks, batch_size, seed=num_tasks)


@pytest.mark.parametrize("family", sorted(TASKS), indirect=True)
@settings(max_examples=15, deadline=None)
@given(num_tasks=st.integers(1, 30), batch_size=st.integers(1, 35), seed=st.integers(0, 2**31))
def test_any_batch_size_gives_the_same_tasks(family, num_tasks, batch_size, seed):
    assert_same_tasks(family, num_tasks, batch_size, seed)


def test_indices_are_drawn_at_once_and_examples_a_batch_at_a_time(tmp_path, monkeypatch):
    monkeypatch.setenv("METAZOO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(images_module, "_LOADED", {})
    family = make_task("folder", **_folder(tmp_path))
    gathered = []
    gather = type(family).gather
    monkeypatch.setattr(type(family), "gather", lambda self, indices: gathered.append(
        len(indices.classes)) or gather(self, indices))
    batches = sample_batches(family, 10, 4, torch.Generator().manual_seed(0))
    assert gathered == []  # nothing gathered before a batch is asked for
    assert next(batches).num_tasks == 4 and gathered == [4]
    assert [batch.num_tasks for batch in batches] == [4, 2] and gathered == [4, 4, 2]


@pytest.mark.parametrize(("num_tasks", "batch_size"), [(0, 3), (3, 0), (2, -1)])
def test_counts_are_checked(num_tasks, batch_size):
    with pytest.raises(ValueError, match="must be a positive integer"):
        sample_batches(make_task("sinusoid"), num_tasks, batch_size, torch.Generator())


def one_call_indices(family, num_tasks: int, generator: torch.Generator):
    """The reference: the indices drawn with each random tensor of every task in one call, as
    the samplers drew them before they went a block of tasks at a time."""
    if isinstance(family, AirQuality):
        period = torch.randint(len(family.periods), (num_tasks,), generator=generator)
        keys = torch.rand((num_tasks, int(family.counts.max())), generator=generator)
        keys[torch.arange(keys.shape[1]) >= family.counts[period][:, None]] = 2.0
        chosen = keys.argsort(dim=1)[:, : family.k_shot + family.query_shots]
        return HourIndices(period, family.starts[period][:, None] + chosen)
    tasks, ways, shots, queries = num_tasks, family.n_way, family.k_shot, family.query_shots
    picked = torch.rand((tasks, len(family.pool)), generator=generator).topk(ways).indices
    classes = family.pool[picked]
    available = family.examples.counts[classes[..., 0]]
    most = int(family.examples.counts[family.pool[:, 0]].max())
    keys = torch.rand((tasks, ways, most), generator=generator)
    keys.masked_fill_(torch.arange(most) >= available[..., None], 2.0)
    drawn = keys.argsort(dim=-1)[..., : shots + queries]
    support_y = torch.rand((tasks, shots, ways), generator=generator).argsort(dim=-1)
    query_y = torch.rand((tasks, queries, ways), generator=generator).argsort(dim=-1)
    task = torch.arange(tasks)[:, None, None]
    support = drawn[task, support_y, torch.arange(shots)[None, :, None]]
    query = drawn[task, query_y, shots + torch.arange(queries)[None, :, None]]
    return TaskIndices(classes[..., 0], classes[..., 1], support.reshape(tasks, -1),
                       support_y.reshape(tasks, -1), query.reshape(tasks, -1),
                       query_y.reshape(tasks, -1))


DRAW_INDICES = sorted(name for name in TASKS if name not in ("sinusoid", "linear"))


@pytest.mark.parametrize("family", DRAW_INDICES, indirect=True)
@pytest.mark.parametrize(("num_tasks", "block"), [(40, 7), (3, 1), (2100, tasks_base.BLOCK)])
def test_indices_drawn_a_block_of_tasks_at_a_time_are_those_of_one_call(family, num_tasks,
                                                                        block, monkeypatch):
    monkeypatch.setattr(tasks_base, "BLOCK", block)
    drawn = family.sample_indices(num_tasks, torch.Generator().manual_seed(num_tasks))
    expected = one_call_indices(family, num_tasks, torch.Generator().manual_seed(num_tasks))
    assert type(drawn) is type(expected)
    for name, tensor in zip(expected._fields, expected):
        assert torch.equal(getattr(drawn, name), tensor), name
