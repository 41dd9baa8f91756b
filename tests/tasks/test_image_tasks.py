"""Generic few-shot classification: the shared sampler, class splits, the decoded-image cache,
image folders, faces, arrays and mini-ImageNet.

Image folders here are generated: tiny JPEGs written by Pillow into ``tmp_path`` (no image
data set ships with the tests). The faces test reads the ORL folder from
``$METAZOO_FACES_DIR`` (default: the shared data folder beside the repository) and skips
when it is not there.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from metazoo.models import make_model
from metazoo.tasks import (
    ArrayTasks,
    ClassData,
    DataError,
    Faces,
    ImageFolderTasks,
    MiniImageNet,
    array_tasks,
    make_task,
)
from metazoo.tasks import images as images_module
from metazoo.tasks.cache import FORMAT, cache_file, load_cached, save_cached
from metazoo.tasks.images import decode_files
from metazoo.tasks.mini_imagenet import read_lists, shipped_lists
from metazoo.tasks.splits import check_fractions, split_by_fractions
from tests.helpers import SHARED_DATA


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def write_image(path: Path, seed: int, size=(20, 16), mode="RGB") -> None:
    """A small random image (its content depends on ``seed`` only)."""
    rng = np.random.default_rng(seed)
    channels = 3 if mode == "RGB" else 1
    pixels = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(path)


def make_tree(root: Path, counts: dict[str, int], ext: str = ".jpg", seed: int = 0) -> Path:
    """``root/<class>/<i><ext>`` with ``counts[class]`` images each."""
    for c, (name, count) in enumerate(sorted(counts.items())):
        for i in range(count):
            write_image(root / name / f"{i:03d}{ext}", seed * 100_000 + c * 1000 + i)
    return root


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` (relative path → sha256), to check nothing was written."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def one_line(error: pytest.ExceptionInfo) -> str:
    text = str(error.value)
    assert "\n" not in text
    return text


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Every test writes its decoded images into its own cache folder, loaded afresh."""
    monkeypatch.setenv("METAZOO_CACHE_DIR", str(tmp_path / "cache"))
    images_module._LOADED.clear()
    return tmp_path / "cache"


@pytest.fixture
def tree(tmp_path) -> Path:
    return make_tree(tmp_path / "birds", {f"class{c:02d}": 6 for c in range(10)})


# ----------------------------------------------------------------------------- the sampler


