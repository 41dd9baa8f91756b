"""From a trained run to predictions on a new task: load, adapt on its support set, predict.

    >>> run = metazoo.load_run("runs/omniglot-maml")
    >>> x, y, classes = run.read_support("support/")      # class-per-folder images
    >>> predictor = run.adapt(x, y)                        # the method's own test-time rule
    >>> labels = predictor.predict(run.read_images(paths))

A loaded run knows what a caller would otherwise have to find in the source:

* its model, rebuilt from the stored config, and its meta-parameters, read with the same
  safe, schema-checked reader as ``train --resume`` (never an unrestricted unpickle);
* its method's test-time adaptation (``Method.adapt``: Meta-SGD's learned step sizes, iMAML's
  proximal rule, Reptile's inner optimizer and carried state) and its own test steps;
* its task family's input preprocessing (:mod:`metazoo.tasks.inputs`) and its loss;
* its evaluation protocol (transductive or not), which matters under BatchNorm.

Adaptation and prediction are ``metazoo eval``'s own, so a run predicts as it was scored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from metazoo.algorithms import Method, own_test_steps
from metazoo.engine.config import TrainConfig, check_steps
from metazoo.engine.evaluate import query_outputs
from metazoo.engine.run import check_model_named, read_run
from metazoo.engine.setup import seeded_model
from metazoo.models import initial_params, make_loss, make_predict, task_shapes
from metazoo.tasks import TASKS, make_task
from metazoo.tasks.images import scan_class_folders
from metazoo.tasks.inputs import ImageInputs, TableInputs, file_inputs, read_table
from metazoo.types import LossFn, Params

__all__ = ["Predictor", "TrainedRun", "load_run"]


@dataclasses.dataclass(frozen=True)
class Predictor:
    """A trained run adapted to one task: ``predictor(x)`` gives outputs, ``.predict(x)``
    labels (classification) or values (regression).

    Attributes:
        run: the run it was adapted from.
        params: the model's adapted parameters.
        support_x: the support inputs it was adapted on (the non-transductive protocol
            classifies each query in a batch with them).
        classes: classes of the support set (labels ``0..classes-1``; None for regression).
            Predictions are restricted to them when the head has more outputs.
        steps: test-time steps taken.
    """

    run: TrainedRun
    params: Params
    support_x: torch.Tensor
    classes: int | None
    steps: int

    def __call__(self, x: Any, transductive: bool | None = None) -> torch.Tensor:
        """The model's outputs for inputs ``x`` ``[Q, *input_shape]``: logits ``[Q, n_way]``
        for classification, predictions ``[Q, targets]`` for regression.

        Args:
            transductive: classify the queries in one batch (True) or each with the support
                set alone (False); default: the run's own evaluation protocol. Regression
                models do not normalise over their batch, so it changes nothing there.
        """
        x = self.run.check_inputs(x, "x")
        protocol = self.run.transductive if transductive is None else transductive
        with torch.no_grad():
            return query_outputs(self.run.predict_fn, self.params, self.support_x, x, protocol)

    def predict(self, x: Any, transductive: bool | None = None) -> torch.Tensor:
        """Labels ``[Q]`` (int64, among the support set's classes) for classification, the
        predicted values ``[Q, targets]`` for regression."""
        outputs = self(x, transductive)
        return outputs if self.classes is None else outputs[:, :self.classes].argmax(-1)

    def probabilities(self, x: Any, transductive: bool | None = None) -> torch.Tensor:
        """Softmax over the support set's classes, ``[Q, classes]`` (classification only)."""
        if self.classes is None:
            raise ValueError("probabilities are for classification; this run regresses: "
                             "call the predictor for its values")
        return self(x, transductive)[:, :self.classes].softmax(-1)


@dataclasses.dataclass(frozen=True)
class TrainedRun:
    """A run folder read back for use (see the module docstring); made by :func:`load_run`.

    Attributes:
        path: the run folder.
        config: its stored configuration.
        iteration: meta-iterations behind its checkpoint.
        method: its algorithm with its settings.
        meta: its meta-parameters (the model's, and e.g. Meta-SGD's step sizes).
        state: the state its method carries (e.g. Reptile's inner Adam moment; ``{}``).
        model: its model, rebuilt (its own parameters are not used; ``meta`` is).
        loss: ``(params, x, y) -> loss``, the task family's.
        predict_fn: ``(params, x) -> outputs``.
        inputs: how files become inputs (None: this family cannot be fed from files).
        input_shape: one example's shape.
        outputs: the model's output size (the head's classes, or the targets).
        classification: whether the run classifies.
        steps: test steps of the method's own protocol (the default of :meth:`adapt`).
        transductive: the run's evaluation protocol.
        device: where it computes.
    """

    path: Path
    config: TrainConfig
    iteration: int
    method: Method
    meta: Params
    state: dict
    model: torch.nn.Module
    loss: LossFn
    predict_fn: Any
    inputs: ImageInputs | TableInputs | None
    input_shape: tuple[int, ...]
    outputs: int
    classification: bool
    steps: int
    transductive: bool
    device: str = "cpu"

    @property
    def params(self) -> Params:
        """The model's parameters held in the meta-parameters (θ)."""
        return self.method.model_params(self.meta)

    def adapt(self, support_x: Any, support_y: Any, steps: int | None = None) -> Predictor:
        """Adapt θ to one task's support set with the method's own test-time adaptation.

        Args:
            support_x: inputs ``[S, *input_shape]``, as the task family gives them (images:
                float in [0, 1], see :meth:`read_images`).
            support_y: labels ``[S]`` in ``0..classes-1`` (at most the head's outputs), or
                targets ``[S, targets]`` (``[S]`` when there is one).
            steps: test-time steps, 0 to 10,000 (default: the method's own protocol,
                :attr:`steps`).

        Raises:
            ValueError: one line, for inputs of the wrong shape or type, labels the head
                cannot give, or steps that are not a count.
        """
        x = self.check_inputs(support_x, "support_x")
        y, classes = self._check_targets(support_y, len(x))
        if steps is None:
            steps = self.steps
        check_steps("steps", steps)
        (adapted,) = self.method.adapt(self.loss, self.meta, self.state, x, y, [steps])
        params = {name: p.detach() for name, p in adapted.items()}
        return Predictor(self, params, x, classes, steps)

    def check_inputs(self, x: Any, name: str) -> torch.Tensor:
        """``x`` as a tensor of the run's dtype, refused in one line unless it is floating
        point, finite and shaped ``[N, *input_shape]`` with N ≥ 1."""
        x = torch.as_tensor(x)
        shape = list(self.input_shape)
        if tuple(x.shape[1:]) != tuple(shape) or x.dim() != len(shape) + 1 or not len(x):
            raise ValueError(f"{name} has shape {list(x.shape)}; this run's inputs are "
                             f"[N, {', '.join(map(str, shape))}] with N >= 1"
                             + (" (read image files with run.read_images)"
                                if isinstance(self.inputs, ImageInputs) else ""))
        if not x.is_floating_point():
            raise ValueError(f"{name} is {x.dtype}; inputs must be floating point, as the task "
                             "gives them" + (" (images in [0, 1]: read files with "
                                             "run.read_images)"
                                             if isinstance(self.inputs, ImageInputs) else ""))
        x = x.to(self.device, self.config.torch_dtype)
        if not torch.isfinite(x).all():
            raise ValueError(f"{name} holds non-finite values (nan or inf)")
        return x

    def _check_targets(self, y: Any, count: int) -> tuple[torch.Tensor, int | None]:
        y = torch.as_tensor(y)
        if self.classification:
            if y.dim() != 1 or len(y) != count:
                raise ValueError(f"support_y has shape {list(y.shape)}; want one label per "
                                 f"support example, [{count}]")
            if y.is_floating_point() or y.dtype == torch.bool or y.is_complex():
                raise ValueError(f"support_y is {y.dtype}; labels are integers 0..classes-1")
            y = y.to(self.device, torch.int64)
            if int(y.min()) < 0:
                raise ValueError(f"support_y holds label {int(y.min())}; labels are 0..classes-1")
            classes = int(y.max()) + 1
            if classes > self.outputs:
                raise ValueError(f"the support set has {classes} classes, more than this run's "
                                 f"head ({self.outputs} outputs, n_way={self.config.n_way}); "
                                 f"use at most {self.outputs} classes, or a run trained with "
                                 "--n-way of at least that many")
            missing = sorted(set(range(classes)) - set(y.tolist()))
            if missing:
                raise ValueError(f"support_y has no example of label(s) {missing[:5]}; labels "
                                 f"must be 0..classes-1, each with at least one example")
            return y, classes
        if y.dim() == 1 and self.outputs == 1:
            y = y[:, None]
        if list(y.shape) != [count, self.outputs]:
            raise ValueError(f"support_y has shape {list(y.shape)}; want [{count}, "
                             f"{self.outputs}] (one row of targets per support example)")
        if not y.is_floating_point():
            y = y.double()
        y = y.to(self.device, self.config.torch_dtype)
        if not torch.isfinite(y).all():
            raise ValueError("support_y holds non-finite values (nan or inf)")
        return y, None

    # Files → tensors, with the task family's own preprocessing.

    def _image_inputs(self) -> ImageInputs:
        if not isinstance(self.inputs, ImageInputs):
            raise ValueError(  # noqa: TRY004 - bad input, reported in one line (exit 2)
                f"this run's task, {self.config.task}, does not read images; "
                + ("give its inputs as a table" if self.inputs is not None else
                   "give tensors prepared as the task family prepares them"))
        return self.inputs

    def read_images(self, paths: Sequence[str | Path]) -> torch.Tensor:
        """Image files as inputs, decoded as the run's task family decodes its own.

        Raises:
            DataError: an image that cannot be read or decoded (named).
        """
        return self._image_inputs().read(paths).to(self.device, self.config.torch_dtype)

    def read_table(self, path: str | Path, *, targets: str
                   ) -> tuple[Any, torch.Tensor, torch.Tensor | None]:
        """A CSV table of this regression run's examples (:func:`metazoo.tasks.inputs.read_table`),
        as ``(frame, x, y)`` on the run's device and in its dtype.

        Raises:
            ValueError: this run's task does not read tables, or the file is refused.
        """
        if not isinstance(self.inputs, TableInputs):
            raise ValueError(  # noqa: TRY004 - bad input, reported in one line (exit 2)
                f"this run's task, {self.config.task}, does not read tables; "
                + ("give its inputs as image folders" if self.inputs is not None else
                   "give tensors prepared as the task family prepares them"))
        frame, x, y = read_table(path, self.inputs, targets=targets)

        def move(values: torch.Tensor) -> torch.Tensor:
            return values.to(self.device, self.config.torch_dtype)

        return frame, move(x), None if y is None else move(y)

    def read_support(self, folder: str | Path) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        """A class-per-folder support set, ``<folder>/<class>/<image>``, as ``(x, y,
        class names)``: labels follow the sorted class names.

        Examples come shot by shot (the first image of every class, then the second…), the
        order of the sampler's tasks, so that a method adapting on mini-batches (Reptile's
        ``test_batch``) sees every class in each batch as in evaluation.

        Raises:
            DataError: a missing folder, no class folders, an empty class, an image that
                does not decode; ValueError: more classes than the run's head.
        """
        inputs = self._image_inputs()
        classes = scan_class_folders(Path(folder), option="the support folder")
        if len(classes) > self.outputs:
            raise ValueError(f"the support folder {folder} has {len(classes)} classes, more than "
                             f"this run's head ({self.outputs} outputs, n_way="
                             f"{self.config.n_way}); use at most {self.outputs} classes")
        order = [(shot, label) for shot in range(max(len(files) for _, files in classes))
                 for label, (_, files) in enumerate(classes) if shot < len(files)]
        paths = [classes[label][1][shot] for shot, label in order]
        x = inputs.read(paths).to(self.device, self.config.torch_dtype)
        y = torch.tensor([label for _, label in order], dtype=torch.int64, device=self.device)
        return x, y, [name for name, _ in classes]


def load_run(run_dir: str | Path, device: str = "cpu", model: str | None = None) -> TrainedRun:
    """Load the run in ``run_dir`` for adaptation and prediction.

    Its checkpoint is read with the checked reader of ``train --resume``
    (:func:`metazoo.engine.read_run`), its model rebuilt from the stored config and checked
    against the stored parameters. The task's data set is not needed when its family reads
    files (:mod:`metazoo.tasks.inputs`); for the others it is loaded to learn the shapes.

    A run folder may come from someone else. As a checkpoint is never unpickled beyond plain
    data, a model that is user code (``--model package.module:factory``) is never imported
    because a run folder names it: the caller names it again (``model``) to confirm.

    Args:
        run_dir: a run folder (``metazoo train --out``).
        device: where to compute (default: the CPU, wherever the run was trained).
        model: the run's model when it is user code, ``"package.module:factory"``, the same
            as the run's (confirms that importing it is wanted).

    Raises:
        FileNotFoundError: no checkpoint in ``run_dir``.
        ValueError: one line, for a checkpoint that is refused or does not fit its model, or
            a user-code model not confirmed by ``model``.
    """
    checkpoint = read_run(run_dir)
    config = checkpoint.config
    check_model_named(config, model, run_dir)
    family = TASKS[config.task]
    options = config.task_options(evaluation=True)
    inputs = file_inputs(family, options)
    if inputs is not None:
        input_shape = inputs.shape
        loss_name = inputs.loss
        outputs = config.n_way if isinstance(inputs, ImageInputs) else inputs.targets
    else:  # shapes come from the data
        task = make_task(config.task, **options)
        input_shape, outputs = task_shapes(task)
        loss_name = task.loss
    model = seeded_model(config, input_shape, outputs, device)  # as training built it
    method = config.method()
    # Checked as resume checks it, less the optimizer's state, which prediction never reads.
    meta, state = checkpoint.fitted_to(*method.init(initial_params(model))).tensors(
        device, config.torch_dtype)
    return TrainedRun(
        path=Path(run_dir), config=config, iteration=checkpoint.iteration, method=method,
        meta=meta, state=state, model=model, loss=make_loss(model, loss_name),
        predict_fn=make_predict(model), inputs=inputs, input_shape=tuple(input_shape),
        outputs=int(outputs), classification=loss_name == "cross_entropy",
        steps=own_test_steps(method, max(config.eval_steps)),
        transductive=config.eval_transductive, device=device,
    )
