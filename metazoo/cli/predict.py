"""``metazoo predict``: from support and query files to a table of predictions and a summary,
through a loaded run (:mod:`metazoo.predict`). Nothing heavy is imported until it runs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from metazoo.predict import TrainedRun


def predict_files(run: TrainedRun, support: str | Path, query: str | Path, *,
                  steps: int | None = None, transductive: bool | None = None,
                  progress: bool = False) -> tuple[Any, str]:
    """Adapt ``run`` on the support files and predict the query files (``metazoo predict``);
    with ``progress``, once it takes more than a second, a bar counts the query images read
    and names the stage (on a terminal).

    Images (a classification run): ``support`` is a class-per-folder tree; ``query`` a
    folder of images, directly in it (unlabelled) or in sub-folders named after support
    classes (labelled: accuracy is reported). Tables (a regression run): ``support`` and
    ``query`` are CSV files (:meth:`TrainedRun.read_table`).

    Returns:
        ``(table, summary)``: a pandas table, one row per query (image: ``file``, ``label``,
        ``score`` — the probability of that label among the support classes — and ``true``
        when known; table: the query's columns then ``prediction``), and a few lines saying
        what was done and how well it did where the truth is known.
    """
    import pandas as pd

    from metazoo.engine.progress import in_batches, progress_bar, stage
    from metazoo.tasks.inputs import ImageInputs, query_images

    if run.inputs is None:
        raise ValueError(f"metazoo predict cannot feed this run's task, {run.config.task}: its "
                         "inputs are derived from its data set; use metazoo.load_run(...)"
                         ".adapt(x, y) from Python with inputs prepared as the task prepares "
                         "them")
    done = (f"{run.config.algorithm} run {run.path} (iteration {run.iteration}), "
            f"{{steps}} test step(s)")
    if isinstance(run.inputs, ImageInputs):
        x, y, names = run.read_support(support)
        paths, truth = query_images(query, names)
        with progress_bar(progress, total=len(paths), desc="reading queries", unit="image",
                          delay=1, leave=False) as bar:
            queries = in_batches(run.read_images, paths, bar)
            stage(bar, f"adapting ({run.steps if steps is None else steps} test steps)")
            predictor = run.adapt(x, y, steps)
            stage(bar, "predicting")
            probabilities = predictor.probabilities(queries, transductive)
        score, label = probabilities.max(-1)
        table = pd.DataFrame({"file": [str(p) for p in paths],
                              "label": [names[i] for i in label.tolist()],
                              "score": score.double().numpy().round(6)})
        labelled = [i for i, t in enumerate(truth) if t is not None]
        lines = [f"labelled {len(paths)} image(s) among {len(names)} classes from {len(x)} "
                 f"support image(s), by the " + done.format(steps=predictor.steps)]
        if labelled:
            table["true"] = [t or "" for t in truth]
            hits = sum(table["label"][i] == truth[i] for i in labelled)
            lines.append(f"accuracy on the {len(labelled)} labelled queries: "
                         f"{100 * hits / len(labelled):.1f}% ({hits}/{len(labelled)})")
        return table, "\n".join(lines)
    _, x, y = run.read_table(support, targets="required")
    frame, query_x, query_y = run.read_table(query, targets="optional")
    predictor = run.adapt(x, y, steps)
    values = predictor.predict(query_x, transductive).double().cpu()
    table = frame.copy()
    names = (["prediction"] if values.shape[1] == 1
             else [f"prediction_{i}" for i in range(values.shape[1])])
    for i, name in enumerate(names):
        table[name] = values[:, i].numpy()
    lines = [f"predicted {len(table)} row(s) from {len(x)} support row(s), by the "
             + done.format(steps=predictor.steps)]
    if query_y is not None:
        error = float(((values - query_y.double().cpu()) ** 2).mean())
        lines.append(f"mean squared error on the {len(table)} queries: {error:.4g}")
    return table, "\n".join(lines)