def identity_arrays(counts: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``[label, index within class]`` (so a sampled x says what it is), shuffled."""
    rows = [(label, i) for label, count in enumerate(counts) for i in range(count)]
    order = np.random.default_rng(0).permutation(len(rows))
    inputs = np.array(rows, dtype=np.float32)[order]
    return inputs, inputs[:, 0].astype(np.int64)


def test_sampler_draws_distinct_valid_examples_of_ragged_classes():
    counts = [3, 10, 4, 7, 5, 12]
    inputs, labels = identity_arrays(counts)
    tasks = ArrayTasks(inputs, labels, n_way=3, k_shot=1, query_shots=2,
                       classes={"train": range(6)})
    batch = tasks.sample(300, generator(3))
    assert batch.support_x.shape == (300, 3, 2) and batch.query_x.shape == (300, 6, 2)
    seen = {label: set() for label in range(6)}
    for t in range(300):
        x = torch.cat([batch.support_x[t], batch.query_x[t]])  # [9, 2]: (class, example)
        y = torch.cat([batch.support_y[t], batch.query_y[t]])
        classes = {}
        for (label, example), target in zip(x.long().tolist(), y.tolist()):
            assert classes.setdefault(target, label) == label  # one class per label
            assert 0 <= example < counts[label]
            seen[label].add(example)
        assert len(set(classes.values())) == 3  # distinct classes
        for target in range(3):
            drawn = x[y == target, 1].tolist()
            assert len(drawn) == len(set(drawn)) == 3  # support ≠ query examples
    # Every example of every class is reachable, including those past the smallest count.
    assert all(seen[label] == set(range(count)) for label, count in enumerate(counts))


def test_sampler_labels_are_a_permutation_per_shot_and_seeded():
    inputs, labels = identity_arrays([6] * 8)
    tasks = ArrayTasks(inputs, labels, n_way=4, k_shot=2, query_shots=3,
                       classes={"train": range(8)})
    state = torch.get_rng_state()
    first, again = tasks.sample(5, generator(1)), tasks.sample(5, generator(1))
    assert torch.equal(state, torch.get_rng_state())  # the global RNG is never used
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    for labels_, shots in ((first.support_y, 2), (first.query_y, 3)):
        groups = labels_.view(5, shots, 4).sort(dim=-1).values
        assert torch.equal(groups, torch.arange(4).expand(5, shots, 4))
    assert not torch.equal(first.support_x, tasks.sample(5, generator(2)).support_x)


def test_impossible_tasks_are_refused_naming_the_class():
    inputs, labels = identity_arrays([6, 6, 2, 6])
    with pytest.raises(ValueError, match=r"= 4 distinct examples per class .* class '2' .*"
                                         r"only 2") as error:
        ArrayTasks(inputs, labels, n_way=2, k_shot=1, query_shots=3,
                   classes={"train": [0, 1, 2, 3]})
    one_line(error)
    with pytest.raises(ValueError, match="n_way=5 classes per task, but the train part .* "
                                         "only 4 classes"):
        ArrayTasks(inputs, labels, n_way=5, k_shot=1, query_shots=1,
                   classes={"train": [0, 1, 2, 3]})
    with pytest.raises(ValueError, match="num_tasks must be a positive integer"):
        ArrayTasks(inputs, labels, n_way=2, k_shot=1, query_shots=1,
                   classes={"train": [0, 1]}).sample(0, generator())


def test_class_data_counts_must_match():
    with pytest.raises(ValueError, match="counts sum to 5, but inputs hold 4"):
        ClassData(torch.zeros(4, 2), torch.tensor([2, 3]), ("a", "b"))


# ----------------------------------------------------------------------------- splits


def test_split_by_fractions_is_seeded_disjoint_and_order_free():
    names = [f"person{i:02d}" for i in range(40)]
    parts = split_by_fractions(names, (0.6, 0.15, 0.25), seed=3)
    assert [len(parts[p]) for p in ("train", "val", "test")] == [24, 6, 10]
    assert sorted(parts["train"] + parts["val"] + parts["test"]) == list(range(40))
    assert parts == split_by_fractions(names, [0.6, 0.15, 0.25], seed=3)
    assert parts["test"] != split_by_fractions(names, (0.6, 0.15, 0.25), seed=4)["test"]
    # The same classes listed in another order are split the same way.
    reversed_parts = split_by_fractions(names[::-1], (0.6, 0.15, 0.25), seed=3)
    assert {names[::-1][r] for r in reversed_parts["test"]} == {names[r] for r in parts["test"]}


@pytest.mark.parametrize("bad", [(0.5, 0.5), (0.6, 0.3, 0.3), (-0.1, 0.6, 0.5),
                                 (float("nan"), 0.5, 0.5), ("a", 0.5, 0.5)])
def test_bad_fractions_are_refused(bad):
    with pytest.raises(ValueError, match="split_fractions must be three numbers"):
        check_fractions(bad)


# ----------------------------------------------------------------------------- the cache


def test_cache_round_trip_and_what_it_refuses(tmp_path):
    path = cache_file(tmp_path, "set", "k" * 64)
    images = torch.arange(24, dtype=torch.uint8).view(2, 3, 4)
    save_cached(path, "k" * 64, images, {"names": ["a", "b"]})
    loaded, meta = load_cached(path, "k" * 64)
    assert torch.equal(loaded, images) and meta == {"names": ["a", "b"]}
    assert load_cached(path, "other key") is None  # another source: silently rebuilt
    saved = torch.load(path, weights_only=True)
    torch.save({**saved, "format": FORMAT - 1}, path)
    assert load_cached(path, "k" * 64) is None  # an older layout: silently rebuilt
    torch.save({**saved, "images": images.flip(0)}, path)
    with pytest.warns(UserWarning, match="do not match the digest"):
        assert load_cached(path, "k" * 64) is None


def test_an_unwritable_cache_folder_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(DataError, match="cannot write the decoded-image cache in .* cache_dir") as error:
        save_cached(blocker / "sub" / "x.pt", "k", torch.zeros(1), {})
    one_line(error)


# ----------------------------------------------------------------------------- image folders


def test_folder_tasks_shapes_values_and_a_per_image_reference(tree):
    tasks = ImageFolderTasks(tree, n_way=3, k_shot=2, query_shots=2, image_size=8, channels=3)
    assert tasks.input_shape == (3, 8, 8) and tasks.loss == "cross_entropy"
    assert len(tasks.pool) == 6 and "split_fractions" in tasks.split_source
    indices = tasks.sample_indices(4, generator(5))
    batch = tasks.gather(indices)
    assert batch.support_x.shape == (4, 6, 3, 8, 8) and batch.query_x.shape == (4, 6, 3, 8, 8)
    assert batch.support_x.dtype == torch.float32 and 0 <= batch.support_x.min()
    assert batch.support_x.max() <= 1
    names = tasks.examples.names
    for t in range(4):
        for s in range(6):
            label, example = batch.support_y[t, s].item(), indices.support_examples[t, s].item()
            path = tree / names[indices.classes[t, label]] / f"{example:03d}.jpg"
            expected = decode_files([path], 8, 3)[0].float() / 255
            assert torch.equal(batch.support_x[t, s], expected)
    grey = ImageFolderTasks(tree, n_way=3, k_shot=1, query_shots=1, image_size=5, channels=1)
    assert grey.sample(2, generator()).support_x.shape == (2, 3, 1, 5, 5)


def test_folder_writes_nothing_into_the_data_folder_and_decodes_once(tree, private_cache,
                                                                     monkeypatch):
    before = snapshot(tree)
    train = ImageFolderTasks(tree, n_way=3, image_size=8, k_shot=1, query_shots=1)
    test = ImageFolderTasks(tree, n_way=2, image_size=8, k_shot=1, query_shots=1, part="test")
    assert train.examples is test.examples  # one load per process
    assert snapshot(tree) == before
    assert [p.name.split("-")[0] for p in private_cache.iterdir()] == ["folder8x3"]

    def forbidden(*args, **kwargs):
        raise AssertionError("must come from the cache")

    images_module._LOADED.clear()  # as a new process would
    monkeypatch.setattr(images_module, "decode_files", forbidden)
    again = ImageFolderTasks(tree, n_way=3, image_size=8, k_shot=1, query_shots=1)
    assert torch.equal(again.examples.inputs, train.examples.inputs)
    # A changed image changes the content key: decoded afresh, never a stale cache.
    write_image(tree / "class03" / "002.jpg", seed=999)
    images_module._LOADED.clear()
    with pytest.raises(AssertionError, match="must come from the cache"):
        ImageFolderTasks(tree, n_way=3, image_size=8, k_shot=1, query_shots=1)


def test_a_damaged_folder_cache_is_rebuilt(tree, private_cache):
    first = ImageFolderTasks(tree, n_way=3, image_size=8, k_shot=1, query_shots=1)
    [path] = private_cache.iterdir()
    saved = torch.load(path, weights_only=True)
    saved["images"][5:9] = 0
    torch.save(saved, path)
    images_module._LOADED.clear()
    with pytest.warns(UserWarning, match="do not match the digest"):
        rebuilt = ImageFolderTasks(tree, n_way=3, image_size=8, k_shot=1, query_shots=1)
    assert torch.equal(rebuilt.examples.inputs, first.examples.inputs)


def test_split_precedence_subtrees_then_files_then_fractions(tmp_path):
    sub = tmp_path / "sub"
    make_tree(sub / "train", {"a": 3, "b": 3, "c": 3})
    make_tree(sub / "val", {"d": 3, "e": 3}, seed=1)
    make_tree(sub / "test", {"f": 3, "g": 3}, seed=2)
    options = {"n_way": 2, "k_shot": 1, "query_shots": 1, "image_size": 4}
    for part, expected in (("train", ["train/a", "train/b", "train/c"]),
                           ("val", ["val/d", "val/e"]), ("test", ["test/f", "test/g"]),
                           ("trainval", ["train/a", "train/b", "train/c", "val/d", "val/e"])):
        assert ImageFolderTasks(sub, part=part, **options).class_names == expected

    files = make_tree(tmp_path / "files", {name: 3 for name in "abcdefg"})
    (files / "train.txt").write_text("a\nc\n\ne\n")
    (files / "test.txt").write_text("b\nd\n")
    assert ImageFolderTasks(files, **options).class_names == ["a", "c", "e"]
    assert ImageFolderTasks(files, part="test", **options).class_names == ["b", "d"]
    elsewhere = tmp_path / "lists"
    elsewhere.mkdir()
    (elsewhere / "train.txt").write_text("f\ng\n")
    assert ImageFolderTasks(files, split_dir=elsewhere, **options).class_names == ["f", "g"]

    plain = make_tree(tmp_path / "plain", {name: 3 for name in "abcdefghijklmnopqrst"})
    parts = {part: ImageFolderTasks(plain, part=part, split_seed=7, **options).class_names
             for part in ("train", "val", "test")}
    assert [len(parts[p]) for p in ("train", "val", "test")] == [12, 3, 5]
    assert set(parts["train"]).isdisjoint(parts["test"])
    other = ImageFolderTasks(plain, part="test", split_seed=8, **options).class_names
    assert other != parts["test"]


def test_split_mistakes_are_one_line(tmp_path):
    options = {"n_way": 2, "k_shot": 1, "query_shots": 1, "image_size": 4}
    files = make_tree(tmp_path / "files", {name: 3 for name in "abcd"})
    (files / "train.txt").write_text("a\nb\na\n")
    with pytest.raises(DataError, match=r"train.txt:3: class 'a' is already listed at "
                                        r"train.txt:1") as error:
        ImageFolderTasks(files, **options)
    one_line(error)
    (files / "train.txt").write_text("a\nb\n")
    (files / "test.txt").write_text("c\nb\n")
    with pytest.raises(DataError, match=r"test.txt:2: class 'b' is already listed at train.txt:2"):
        ImageFolderTasks(files, **options)
    (files / "test.txt").write_text("c\nzebra\n")
    with pytest.raises(DataError, match=r"test.txt:2: no class 'zebra'"):
        ImageFolderTasks(files, **options)

    leak = tmp_path / "leak"
    make_tree(leak / "train", {"a": 3, "b": 3})
    make_tree(leak / "test", {"b": 3, "c": 3})
    with pytest.raises(DataError, match="class 'b' is in both .*train and .*test"):
        ImageFolderTasks(leak, **options)
    mixed = tmp_path / "mixed"
    make_tree(mixed, {"train": 3, "cats": 3})
    with pytest.raises(DataError, match="mixes split folders"):
        ImageFolderTasks(mixed, **options)


def test_bad_folders_are_refused_in_one_line_and_never_created(tmp_path, tree):
    options = {"n_way": 3, "k_shot": 1, "query_shots": 1, "image_size": 4}
    typo = tmp_path / "brids"
    with pytest.raises(DataError, match="data_dir .*brids does not exist") as error:
        ImageFolderTasks(typo, **options)
    one_line(error)
    assert not typo.exists()
    with pytest.raises(ValueError, match="data_dir is required"):
        ImageFolderTasks(None, **options)
    loose = tmp_path / "loose"
    write_image(loose / "000.jpg", seed=1)  # images, but not in class folders
    with pytest.raises(DataError, match="holds no class folders"):
        ImageFolderTasks(loose, **options)

    (tree / "class04" / "notes.txt").write_text("not an image, ignored")
    (tree / "empty").mkdir()
    with pytest.raises(DataError, match=r"class folder .*empty holds no images") as error:
        ImageFolderTasks(tree, **options)
    one_line(error)
    (tree / "empty").rmdir()

    broken = tree / "class07" / "003.jpg"
    broken.write_bytes(broken.read_bytes()[:40])  # a truncated JPEG
    with pytest.raises(DataError, match=rf"cannot decode image {broken}") as error:
        ImageFolderTasks(tree, **options)
    one_line(error)
    write_image(broken, seed=5)

    for path in sorted((tree / "class01").iterdir())[2:]:
        path.unlink()
    with pytest.raises(ValueError, match=r"= 4 distinct examples .* class 'class01' .* only 2"):
        ImageFolderTasks(tree, n_way=2, k_shot=2, query_shots=2, image_size=4,
                         split_fractions=(1, 0, 0))
    for bad, message in (({"image_size": 0}, "image_size must be"), ({"channels": 2}, "channels"),
                         ({"part": "holdout"}, "part must be one of"),
                         ({"split_fractions": (1, 1, 1)}, "split_fractions")):
        with pytest.raises(ValueError, match=message):
            ImageFolderTasks(tree, **{**options, **bad})


def test_cli_trains_on_a_folder_and_refuses_bad_folders(tree, tmp_path, capsys):
    from metazoo.cli import main

    before = snapshot(tree)
    out = tmp_path / "run"
    code = main(["train", "--task", "folder", "--data-dir", str(tree), "--image-size", "16",
                 "--channels", "3", "--n-way", "2", "--k-shot", "1", "--query-shots", "2",
                 "--meta-batch", "2", "--iterations", "2", "--eval-tasks", "4",
                 "--eval-steps", "0", "1", "--no-progress", "--out", str(out)])
    assert code == 0 and "query accuracy" in capsys.readouterr().out
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["params"]["features.0.weight"].shape == (64, 3, 3, 3)  # sized by the task
    assert state["params"]["head.weight"].shape == (2, 64 * 1 * 1)  # 16 → 8 → 4 → 2 → 1
    assert snapshot(tree) == before

    broken = tree / "class02" / "001.jpg"
    broken.write_bytes(b"not a jpeg")
    for data_dir, message in ((tmp_path / "typo", "typo does not exist"),
                              (tree, f"cannot decode image {broken}")):
        code = main(["train", "--task", "folder", "--data-dir", str(data_dir), "--out",
                     str(tmp_path / "bad")])
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "typo").exists()


# ----------------------------------------------------------------------------- faces


def _faces_root() -> Path | None:
    env = os.environ.get("METAZOO_FACES_DIR")
    root = Path(env) if env else SHARED_DATA / "orl_faces"
    return root if (root / "s1").is_dir() else None


FACES = _faces_root()


@pytest.mark.skipif(FACES is None, reason="ORL faces not found: set METAZOO_FACES_DIR")
def test_faces_split_is_person_disjoint_and_seeded():
    parts = {part: Faces(FACES, part=part, k_shot=1, query_shots=5)
             for part in ("train", "val", "test")}
    names = {part: set(tasks.class_names) for part, tasks in parts.items()}
    assert [len(names[p]) for p in ("train", "val", "test")] == [24, 6, 10]
    assert not (names["train"] & names["test"] or names["train"] & names["val"]
                or names["val"] & names["test"])
    assert set().union(*names.values()) == {f"s{i}" for i in range(1, 41)}
    assert parts["test"].input_shape == (1, 32, 32)
    assert parts["test"].examples.counts.tolist() == [10] * 40
    other = set(Faces(FACES, part="test", split_seed=1, k_shot=1, query_shots=5).class_names)
    assert other != names["test"]
    batch = parts["test"].sample(3, generator())
    assert batch.support_x.shape == (3, 5, 1, 32, 32) and batch.query_x.shape == (3, 25, 1, 32, 32)
    with pytest.raises(ValueError, match=r"= 11 distinct examples .* only 10"):
        Faces(FACES, k_shot=1, query_shots=10)


def test_faces_needs_a_folder(monkeypatch):
    monkeypatch.delenv("METAZOO_FACES_DIR", raising=False)
    with pytest.raises(ValueError, match=r"data_dir is required \(or set \$METAZOO_FACES_DIR\)"):
        Faces()


# ----------------------------------------------------------------------------- arrays


def test_arrays_from_numpy_and_from_npy_files(tmp_path, capsys):
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(20 * 8, 5)).astype(np.float32)
    labels = np.repeat(np.arange(100, 120), 8)  # any integers, not 0..C-1
    tasks = ArrayTasks(inputs, labels, n_way=3, k_shot=2, query_shots=3, part="test")
    assert tasks.input_shape == (5,) and len(tasks.pool) == 5  # 25% of 20 classes
    batch = tasks.sample(2, generator())
    rows = {tuple(row) for row in inputs.tolist()}
    assert all(tuple(x) in rows for x in batch.query_x.reshape(-1, 5).tolist())
    model = make_model("mlp", tasks)
    assert model(batch.support_x[0]).shape == (6, 3)

    folder = tmp_path / "arrays"
    folder.mkdir()
    np.save(folder / "inputs.npy", inputs)
    np.save(folder / "labels.npy", labels)
    loaded = make_task("arrays", data_dir=folder, n_way=3, k_shot=2, query_shots=3, part="test")
    assert torch.equal(loaded.examples.inputs, tasks.examples.inputs)

    from metazoo.cli import main

    code = main(["train", "--task", "arrays", "--data-dir", str(folder), "--n-way", "3",
                 "--k-shot", "2", "--query-shots", "3", "--meta-batch", "2", "--iterations",
                 "2", "--eval-tasks", "4", "--eval-steps", "0", "1", "--no-progress",
                 "--out", str(tmp_path / "run")])
    assert code == 0 and "query accuracy" in capsys.readouterr().out


def test_bad_arrays_are_refused(tmp_path):
    inputs = np.zeros((12, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="labels must be integers, one per input"):
        ArrayTasks(inputs, np.zeros(12, dtype=np.float32))
    with pytest.raises(ValueError, match="labels must be integers, one per input"):
        ArrayTasks(inputs, np.zeros(11, dtype=np.int64))
    with pytest.raises(ValueError, match=r"classes\['test'\] names label 7"):
        ArrayTasks(inputs, np.repeat(np.arange(4), 3), classes={"test": [7]})
    with pytest.raises(ValueError, match="label 1 is in classes"):
        ArrayTasks(inputs, np.repeat(np.arange(4), 3), classes={"train": [0, 1], "test": [1]})
    folder = tmp_path / "arrays"
    folder.mkdir()
    with pytest.raises(DataError, match="inputs.npy is missing"):
        array_tasks(folder)
    np.save(folder / "inputs.npy", np.array([{"a": 1}] * 12, dtype=object), allow_pickle=True)
    np.save(folder / "labels.npy", np.arange(12))
    with pytest.raises(DataError, match="cannot read .*inputs.npy as a .npy array") as error:
        array_tasks(folder)  # object arrays would need pickle: refused, never unpickled
    one_line(error)
    with pytest.raises(DataError, match="does not exist"):
        array_tasks(tmp_path / "nope")


# ----------------------------------------------------------------------------- mini-ImageNet


def test_shipped_ravi_lists_are_complete_and_unchanged():
    expected = {
        "train.csv": "498519cd8e49ce97ed26a4a3638966698ae41ab35e9c68538319fc9b46ba7d2f",
        "val.csv": "5658a59921ca027ee76af92949869c5d6f41d77592ff3b18db325a9d10c893b9",
        "test.csv": "2b7cfa78342995761a572a8158e539bc4e0a80f9bbd7d00c1e17a460fbbb93fa",
    }
    for name, digest in expected.items():
        stored = gzip.decompress((shipped_lists() / f"{name}.gz").read_bytes())
        assert hashlib.sha256(stored).hexdigest() == digest  # the source's bytes, compressed
    parts = read_lists(shipped_lists())
    assert {part: len(classes) for part, classes in parts.items()} == {
        "train": 64, "val": 16, "test": 20}
    assert all(len(files) == 600 for classes in parts.values() for _, files in classes)


def fake_mini_imagenet(root: Path, lists: Path, layout: str, classes=(4, 2, 3), per_class=5):
    """Small lists in the Ravi & Larochelle format, and tiny 84×84 JPEGs laid out as named."""
    lists.mkdir(parents=True, exist_ok=True)
    wnid = 1_000_000
    for part, count in zip(("train", "val", "test"), classes):
        rows = ["filename,label"]
        for _ in range(count):
            wnid += 1
            label = f"n{wnid:08d}"
            for i in range(per_class):
                filename = f"{label}{i + 1:08d}.jpg"
                rows.append(f"{filename},{label}")
                write_image(root / layout.format(filename=filename, label=label, part=part),
                            wnid * 10 + i, size=(84, 84))
        (lists / f"{part}.csv").write_text("\n".join(rows) + "\n")


@pytest.mark.parametrize("layout", ["images/{filename}", "{filename}", "{label}/{filename}",
                                    "{part}/{label}/{filename}"])
def test_mini_imagenet_reads_a_fake_copy_in_each_layout(tmp_path, layout):
    root, lists = tmp_path / "mini", tmp_path / "lists"
    fake_mini_imagenet(root, lists, layout)
    before = snapshot(root)
    tasks = MiniImageNet(root, split_dir=lists, n_way=3, k_shot=1, query_shots=2, part="test")
    assert tasks.input_shape == (3, 84, 84) and len(tasks.pool) == 3
    assert tasks.sample(2, generator()).query_x.shape == (2, 6, 3, 84, 84)
    assert [tasks.examples.names[r] for r in tasks.pool[:, 0].tolist()] == [
        label for label, _ in read_lists(lists)["test"]]
    assert snapshot(root) == before
    model = make_model("conv4-32", tasks)  # the MAML paper's mini-ImageNet net
    assert model.features[0].weight.shape == (32, 3, 3, 3)
    assert model.head.weight.shape == (3, 32 * 5 * 5)  # 84 → 42 → 21 → 10 → 5


def test_mini_imagenet_refuses_missing_images_in_one_line(tmp_path, capsys):
    root, lists = tmp_path / "mini", tmp_path / "lists"
    fake_mini_imagenet(root, lists, "images/{filename}")
    missing = sorted((root / "images").iterdir())[7]
    missing.unlink()
    with pytest.raises(DataError, match=rf"{missing} is missing \(1 of the 5 images") as error:
        MiniImageNet(root, split_dir=lists)
    one_line(error)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="holds no n0153282900000005.jpg .*60,000") as error:
        MiniImageNet(empty)  # the shipped lists
    one_line(error)
    (lists / "val.csv").write_text("filename,label\nx.jpg,n01000001\n")
    with pytest.raises(DataError, match=r"val.csv:2: class n01000001 is also in train.csv"):
        MiniImageNet(root, split_dir=lists)

    from metazoo.cli import main

    code = main(["train", "--task", "mini-imagenet", "--data-dir", str(tmp_path / "nothing"),
                 "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "nothing does not exist" in err and err.count("\n") == 1
    assert not (tmp_path / "nothing").exists()


def test_image_tasks_leave_warnings_silent_on_a_clean_cache(tree):
    ImageFolderTasks(tree, n_way=3, image_size=8, k_shot=1, query_shots=1)
    images_module._LOADED.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ImageFolderTasks(tree, n_way=3, image_size=8, k_shot=1, query_shots=1)


def test_image_options_are_refused_where_they_mean_nothing():
    from metazoo.engine import TrainConfig

    with pytest.raises(ValueError, match=r"image_size does not apply to task 'omniglot' \(only "
                                         r"to faces, folder, mini-imagenet\)"):
        TrainConfig(task="omniglot", image_size=32)
    with pytest.raises(ValueError, match="split_fractions does not apply to task 'sinusoid'"):
        TrainConfig(split_fractions=[0.5, 0.25, 0.25])
    assert TrainConfig(task="faces", data_dir="x", split_seed=2).split_seed == 2
