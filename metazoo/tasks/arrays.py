"""Few-shot classification tasks from arrays (or tensors) of inputs and integer labels.

Any inputs work: feature vectors ``[M, D]`` (pair them with ``--model mlp``) or images
``[M, C, H, W]`` (``uint8`` pixels are scaled to [0, 1]; pair them with a Conv4). Classes
are split by a seeded shuffle cut by fractions (:func:`~.splits.split_by_fractions`), or by
naming the labels of each part.

From the command line, ``--task arrays --data-dir DIR`` reads ``DIR/inputs.npy`` and
``DIR/labels.npy`` (``numpy.save``; read without pickle).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metazoo.tasks.base import DataError, check_counts
from metazoo.tasks.sampler import ClassData, FewShotSampling, check_pool, no_rotation
from metazoo.tasks.splits import DEFAULT_FRACTIONS, PARTS, check_part, part_rows, split_by_fractions


def class_data(inputs: Any, labels: Any, names: tuple[str, str] = ("inputs", "labels")
               ) -> ClassData:
    """Examples grouped by label: classes are the distinct labels, in increasing order.

    Args:
        names: how to name the inputs and the labels in errors (their files, when read).

    Raises:
        DataError: one line naming the array: labels that are not one integer per input,
            inputs that are not real numbers shaped ``[examples, ...]``, or a non-finite input
            (its index given).
    """
    inputs = _checked(inputs, names[0], "inputs must be numbers", integers=False)
    labels = _checked(labels, names[1], "labels must be integers, one per input", integers=True)
    if inputs.ndim < 2:
        shape = "a single number (shape [])" if inputs.ndim == 0 else \
            f"of shape {list(inputs.shape)}"
        raise DataError(f"{names[0]} is {shape}; inputs must be shaped [examples, ...] "
                        "(one row per example)")
    if labels.ndim != 1 or len(labels) != len(inputs):
        count = f"{len(labels)} labels" if labels.ndim == 1 else f"shape {list(labels.shape)}"
        raise DataError(f"{names[1]} has {count} for {len(inputs)} inputs; labels must be "
                        "integers, one per input")
    if inputs.is_floating_point():
        bad = (~torch.isfinite(inputs)).nonzero()
        if len(bad):
            index = bad[0].tolist()
            raise DataError(f"{names[0]} holds {inputs[tuple(index)].item()} at index {index}; "
                            "inputs must be finite: replace or remove that example")
    values, counts = labels.unique(sorted=True, return_counts=True)
    order = labels.argsort(stable=True)  # class by class, each in its original order
    return ClassData(inputs[order].contiguous(), counts.to(torch.int64),
                     tuple(str(v) for v in values.tolist()))


def _checked(values: Any, name: str, rule: str, integers: bool) -> torch.Tensor:
    """``values`` as a tensor, refused in one line unless its type is integers (or, with
    ``integers`` False, real numbers): before any conversion, which would fail on strings."""
    if isinstance(values, torch.Tensor):
        kind = values.dtype
        ok = not (values.is_complex() or kind == torch.bool
                  or (integers and values.is_floating_point()))
        described = str(kind).removeprefix("torch.")
    else:
        values = np.asarray(values)
        ok = values.dtype.kind in ("iu" if integers else "iuf")
        described = {"U": f"strings ({values.dtype.str})", "S": f"bytes ({values.dtype.str})",
                     "O": "Python objects", "b": "booleans"}.get(values.dtype.kind,
                                                                 values.dtype.name)
    if not ok:
        raise DataError(f"{name} holds {described}; {rule}")
    return torch.as_tensor(values)


@dataclass(frozen=True, eq=False)
class ArrayTasks(FewShotSampling):
    """N-way K-shot tasks over ``inputs`` ``[M, ...]`` and integer ``labels`` ``[M]``.

    Attributes:
        inputs: examples (numpy array or tensor), any shape after the first axis.
        labels: one integer class label per example.
        n_way, k_shot, query_shots: task size.
        part: ``"train"``, ``"val"``, ``"test"`` or ``"trainval"``.
        split_seed: seed of the class split.
        split_fractions: (train, val, test) fractions of the classes.
        classes: optional ``{part: labels}`` naming each part's classes instead of a seeded
            split (parts not named get none).
        names: how errors name the inputs and labels (their files, when read from files).
    """

    inputs: Any = None
    labels: Any = None
    n_way: int = 5
    k_shot: int = 1
    query_shots: int = 15
    part: str = "train"
    split_seed: int = 0
    split_fractions: tuple[float, ...] = DEFAULT_FRACTIONS
    classes: dict[str, Sequence[int]] | None = None
    loss: str = "cross_entropy"
    names: tuple[str, str] = ("inputs", "labels")
    examples: ClassData = field(init=False, repr=False)
    pool: torch.Tensor = field(init=False, repr=False)  # [P, 2]

    def __post_init__(self) -> None:
        check_counts(n_way=self.n_way, k_shot=self.k_shot, query_shots=self.query_shots)
        check_part(self.part)
        if self.inputs is None or self.labels is None:
            raise ValueError("inputs and labels are required (arrays or tensors)")
        examples = class_data(self.inputs, self.labels, self.names)
        if self.classes is None:
            parts = split_by_fractions(examples.names, self.split_fractions, self.split_seed)
            how = f"split_fractions {list(self.split_fractions)} with split_seed {self.split_seed}"
        else:
            parts, how = self._named_parts(examples), "the classes given"
        pool = no_rotation(torch.tensor(part_rows(parts, self.part), dtype=torch.int64))
        check_pool(examples, pool, self.n_way, self.k_shot, self.query_shots,
                   f"the {self.part} part of the arrays (split by {how})")
        object.__setattr__(self, "examples", examples)
        object.__setattr__(self, "pool", pool)

    def _named_parts(self, examples: ClassData) -> dict[str, list[int]]:
        unknown = set(self.classes) - set(PARTS[:3])
        if unknown:
            raise ValueError(f"classes names unknown part(s) {sorted(unknown)}; use train, val, test")
        parts, owner = {}, {}
        for part in PARTS[:3]:
            rows = []
            for label in self.classes.get(part, ()):
                name = str(label)
                if name not in examples.index:
                    raise ValueError(f"classes[{part!r}] names label {label!r}, which no example has")
                if name in owner:
                    raise ValueError(f"label {label!r} is in classes[{owner[name]!r}] and "
                                     f"classes[{part!r}]; each class belongs to one part")
                owner[name] = part
                rows.append(examples.index[name])
            parts[part] = sorted(rows)
        return parts


def array_tasks(
    data_dir: str | Path | None = None,
    n_way: int = 5,
    k_shot: int = 1,
    query_shots: int = 15,
    part: str = "train",
    split_seed: int = 0,
    split_fractions: Sequence[float] = DEFAULT_FRACTIONS,
) -> ArrayTasks:
    """:class:`ArrayTasks` over ``<data_dir>/inputs.npy`` and ``<data_dir>/labels.npy``.

    Raises:
        DataError: a missing folder or file, a file that is not a plain ``.npy`` array, or
            one whose values are of the wrong type or shape, or not finite (named, with the
            index).
    """
    if data_dir is None or str(data_dir) == "":
        raise DataError("data_dir is required: the folder holding inputs.npy and labels.npy")
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise DataError(f"data_dir {root} {'is not a folder' if root.exists() else 'does not exist'}; "
                        "point it at a folder holding inputs.npy and labels.npy")
    arrays = []
    for name in ("inputs.npy", "labels.npy"):
        try:
            arrays.append(np.load(root / name, allow_pickle=False))
        except FileNotFoundError:
            raise DataError(f"{root / name} is missing; write it with numpy.save "
                            "(inputs [examples, ...], labels [examples] integers)") from None
        except (OSError, ValueError) as error:
            raise DataError(f"cannot read {root / name} as a .npy array ({error}); write it "
                            "with numpy.save, without object arrays") from error
    return ArrayTasks(*arrays, n_way=n_way, k_shot=k_shot, query_shots=query_shots, part=part,
                      split_seed=split_seed, split_fractions=tuple(split_fractions),
                      names=(str(root / "inputs.npy"), str(root / "labels.npy")))
