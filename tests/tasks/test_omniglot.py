"""Omniglot: content verification, download, decoding cache, splits and the task sampler.

Real-data tests read the two zips from ``$METAZOO_OMNIGLOT_DIR`` (default: the shared data
folder beside the repository) and skip when they are not there. The download machinery is
tested against a real HTTP server on 127.0.0.1, mostly with a small archive of 40 real
images; one test downloads the real ``images_evaluation.zip`` end to end.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import threading
import warnings
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from metazoo.tasks.omniglot import (
    ARCHIVES,
    EVALUATION,
    SPLITS,
    Archive,
    Omniglot,
    OmniglotData,
    OmniglotDataError,
    cache_path,
    class_pool,
    content_digest,
    decode_images,
    download_archive,
    ensure_archives,
    load_archive,
    load_omniglot,
    resolve_cache_dir,
    resolve_root,
    verify_archive,
)
from metazoo.tasks.omniglot import data as omniglot_data
from metazoo.tasks.omniglot import files as omniglot_files
from tests.helpers import SHARED_DATA


def _data_root() -> Path | None:
    env = os.environ.get("METAZOO_OMNIGLOT_DIR")
    root = Path(env) if env else SHARED_DATA / "omniglot"
    return root if all((root / a.filename).is_file() for a in ARCHIVES) else None


DATA_ROOT = _data_root()
SKIP_REASON = (
    "Omniglot zips not found: set METAZOO_OMNIGLOT_DIR to the folder holding "
    "images_background.zip and images_evaluation.zip (and splits/vinyals/)"
)
needs_data = pytest.mark.skipif(DATA_ROOT is None, reason=SKIP_REASON)


def pngs(path: Path) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(path) as archive:
        return [(n, archive.read(n)) for n in sorted(archive.namelist()) if n.endswith(".png")]


def write_zip(path: Path, images, compression=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in images:
            archive.writestr(name, data)
    return path


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("omniglot-cache")


@pytest.fixture(scope="session")
def data(cache_dir):
    """Both archives, verified and decoded at most once per test session."""
    if DATA_ROOT is None:
        pytest.skip(SKIP_REASON)
    return load_omniglot(DATA_ROOT, cache_dir=cache_dir, download=False)


@pytest.fixture(scope="session")
def make(data, cache_dir):
    def build(**options) -> Omniglot:
        return Omniglot(data_dir=DATA_ROOT, cache_dir=cache_dir, download=False, **options)

    return build


@pytest.fixture(scope="module")
def evaluation_images():
    if DATA_ROOT is None:
        pytest.skip(SKIP_REASON)
    return pngs(DATA_ROOT / EVALUATION.filename)


@pytest.fixture(scope="module")
def small(evaluation_images):
    """Two real characters (40 PNGs) as ``images_evaluation.zip`` with a matching Archive."""
    characters = sorted({name.rsplit("/", 1)[0] for name, _ in evaluation_images})[:2]
    images = [(n, d) for n, d in evaluation_images if n.rsplit("/", 1)[0] in characters]
    archive = Archive(EVALUATION.name, content_digest(images), len(images))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as packed:
        for name, png in images:
            packed.writestr(name, png)
    return archive, images, buffer.getvalue()


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        route = self.server.routes.get(self.path)
        if route is None:
            self.send_error(404, "Not Found")
            return
        body, truncate = route
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(body)))  # the full size, even when cut
        self.end_headers()
        self.wfile.write(body[: len(body) // 3] if truncate else body)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server(small):
    """A local HTTP server; ``routes`` maps a URL path to (body, send only a third)."""
    _, images, good = small
    wrong = io.BytesIO()
    write_zip(wrong, [(name, png + b"\0") for name, png in images])  # valid zip, wrong images
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.routes = {
        "/good/images_evaluation.zip": (good, False),
        "/corrupt/images_evaluation.zip": (bytes(range(256)) * 64, False),
        "/wrong/images_evaluation.zip": (wrong.getvalue(), False),
        "/interrupted/images_evaluation.zip": (good, True),
    }
    if DATA_ROOT is not None:
        real = (DATA_ROOT / EVALUATION.filename).read_bytes()
        httpd.routes["/real/images_evaluation.zip"] = (real, False)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


# ----------------------------------------------------------------------------- content digest


@needs_data
def test_shared_zips_match_the_hard_coded_content_digests():
    for archive in ARCHIVES:
        images = verify_archive(DATA_ROOT / archive.filename, archive)
        assert len(images) == archive.num_images
        assert content_digest(images) == archive.digest


def test_content_digest_ignores_order_but_not_names_or_bytes():
    images = [("a/x/c/1.png", b"one"), ("a/x/c/2.png", b"two")]
    assert content_digest(images) == content_digest(images[::-1])
    assert content_digest(images) != content_digest([("a/x/c/1.png", b"one")])
    assert content_digest(images) != content_digest([("a/x/c/1.png", b"one"),
                                                     ("a/x/c/3.png", b"two")])
    assert content_digest(images) != content_digest([("a/x/c/1.png", b"one"),
                                                     ("a/x/c/2.png", b"twO")])


@needs_data
def test_repacked_archive_with_the_same_images_verifies(evaluation_images, tmp_path):
    # Other order, no compression, no directory entries: different bytes, same content.
    path = write_zip(tmp_path / "repacked.zip", evaluation_images[::-1], zipfile.ZIP_STORED)
    assert path.read_bytes() != (DATA_ROOT / EVALUATION.filename).read_bytes()
    assert len(verify_archive(path, EVALUATION)) == EVALUATION.num_images


@needs_data
def test_archive_with_an_image_removed_is_refused(evaluation_images, tmp_path):
    path = write_zip(tmp_path / "removed.zip", evaluation_images[1:], zipfile.ZIP_STORED)
    with pytest.raises(OmniglotDataError, match=r"13179 PNG images .* 13180"):
        verify_archive(path, EVALUATION)


@needs_data
def test_archive_with_an_image_altered_is_refused(evaluation_images, tmp_path):
    altered = list(evaluation_images)
    altered[100] = (altered[100][0], altered[101][1])  # same count, one image replaced
    path = write_zip(tmp_path / "altered.zip", altered, zipfile.ZIP_STORED)
    with pytest.raises(OmniglotDataError, match="content digest") as error:
        verify_archive(path, EVALUATION)
    assert str(path) in str(error.value) and "data_dir" in str(error.value)


def test_corrupt_and_truncated_archives_are_refused(small, tmp_path):
    archive, _, good = small
    (tmp_path / "good.zip").write_bytes(good)
    verify_archive(tmp_path / "good.zip", archive)
    flipped = bytearray(good)
    flipped[len(good) // 3] ^= 0xFF  # inside a compressed image: bad CRC or bad stream
    (tmp_path / "flipped.zip").write_bytes(bytes(flipped))
    (tmp_path / "truncated.zip").write_bytes(good[: len(good) // 2])
    for name in ("flipped.zip", "truncated.zip"):
        with pytest.raises(OmniglotDataError, match="not a readable zip"):
            verify_archive(tmp_path / name, archive)


# ----------------------------------------------------------------------------- download


def test_download_lands_the_file_only_after_verification(small, server, tmp_path, monkeypatch):
    archive, _, good = small
    target = tmp_path / archive.filename
    seen = []
    inspect = omniglot_files.inspect_archive

    def spy(path, expected):
        seen.append((os.listdir(tmp_path), isinstance(path, io.BytesIO)))
        return inspect(path, expected)

    monkeypatch.setattr(omniglot_files, "inspect_archive", spy)
    assert download_archive(archive, tmp_path, f"{server}/good/") == target
    assert target.read_bytes() == good
    # Verified in memory while nothing at all had been written into the folder.
    assert seen == [([], True)]
    assert sorted(os.listdir(tmp_path)) == [archive.filename]


@pytest.mark.parametrize(("route", "message"), [
    ("corrupt", "not the expected archive: not a readable zip"),
    ("wrong", "not the expected archive: its content digest"),
    ("missing", "HTTP 404"),
    ("interrupted", "interrupted|failed after"),
])
def test_failed_download_is_refused_and_leaves_nothing(small, server, tmp_path, route, message):
    archive, _, _ = small
    with pytest.raises(OmniglotDataError, match=message) as error:
        download_archive(archive, tmp_path, f"{server}/{route}")
    text = str(error.value)
    assert "images_evaluation.zip" in text and "data_dir" in text and "--" not in text
    assert os.listdir(tmp_path) == []


def test_unreachable_server_is_a_clear_error(small, tmp_path):
    archive, _, _ = small
    with pytest.raises(OmniglotDataError, match="failed after 0 bytes"):
        download_archive(archive, tmp_path, "http://127.0.0.1:1", timeout=5)
    assert os.listdir(tmp_path) == []


@needs_data
def test_real_evaluation_zip_downloads_and_verifies(server, tmp_path):
    path = download_archive(EVALUATION, tmp_path / "data", f"{server}/real")
    assert path.read_bytes() == (DATA_ROOT / EVALUATION.filename).read_bytes()
    assert len(verify_archive(path, EVALUATION)) == EVALUATION.num_images


def test_ensure_archives_downloads_from_the_env_url_or_refuses(small, server, tmp_path,
                                                               monkeypatch):
    archive, _, good = small
    with pytest.raises(OmniglotDataError, match="missing and downloading is disabled"):
        ensure_archives(tmp_path, download=False, archives=[archive])
    monkeypatch.setenv("METAZOO_OMNIGLOT_URL", f"{server}/good")
    paths = ensure_archives(tmp_path, archives=[archive])
    assert paths[archive.name].read_bytes() == good
    monkeypatch.setenv("METAZOO_OMNIGLOT_URL", f"{server}/missing")
    ensure_archives(tmp_path, archives=[archive])  # present: nothing is fetched


def test_resolve_root(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("METAZOO_OMNIGLOT_DIR", raising=False)
    assert resolve_root(None) == tmp_path / "xdg/metazoo/omniglot"
    monkeypatch.setenv("METAZOO_OMNIGLOT_DIR", str(tmp_path / "env"))
    assert resolve_root(None) == tmp_path / "env"
    assert resolve_root(tmp_path / "arg") == tmp_path / "arg"


def test_cache_dir_is_the_user_cache_and_never_the_data_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("METAZOO_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_cache_dir() == tmp_path / "home/.cache/metazoo"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_cache_dir() == tmp_path / "xdg/metazoo"
    monkeypatch.setenv("METAZOO_CACHE_DIR", str(tmp_path / "envcache"))
    assert resolve_cache_dir() == tmp_path / "envcache"
    assert resolve_cache_dir(tmp_path / "mine") == tmp_path / "mine"


@needs_data
def test_loading_writes_nothing_into_a_writable_data_folder(cache_dir, tmp_path, monkeypatch):
    folder = tmp_path / "omniglot"
    folder.mkdir()
    for archive in ARCHIVES:
        (folder / archive.filename).symlink_to(DATA_ROOT / archive.filename)
    user = tmp_path / "xdg/metazoo"
    shutil.copytree(cache_dir, user)  # already decoded: no need to decode again here
    monkeypatch.delenv("METAZOO_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    before = sorted(os.listdir(folder))
    Omniglot(data_dir=folder, split="vinyals-builtin", download=False)
    assert sorted(os.listdir(folder)) == before
    assert {cache_path(user, a.digest).name for a in ARCHIVES} <= set(os.listdir(user))


@pytest.mark.parametrize("through_env", [False, True])
def test_a_missing_data_dir_is_refused_and_not_created(tmp_path, monkeypatch, through_env):
    typo = tmp_path / "omniglto"
    if through_env:
        monkeypatch.setenv("METAZOO_OMNIGLOT_DIR", str(typo))
    with pytest.raises(OmniglotDataError, match="omniglto does not exist") as error:
        Omniglot(data_dir=None if through_env else typo)
    assert not typo.exists() and "\n" not in str(error.value)
    assert ("METAZOO_OMNIGLOT_DIR" if through_env else "data_dir") in str(error.value)


def test_missing_data_with_download_disabled(tmp_path):
    with pytest.raises(OmniglotDataError, match="missing and downloading is disabled"):
        Omniglot(data_dir=tmp_path, download=False)


# ----------------------------------------------------------------------------- decoding, cache


def test_decoding_convention_strokes_high_background_zero(small):
    from PIL import Image

    _, images, _ = small
    decoded, characters = decode_images(images, workers=2)
    assert decoded.dtype == torch.uint8 and decoded.shape == (2, 20, 28, 28)
    assert characters == tuple(sorted({"/".join(n.split("/")[1:3]) for n, _ in images}))
    _, png = min(images)  # first character, first drawing by file name
    expected = Image.open(io.BytesIO(png)).convert("L").resize((28, 28), Image.BOX)
    expected = 255 - torch.frombuffer(bytearray(expected.tobytes()), dtype=torch.uint8)
    assert torch.equal(decoded[0, 0].flatten(), expected)
    assert (decoded[:, :, 0, :] == 0).float().mean() > 0.9  # background (top row) is 0
    assert decoded.amax() == 255


def test_cache_is_built_once_keyed_by_content(small, tmp_path, monkeypatch):
    archive, images, good = small
    path = tmp_path / "data/images_evaluation.zip"
    path.parent.mkdir()
    path.write_bytes(good)
    cache = tmp_path / "cache"
    first = load_archive(path, archive, cache)
    target = cache_path(cache, archive.digest)
    assert target.name == f"omniglot28-{archive.digest[:16]}.pt" and target.is_file()
    assert first.images.shape == (2, 20, 28, 28)

    def forbidden(*args, **kwargs):
        raise AssertionError("must not run")

    # The same bytes: no decoding and no full verification (the byte hash is remembered).
    monkeypatch.setattr(omniglot_data, "decode_images", forbidden)
    monkeypatch.setattr(omniglot_files, "inspect_archive", forbidden)
    second = load_archive(path, archive, cache)
    assert torch.equal(first.images, second.images) and first.characters == second.characters
    monkeypatch.undo()

    # A repack with the same images is verified in full, then reuses the cache.
    monkeypatch.setattr(omniglot_data, "decode_images", forbidden)
    write_zip(path, images[::-1], zipfile.ZIP_STORED)
    assert torch.equal(load_archive(path, archive, cache).images, first.images)

    # Changed images are refused although a cache exists.
    write_zip(path, [(n, d + b"\0") for n, d in images])
    with pytest.raises(OmniglotDataError, match="content digest"):
        load_archive(path, archive, cache)
    monkeypatch.undo()

    # An unreadable cache file is rebuilt, not trusted.
    path.write_bytes(good)
    target.write_bytes(b"not a torch file")
    with pytest.warns(UserWarning, match="rebuilding unreadable"):
        rebuilt = load_archive(path, archive, cache)
    assert torch.equal(rebuilt.images, first.images)
    assert not [p for p in os.listdir(cache) if p.endswith(".tmp")]


def test_a_damaged_cache_is_detected_and_rebuilt(small, tmp_path):
    archive, _, good = small
    path = tmp_path / "data/images_evaluation.zip"
    path.parent.mkdir()
    path.write_bytes(good)
    cache = tmp_path / "cache"
    first = load_archive(path, archive, cache)
    target = cache_path(cache, archive.digest)
    pixels = first.images.numpy().tobytes()

    # 4,096 bytes flipped inside the stored pixels: the file still loads as a tensor.
    raw = bytearray(target.read_bytes())
    start = raw.find(pixels)
    assert start > 0
    for offset in range(start + 8192, start + 8192 + 4096):
        raw[offset] ^= 0xFF
    target.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="rebuilding .*do not match the digest"):
        rebuilt = load_archive(path, archive, cache)
    assert torch.equal(rebuilt.images, first.images)

    # Every image zeroed, the file re-saved as a well-formed cache.
    saved = torch.load(target, weights_only=True)
    saved["images"].zero_()
    torch.save(saved, target)
    with pytest.warns(UserWarning, match="rebuilding .*do not match the digest"):
        rebuilt = load_archive(path, archive, cache)
    assert torch.equal(rebuilt.images, first.images)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rebuilt file is trusted again, silently
        assert torch.equal(load_archive(path, archive, cache).images, first.images)


@needs_data
def test_real_data_layout_and_identical_second_load_without_decoding(data, cache_dir,
                                                                     monkeypatch):
    assert data.images.shape == (1623, 20, 28, 28) and data.images.dtype == torch.uint8
    assert data.num_background == 964 and len(set(data.characters)) == 1623
    background, evaluation = data.characters[:964], data.characters[964:]
    assert list(background) == sorted(background) and list(evaluation) == sorted(evaluation)
    assert all(len(name.split("/")) == 2 for name in data.characters)
    assert data.images.float().mean() < 40  # strokes (255) are the minority; background is 0

    def forbidden(*args, **kwargs):
        raise AssertionError("a second load must come from the cache")

    monkeypatch.setattr(omniglot_data, "decode_images", forbidden)
    monkeypatch.setattr(omniglot_files, "inspect_archive", forbidden)
    parts = [load_archive(DATA_ROOT / a.filename, a, cache_dir) for a in ARCHIVES]
    assert torch.equal(torch.cat([p.images for p in parts]), data.images)
    for archive in ARCHIVES:
        assert cache_path(cache_dir, archive.digest).is_file()
        assert archive.digest[:16] in cache_path(cache_dir, archive.digest).name


# ----------------------------------------------------------------------------- splits


def characters_of(pool: torch.Tensor) -> set[int]:
    return set(pool[:, 0].tolist())


@needs_data
def test_vinyals_split_sizes_and_disjointness(data):
    pools = {part: class_pool(data, "vinyals", part, root=DATA_ROOT) for part in SPLITS["vinyals"]}
    assert {part: len(pool) for part, pool in pools.items()} == {
        "train": 4112, "val": 688, "test": 1692, "trainval": 4800}
    train, val, test = (characters_of(pools[p]) for p in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (1028, 172, 423)
    assert not (train & val or train & test or val & test)
    assert train | val | test == set(range(1623))
    assert set(pools["train"][:, 1].tolist()) == {0, 1, 2, 3}
    assert len({tuple(row) for row in pools["train"].tolist()}) == 4112
    assert len(class_pool(data, "vinyals", "test", rotations=False, root=DATA_ROOT)) == 423


@needs_data
def test_builtin_split_is_fixed_sized_and_disjoint(data):
    pools = {part: class_pool(data, "vinyals-builtin", part) for part in SPLITS["vinyals-builtin"]}
    assert {part: len(pool) for part, pool in pools.items()} == {
        "train": 4400, "val": 400, "test": 1692, "trainval": 4800}
    train, val, test = (characters_of(pools[p]) for p in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (1100, 100, 423)
    assert not (train & val or train & test or val & test)
    assert train | val | test == set(range(1623))
    assert torch.equal(pools["train"], class_pool(data, "vinyals-builtin", "train"))
    counts = torch.bincount(pools["test"][:, 0] * 4 + pools["test"][:, 1])
    assert counts.max() == 1 and (counts.view(-1, 4).sum(1) > 0).sum() == 423


@needs_data
def test_lake_split_has_disjoint_alphabets(data):
    train, test = class_pool(data, "lake", "train"), class_pool(data, "lake", "test")
    assert (len(train), len(test)) == (964, 659)
    assert set(train[:, 1].tolist()) == set(test[:, 1].tolist()) == {0}

    def alphabets(pool):
        return {data.characters[c].split("/")[0] for c in pool[:, 0].tolist()}

    assert len(alphabets(train)) == 30 and len(alphabets(test)) == 20
    assert not alphabets(train) & alphabets(test)
    assert len(class_pool(data, "lake", "train", rotations=True)) == 4 * 964


@needs_data
def test_split_errors(data, tmp_path):
    with pytest.raises(ValueError, match="vinyals, vinyals-builtin, lake"):
        class_pool(data, "ravi")
    with pytest.raises(ValueError, match="no part 'val'; choose one of: train, test"):
        class_pool(data, "lake", "val")
    with pytest.raises(OmniglotDataError, match="cannot read the split file"):
        class_pool(data, "vinyals", "train", split_dir=tmp_path)
    (tmp_path / "train.txt").write_text("Angelic/character01/rot000\nAngelic/character99/rot000\n")
    with pytest.raises(OmniglotDataError, match=r"train.txt:2: .*character99"):
        class_pool(data, "vinyals", "train", split_dir=tmp_path)


def test_split_file_with_a_duplicate_line_is_refused(tmp_path):
    characters = ("Angelic/character01", "Angelic/character02", "Angelic/character03")
    fake = OmniglotData(torch.zeros(3, 20, 28, 28, dtype=torch.uint8), characters, 3)
    (tmp_path / "train.txt").write_text(
        "Angelic/character01/rot000\nAngelic/character02/rot090\nAngelic/character01/rot000\n")
    with pytest.raises(OmniglotDataError, match=r"train.txt:3: .*duplicate of line 1") as error:
        class_pool(fake, "vinyals", "train", split_dir=tmp_path)
    assert "\n" not in str(error.value)
    (tmp_path / "train.txt").write_text(  # the same character at two rotations is two classes
        "Angelic/character01/rot000\nAngelic/character01/rot090\n")
    assert class_pool(fake, "vinyals", "train", split_dir=tmp_path).tolist() == [[0, 0], [0, 1]]


def test_unknown_split_fails_before_loading_anything(tmp_path):
    with pytest.raises(ValueError, match="choose one of: vinyals, vinyals-builtin, lake"):
        Omniglot(split="miniimagenet", data_dir=tmp_path, download=False)


# ----------------------------------------------------------------------------- sampler


@needs_data
@pytest.mark.parametrize(("n_way", "k_shot", "query_shots"), [(5, 1, 15), (20, 5, 5)])
def test_sample_shapes_and_labels(make, n_way, k_shot, query_shots):
    task = make(n_way=n_way, k_shot=k_shot, query_shots=query_shots)
    assert task.loss == "cross_entropy"
    batch = task.sample(3, generator())
    assert batch.support_x.shape == (3, n_way * k_shot, 1, 28, 28)
    assert batch.query_x.shape == (3, n_way * query_shots, 1, 28, 28)
    assert batch.support_x.dtype == batch.query_x.dtype == torch.float32
    assert batch.support_y.dtype == batch.query_y.dtype == torch.int64
    assert batch.support_x.min() >= 0 and batch.support_x.max() <= 1
    for labels, shots in ((batch.support_y, k_shot), (batch.query_y, query_shots)):
        assert labels.shape == (3, n_way * shots)
        groups = labels.view(3, shots, n_way).sort(dim=-1).values  # each shot: a permutation
        assert torch.equal(groups, torch.arange(n_way).expand(3, shots, n_way))


@needs_data
def test_sample_matches_a_per_image_reference(make, data):
    task = make(n_way=5, k_shot=2, query_shots=3)
    indices = task.sample_indices(40, generator(7))
    batch = task.gather(indices)
    pool = {tuple(row) for row in task.pool.tolist()}
    assert set(indices.rotations.flatten().tolist()) == {0, 1, 2, 3}
    for t in range(40):
        classes = list(zip(indices.classes[t].tolist(), indices.rotations[t].tolist()))
        assert len(set(classes)) == 5 and set(classes) <= pool  # distinct classes of the pool
        used = {label: [] for label in range(5)}
        for x, y, drawings in ((batch.support_x, batch.support_y, indices.support_examples),
                               (batch.query_x, batch.query_y, indices.query_examples)):
            for s in range(y.shape[1]):
                label, drawing = y[t, s].item(), drawings[t, s].item()
                character, turns = classes[label]
                expected = torch.rot90(data.images[character, drawing], turns, dims=(0, 1))
                assert torch.equal(x[t, s, 0], expected.float() / 255)
                used[label].append(drawing)
        assert all(len(set(d)) == 2 + 3 for d in used.values())  # support ≠ query drawings


@needs_data
def test_sampling_is_seeded_and_leaves_the_global_rng_alone(make):
    task = make(split="vinyals-builtin", part="val")
    state = torch.get_rng_state()
    first, again = task.sample(4, generator(1)), task.sample(4, generator(1))
    assert torch.equal(state, torch.get_rng_state())
    for a, b in zip(first, again):
        assert torch.equal(a, b)
    other = task.sample_indices(4, generator(2))
    assert not torch.equal(task.sample_indices(4, generator(1)).classes, other.classes)


@needs_data
def test_samplers_share_one_data_tensor(make):
    train, test = make(part="train"), make(split="lake", part="test", n_way=20)
    assert train.data is test.data
    assert train == make(part="train") and train != test


@needs_data
def test_impossible_requests_are_clear_errors(make):
    with pytest.raises(ValueError, match="21 distinct drawings .* only 20"):
        make(k_shot=6, query_shots=15)
    with pytest.raises(ValueError, match="n_way=700 .* lake/test pool has only 659"):
        make(split="lake", part="test", n_way=700)
    for bad in ({"n_way": 0}, {"k_shot": -1}, {"query_shots": 1.5}):
        with pytest.raises(ValueError, match="must be a positive integer"):
            make(**bad)
    with pytest.raises(ValueError, match="num_tasks must be a positive integer"):
        make().sample(0, generator())


# ----------------------------------------------------------------------------- end to end


@pytest.mark.parametrize("algorithm", ["maml", "imaml"])
def test_cli_trains_and_evaluates_omniglot(data, make, cache_dir, tmp_path, monkeypatch,
                                           capsys, algorithm):
    from metazoo.cli import main

    monkeypatch.setenv("METAZOO_CACHE_DIR", str(cache_dir))
    out = tmp_path / "run"
    code = main(["train", "--task", "omniglot", "--data-dir", str(DATA_ROOT), "--algorithm",
                 algorithm, "--n-way", "3", "--k-shot", "1", "--query-shots", "2",
                 "--inner-lr", "0.4", "--meta-batch", "2", "--iterations", "2",
                 "--eval-tasks", "6", "--eval-steps", "0", "1", "--no-progress", "--out", str(out),
                 # gradient steps, which the check below recomputes by hand
                 *(["--imaml-inner-solver", "gd"] if algorithm == "imaml" else [])])
    stdout = capsys.readouterr().out
    assert code == 0 and "query accuracy" in stdout
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["model"] == "conv4-stride" and results["strategy"] in ("vmap", "loop")

    # The reported accuracies, recomputed by hand from the stored θ on the same held-out
    # tasks: 6 tasks of the test part drawn from the eval seed, 3 classes × 2 query drawings.
    # One plain SGD step at the test step size (iMAML's proximal term has zero gradient at θ).
    from metazoo.models import Conv4

    state = torch.load(out / "checkpoint.pt", weights_only=True)
    params = {name: p for name, p in state["params"].items() if not name.startswith("inner_lr")}
    held_out = make(part="test", n_way=3, k_shot=1, query_shots=2).sample(
        6, generator(results["config"]["eval_seed"]))
    model = Conv4(3, downsample="stride")
    hits = {0: 0, 1: 0}
    for t in range(6):
        task = held_out.task(t)
        theta = {name: p.clone().requires_grad_() for name, p in params.items()}
        support_loss = torch.nn.functional.cross_entropy(
            torch.func.functional_call(model, theta, (task.support_x,)), task.support_y)
        grads = torch.autograd.grad(support_loss, list(theta.values()))
        adapted = {name: p - 0.4 * g for (name, p), g in zip(theta.items(), grads)}
        for step, weights in ((0, theta), (1, adapted)):
            logits = torch.func.functional_call(model, weights, (task.query_x,))
            hits[step] += int((logits.argmax(-1) == task.query_y).sum())
    for step in (0, 1):
        reported = results["evaluation"][str(step)]["accuracy"]["mean"]
        assert reported == pytest.approx(hits[step] / 36, abs=1e-6)  # float32 per task


@pytest.mark.parametrize("flags, message", [
    (["--k-shot", "15", "--query-shots", "6"], "only 20"),
    (["--n-way", "5000"], "classes"),
    (["--split", "nonsense"], "split"),
])
def test_cli_refuses_impossible_omniglot_tasks(data, cache_dir, tmp_path, monkeypatch, capsys,
                                               flags, message):
    from metazoo.cli import main

    monkeypatch.setenv("METAZOO_CACHE_DIR", str(cache_dir))
    code = main(["train", "--task", "omniglot", "--data-dir", str(DATA_ROOT), *flags,
                 "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_cli_refuses_a_mistyped_data_dir_in_one_line(tmp_path, capsys):
    from metazoo.cli import main

    typo = tmp_path / "omniglto"
    code = main(["train", "--task", "omniglot", "--data-dir", str(typo), "--out",
                 str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "omniglto does not exist" in err and err.count("\n") == 1
    assert not typo.exists()
