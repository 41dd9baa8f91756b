"""What a task family's examples look like from outside: how a file becomes a model input.

A trained run is used on data that never went through its sampler: a folder of someone's
images, a table of measurements. For that data to reach the model as the training data did,
each task family that can be fed from files says how, from its options alone (no data set
needs to be present):

* :class:`ImageInputs`: image files, decoded as the family decodes its own (mode, size,
  resampling filter, inversion), as float ``[channels, size, size]`` in [0, 1];
* :class:`TableInputs`: rows of numbers, ``features`` inputs then ``targets`` targets.

The readers of such files, :func:`read_table` (a CSV of examples) and :func:`query_images` (a
folder of query images, labelled by sub-folder), check what they read at the boundary.

A family declares it with a class method ``file_inputs(**options)``;
:func:`file_inputs` finds it. Families whose inputs are derived from their data set (e.g.
standardised with the training part's statistics) have none: their runs are used from Python
with inputs prepared as the family prepares them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from metazoo.tasks.base import DataError
from metazoo.tasks.images import IMAGE_EXTENSIONS, RESAMPLING, check_image_options, decode_files


@dataclass(frozen=True)
class ImageInputs:
    """Image files as a family's examples: ``[channels, size, size]``, float32 in [0, 1].

    Attributes:
        size: pixels per side after resizing (the aspect ratio is not kept).
        channels: 1 (grey) or 3 (RGB).
        resample: Pillow's filter, ``"bilinear"`` or ``"box"``.
        invert: ``1 - pixel`` (Omniglot: strokes, drawn dark on light, become 1.0).
        loss: ``"cross_entropy"``: image families classify.
    """

    size: int
    channels: int
    resample: str = "bilinear"
    invert: bool = False
    loss: str = "cross_entropy"

    def __post_init__(self) -> None:
        check_image_options(self.size, self.channels)
        if self.resample not in RESAMPLING:
            raise ValueError(f"resample must be one of {', '.join(RESAMPLING)}, "
                             f"got {self.resample!r}")

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.channels, self.size, self.size)

    def read(self, paths: Sequence[str | Path], workers: int | None = None) -> torch.Tensor:
        """The images at ``paths`` as float32 ``[M, channels, size, size]``, exactly as the
        family's sampler gives its own (``pixel / 255`` of the same decoding).

        Raises:
            DataError: an image that cannot be read or decoded (named).
        """
        pixels = decode_files([str(p) for p in paths], self.size, self.channels, workers,
                              self.resample)
        if self.invert:
            pixels = 255 - pixels
        return pixels.float().div_(255)


@dataclass(frozen=True)
class TableInputs:
    """Rows of numbers as a family's examples: ``features`` inputs, ``targets`` targets.

    Attributes:
        features: input values per example (the model's input is ``[features]``).
        targets: target values per example (the model's output size).
        loss: ``"mse"``: table families regress.
    """

    features: int
    targets: int = 1
    loss: str = "mse"

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.features,)


def file_inputs(family: Any, options: dict[str, Any]) -> ImageInputs | TableInputs | None:
    """How the task family ``family`` (a registered factory) with ``options`` reads files, or
    None when it cannot be fed from files."""
    declared = getattr(family, "file_inputs", None)
    return declared(**options) if callable(declared) else None


def option(family: Any, options: dict[str, Any], name: str) -> Any:
    """``options[name]`` or the family's default for it (a dataclass field's default)."""
    return options[name] if name in options else getattr(family, name)


def read_table(path: str | Path, inputs: TableInputs, *, targets: str
               ) -> tuple[Any, torch.Tensor, torch.Tensor | None]:
    """A CSV table of a regression run's examples: a header row, then ``inputs.features``
    input columns and, after them, ``inputs.targets`` target columns.

    Args:
        targets: ``"required"`` (a support set), or ``"optional"`` (queries, which may carry
            their targets so the error can be reported).

    Returns:
        ``(frame, x, y)``: the pandas table, inputs ``[N, features]`` and targets ``[N,
        targets]`` in float64 (y is None when the table has none).

    Raises:
        DataError: a missing or unreadable file, a cell that is not a finite number, or a
            column count that fits neither layout.
    """
    import numpy as np
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} {'is not a file' if path.exists() else 'does not exist'}; "
                        "give a CSV file with a header row")
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as error:
        raise DataError(f"cannot read {path} as CSV ({' '.join(str(error).split())[:200]})"
                        ) from None
    features, outputs = inputs.features, inputs.targets
    widths = [features + outputs] + ([features] if targets == "optional" else [])
    if frame.shape[1] not in widths or not len(frame):
        want = " or ".join(f"{w} columns" for w in widths)
        raise DataError(f"{path} has {frame.shape[1]} columns and {len(frame)} rows; this run "
                        f"wants {want} ({features} input(s) then {outputs} target(s), after "
                        "a header row) and at least one row")
    for column in frame.columns:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = (~np.isfinite(values.to_numpy(dtype="float64"))).nonzero()[0]
        if len(bad):
            row = int(bad[0])
            raise DataError(f"{path}: column {column!r}, row {row + 2} of the file: "
                            f"{frame[column].iloc[row]!r} is not a finite number")
    values = torch.tensor(frame.to_numpy(dtype="float64"))
    return frame, values[:, :features], values[:, features:] if values.shape[1] > features \
        else None


def query_images(folder: str | Path, names: Sequence[str]) -> tuple[list[Path], list[str | None]]:
    """The query images of ``folder``: those directly in it (label unknown) and those in
    sub-folders named after classes in ``names`` (labelled), sorted by path.

    Raises:
        DataError: a missing folder, no images, or a sub-folder that names no class.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"the query folder {folder} "
                        f"{'is not a folder' if folder.exists() else 'does not exist'}; "
                        "point --query at a folder of images")
    found: list[tuple[Path, str | None]] = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            if entry.name not in names:
                raise DataError(f"query sub-folder {entry} names no class of the support set "
                                f"({', '.join(names[:5])}{'…' if len(names) > 5 else ''}); "
                                "put unlabelled queries directly in the query folder")
            found += [(path, entry.name) for path in sorted(entry.iterdir())
                      if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS
                      and not path.name.startswith(".")]
        elif entry.is_file() and entry.suffix.lower() in IMAGE_EXTENSIONS:
            found.append((entry, None))
    if not found:
        raise DataError(f"the query folder {folder} holds no images "
                        f"({', '.join(IMAGE_EXTENSIONS)})")
    return [path for path, _ in found], [label for _, label in found]
