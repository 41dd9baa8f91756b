"""Omniglot N-way K-shot classification (Lake, Salakhutdinov & Tenenbaum, Science 2015).

A task draws ``n_way`` classes from a split's class pool and ``k_shot + query_shots``
distinct drawings of each; a class is a character at one of four rotations (k·90°, the
augmentation of Santoro et al., 2016 and Vinyals et al., 2016). Loss: cross-entropy.

One module per job:

* :mod:`.files`: locate, verify (by content) and download the two upstream zips;
* :mod:`.decode`: PNG → uint8 ``[characters, 20, 28, 28]``, strokes 255;
* :mod:`.data`: the decoded set, cached on disk keyed by content, loaded once per process;
* :mod:`.splits`: the classes of each part of the Vinyals, built-in and Lake splits;
* :mod:`.sampler`: :class:`Omniglot`, the task distribution.
"""

from metazoo.tasks.cache import CACHE_ENV, resolve_cache_dir
from metazoo.tasks.omniglot.data import (
    CACHE_FORMAT,
    ArchiveImages,
    OmniglotData,
    cache_path,
    load_archive,
    load_omniglot,
)
from metazoo.tasks.omniglot.decode import DRAWINGS, IMAGE_SIZE, decode_images
from metazoo.tasks.omniglot.files import (
    ARCHIVES,
    BACKGROUND,
    EVALUATION,
    ROOT_ENV,
    URL_ENV,
    Archive,
    OmniglotDataError,
    content_digest,
    download_archive,
    ensure_archives,
    inspect_archive,
    resolve_root,
    verify_archive,
)
from metazoo.tasks.omniglot.sampler import Omniglot
from metazoo.tasks.omniglot.splits import (
    BUILTIN_SEED,
    BUILTIN_SIZES,
    SPLITS,
    check_split,
    class_pool,
)
from metazoo.tasks.sampler import TaskIndices

__all__ = [
    "ARCHIVES",
    "BACKGROUND",
    "BUILTIN_SEED",
    "BUILTIN_SIZES",
    "CACHE_ENV",
    "CACHE_FORMAT",
    "DRAWINGS",
    "EVALUATION",
    "IMAGE_SIZE",
    "ROOT_ENV",
    "SPLITS",
    "URL_ENV",
    "Archive",
    "ArchiveImages",
    "Omniglot",
    "OmniglotData",
    "OmniglotDataError",
    "TaskIndices",
    "cache_path",
    "check_split",
    "class_pool",
    "content_digest",
    "decode_images",
    "download_archive",
    "ensure_archives",
    "inspect_archive",
    "load_archive",
    "load_omniglot",
    "resolve_cache_dir",
    "resolve_root",
    "verify_archive",
]
