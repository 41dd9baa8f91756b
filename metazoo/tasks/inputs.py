"""What a task family's examples look like from outside: how a file becomes a model input.

A trained run is used on data that never went through its sampler: a folder of someone's
images, a table of measurements. For that data to reach the model as the training data did,
each task family that can be fed from files says how, from its options alone (no data set
needs to be present):

* :class:`ImageInputs`: image files, decoded as the family decodes its own (mode, size,
  resampling filter, inversion), as float ``[channels, size, size]`` in [0, 1];
* :class:`TableInputs`: rows of numbers, ``features`` inputs then ``targets`` targets.

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

from metazoo.tasks.images import RESAMPLING, check_image_options, decode_files


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
