"""From a trained run to predictions: ``metazoo.load_run`` and ``metazoo predict``.

The round trip: a tiny run of every registered method is trained; one held-out task of its
own evaluation is written out as files; the library and the command line must then give the
predictions that ``metazoo eval``'s adaptation gives on that task, exactly (float64).
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import metazoo
from metazoo.algorithms import ALGORITHMS, own_test_steps
from metazoo.cli import main
from metazoo.engine import rebuild_run
from metazoo.engine.evaluate import per_task_metrics
from metazoo.tasks import TaskBatch
from metazoo.tasks.inputs import ImageInputs, file_inputs
from metazoo.tasks.omniglot.decode import decode_images

WAYS, SHOTS, QUERIES = 3, 2, 2


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("METAZOO_CACHE_DIR", str(tmp_path / "cache"))


def grey_png(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, "L").save(path)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """20 classes of 5 random 16×16 grey images: a test part of 5 classes."""
    root = tmp_path_factory.mktemp("tree")
    rng = np.random.default_rng(0)
    for c in range(20):
        for i in range(5):
            grey_png(root / f"class{c:02d}" / f"{i}.png",
                     rng.integers(0, 256, (16, 16), dtype=np.uint8))
    return root


def train_tiny(tree: Path, out: Path, algorithm: str, *extra: str) -> Path:
    code = main(["train", "--task", "folder", "--data-dir", str(tree), "--image-size", "16",
                 "--channels", "1", "--n-way", str(WAYS), "--k-shot", str(SHOTS),
                 "--query-shots", str(QUERIES), "--iterations", "2", "--meta-batch", "2",
                 "--dtype", "float64", "--eval-tasks", "2", "--eval-steps", "0", "1",
                 "--strategy", "loop", "--no-progress", "--algorithm", algorithm,
                 "--out", str(out), *extra])
    assert code == 0
    return out


def held_out_task(run_dir: Path) -> tuple[TaskBatch, object]:
    """One task of the run's own held-out distribution in the order ``metazoo predict``
    reads files: support shot by shot in label order, queries class by class."""
    setup, _, _, _ = rebuild_run(run_dir)
    task = setup.eval_tasks.sample(1, torch.Generator().manual_seed(7))
    dtype = setup.config.torch_dtype
    shot = torch.arange(WAYS * SHOTS) // WAYS
    order = (shot * WAYS + task.support_y[0]).argsort()
    by_class = task.query_y[0].argsort(stable=True)  # the order of query/<class>/<file>
    canonical = TaskBatch(task.support_x[:, order].to(dtype), task.support_y[:, order],
                          task.query_x[:, by_class].to(dtype), task.query_y[:, by_class])
    return canonical, setup


def write_task(task: TaskBatch, root: Path) -> tuple[Path, Path, list[str]]:
    """The task as files: support/<class>/<shot>.png and query/<class>/<i>.png."""
    def pixels(x: torch.Tensor) -> np.ndarray:
        values = (x[0] * 255).round()
        # The sampler's pixels are whole /255 values in float32, then the run's dtype.
        assert torch.equal((values.float() / 255).to(x.dtype), x[0])
        return values.to(torch.uint8).numpy()

    names = [f"c{label}" for label in range(WAYS)]
    counts = [0] * WAYS
    for x, y in zip(task.support_x[0], task.support_y[0].tolist()):
        grey_png(root / "support" / names[y] / f"{counts[y]}.png", pixels(x))
        counts[y] += 1
    files = []
    for i, (x, y) in enumerate(zip(task.query_x[0], task.query_y[0].tolist())):
        path = root / "query" / names[y] / f"q{i:02d}.png"
        grey_png(path, pixels(x))
        files.append(path)
    return root / "support", root / "query", names


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
@pytest.mark.parametrize("transductive", [True, False])
def test_load_run_and_predict_give_eval_predictions(algorithm, transductive, tree, tmp_path,
                                                     capsys):
    run_dir = train_tiny(tree, tmp_path / "run", algorithm,
                         "--eval-transductive" if transductive else "--no-eval-transductive")
    task, setup = held_out_task(run_dir)
    run = metazoo.load_run(run_dir)
    steps = run.steps
    assert run.transductive is transductive
    assert steps == own_test_steps(setup.method, 1)

    # metazoo eval's adaptation and protocol, on this task.
    _, params, state, _ = rebuild_run(run_dir)
    phi = setup.method.adapt(setup.loss, params, state, task.support_x[0], task.support_y[0],
                             [steps])[-1]
    if transductive:
        expected = setup.predict(phi, task.query_x[0])
    else:  # each query in a batch with the support set; eval vmaps over the queries
        def alone(q):
            return setup.predict(phi, torch.cat([task.support_x[0], q[None]]))[-1]

        expected = torch.func.vmap(alone)(task.query_x[0])
        one_by_one = torch.stack([alone(q) for q in task.query_x[0]])
        assert torch.allclose(expected, one_by_one, rtol=1e-12, atol=1e-12)
    report = per_task_metrics(setup.loss, params, task, steps=[steps], method=setup.method,
                              state=state, predict=setup.predict, strategy="loop", transductive=transductive)
    accuracy = float(report[steps]["accuracy"][0])
    assert accuracy == float((expected.argmax(-1) == task.query_y[0]).float().mean())

    # The library, from tensors.
    predictor = run.adapt(task.support_x[0], task.support_y[0])
    assert predictor.steps == steps
    assert predictor(task.query_x[0]).dtype == torch.float64
    assert torch.equal(predictor(task.query_x[0]), expected)
    assert torch.equal(predictor.predict(task.query_x[0]), expected.argmax(-1))

    # The library and the command line, from files.
    support, query, names = write_task(task, tmp_path)
    x, y, read_names = run.read_support(support)
    assert read_names == names
    assert torch.equal(x, task.support_x[0]) and torch.equal(y, task.support_y[0])
    out = tmp_path / "predictions.csv"
    capsys.readouterr()
    assert main(["predict", str(run_dir), "--support", str(support), "--query", str(query),
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = list(csv.DictReader(out.open()))
    assert [Path(r["file"]).name for r in rows] == [f"q{i:02d}.png" for i in range(len(rows))]
    assert [r["label"] for r in rows] == [names[i] for i in expected.argmax(-1).tolist()]
    assert [r["true"] for r in rows] == [names[i] for i in task.query_y[0].tolist()]
    scores = expected.softmax(-1).max(-1).values
    assert np.allclose([float(r["score"]) for r in rows], scores.numpy(), atol=1e-6)
    hits = round(accuracy * len(rows))
    assert f"{100 * accuracy:.1f}% ({hits}/{len(rows)})" in printed
    assert f"{steps} test step(s)" in printed


def test_regression_run_predicts_from_csv(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", "--task", "sinusoid", "--iterations", "3", "--meta-batch", "2",
                 "--dtype", "float64", "--eval-tasks", "2", "--algorithm", "metasgd",
                 "--no-progress", "--out", str(run_dir)]) == 0
    setup, params, state, _ = rebuild_run(run_dir)
    task = setup.eval_tasks.sample(1, torch.Generator().manual_seed(3)).to("cpu", torch.float64)
    run = metazoo.load_run(run_dir)
    phi = setup.method.adapt(setup.loss, params, state, task.support_x[0], task.support_y[0],
                             [run.steps])[-1]
    expected = setup.predict(phi, task.query_x[0]) if setup.predict else \
        run.predict_fn(phi, task.query_x[0])
    predictor = run.adapt(task.support_x[0], task.support_y[0][:, 0])  # [S] targets accepted
    assert torch.equal(predictor.predict(task.query_x[0]), expected)

    def write(path: Path, x: torch.Tensor, y: torch.Tensor | None) -> Path:
        lines = ["x,y" if y is not None else "x"]
        for i in range(len(x)):
            lines.append(f"{float(x[i, 0])!r}" + (f",{float(y[i, 0])!r}" if y is not None else ""))
        path.write_text("\n".join(lines) + "\n")
        return path

    support = write(tmp_path / "support.csv", task.support_x[0], task.support_y[0])
    for y in (task.query_y[0], None):
        query = write(tmp_path / "query.csv", task.query_x[0], y)
        out = tmp_path / "out.csv"
        capsys.readouterr()
        assert main(["predict", str(run_dir), "--support", str(support), "--query", str(query),
                     "--out", str(out)]) == 0
        printed = capsys.readouterr().out
        rows = list(csv.DictReader(out.open()))
        assert np.array_equal([float(r["prediction"]) for r in rows], expected[:, 0].numpy())
        mse = float(((expected - task.query_y[0]) ** 2).mean())
        assert (f"mean squared error on the {len(rows)} queries: {mse:.4g}" in printed) == \
            (y is not None)


def test_omniglot_files_are_read_as_the_sampler_decodes_them(tmp_path):
    """A 105×105 one-bit drawing, as Omniglot ships them: the reader's pixels are exactly
    the decoded set's (grey, BOX to 28, inverted) over 255."""
    rng = np.random.default_rng(1)
    drawings = []
    for i in range(20):
        ink = rng.random((105, 105)) > 0.8
        image = Image.fromarray(~ink).convert("1")  # strokes black on white
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        drawings.append((f"images_background/Alphabet/character01/{i:02d}.png",
                         buffer.getvalue()))
        (tmp_path / f"{i:02d}.png").write_bytes(buffer.getvalue())
    decoded, _ = decode_images(drawings, workers=1)
    from metazoo.tasks import Omniglot

    reader = file_inputs(Omniglot, {})
    assert reader == ImageInputs(28, 1, resample="box", invert=True)
    read = reader.read(sorted(tmp_path.glob("*.png")))
    assert read.shape == (20, 1, 28, 28)
    assert torch.equal(read, decoded[0].unsqueeze(1).float() / 255)
    assert 0 < float(read.mean()) < 0.5  # strokes are 1.0 on a background of 0


def test_image_folder_files_are_read_as_the_family_decodes_them(tmp_path):
    """Resized (bilinear) RGB images: the reader's pixels equal the family's own."""
    rng = np.random.default_rng(2)
    for c in range(6):
        for i in range(3):
            path = tmp_path / "tree" / f"k{c}" / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (13, 21, 3), dtype=np.uint8)).save(path)
    from metazoo.tasks import make_task

    tasks = make_task("folder", data_dir=tmp_path / "tree", image_size=8, channels=3, n_way=2,
                      k_shot=1, query_shots=1, split_fractions=(0.5, 0, 0.5))
    paths = sorted((tmp_path / "tree").glob("*/*.png"))
    read = file_inputs(type(tasks), {"image_size": 8, "channels": 3}).read(paths)
    assert torch.equal(read, tasks.examples.inputs.float() / 255)


@pytest.fixture(scope="module")
def maml_run(tree, tmp_path_factory) -> Path:
    return train_tiny(tree, tmp_path_factory.mktemp("maml") / "run", "maml")


def refused(capsys, *argv: str) -> str:
    assert main(list(argv)) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("metazoo predict: error: ")
    return error


def test_bad_input_is_refused_in_one_line(maml_run, tree, tmp_path, capsys):
    query = tmp_path / "query"
    grey_png(query / "a.png", np.zeros((16, 16), dtype=np.uint8))
    support = tmp_path / "support"
    for c in range(WAYS + 1):
        grey_png(support / f"s{c}" / "0.png", np.full((16, 16), 10 * c, dtype=np.uint8))
    run = str(maml_run)
    assert "4 classes, more than this run's head (3 outputs" in refused(
        capsys, "predict", run, "--support", str(support), "--query", str(query))
    (support / f"s{WAYS}" / "0.png").unlink()
    (support / f"s{WAYS}").rmdir()
    (query / "broken.png").write_bytes(b"not an image")
    assert "cannot decode image" in refused(
        capsys, "predict", run, "--support", str(support), "--query", str(query))
    (query / "broken.png").unlink()
    grey_png(query / "other" / "b.png", np.zeros((16, 16), dtype=np.uint8))
    assert "names no class of the support set" in refused(
        capsys, "predict", run, "--support", str(support), "--query", str(query))
    (query / "other" / "b.png").unlink()
    (query / "other").rmdir()
    assert "no checkpoint" in refused(
        capsys, "predict", str(tmp_path), "--support", str(support), "--query", str(query))
    assert "does not read tables" not in refused(
        capsys, "predict", run, "--support", str(tmp_path / "missing"), "--query", str(query))
    # Fewer classes than the head: labels come from the support set's classes only.
    assert main(["predict", run, "--support", str(support), "--query", str(query), "--out",
                 str(tmp_path / "p.csv")]) == 0
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert {r["label"] for r in rows} <= {f"s{c}" for c in range(WAYS)}


def test_a_run_of_a_task_without_file_inputs_is_refused(tmp_path, capsys):
    rng = np.random.default_rng(0)
    folder = tmp_path / "arrays"
    folder.mkdir()
    np.save(folder / "inputs.npy", rng.normal(size=(60, 4)).astype(np.float32))
    np.save(folder / "labels.npy", np.repeat(np.arange(12), 5))
    assert main(["train", "--task", "arrays", "--data-dir", str(folder), "--n-way", "2",
                 "--k-shot", "1", "--query-shots", "2", "--meta-batch", "2", "--iterations",
                 "1", "--eval-tasks", "2", "--no-progress", "--out", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    error = refused(capsys, "predict", str(tmp_path / "run"), "--support", str(folder),
                    "--query", str(folder))
    assert "cannot feed this run's task, arrays" in error
    run = metazoo.load_run(tmp_path / "run")  # from Python it adapts on prepared tensors
    predictor = run.adapt(torch.zeros(2, 4), torch.tensor([0, 1]))
    assert predictor.predict(torch.zeros(3, 4)).shape == (3,)


def test_library_input_checks(maml_run):
    run = metazoo.load_run(maml_run)
    x = torch.rand(3, 1, 16, 16, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"shape \[3, 16, 16\]; this run's inputs are "
                                         r"\[N, 1, 16, 16\]"):
        run.adapt(x[:, 0], torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="torch.uint8; inputs must be floating point"):
        run.adapt((x * 255).to(torch.uint8), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="more than this run's head"):
        run.adapt(torch.rand(4, 1, 16, 16), torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match=r"no example of label\(s\) \[1\]"):
        run.adapt(x, torch.tensor([0, 2, 2]))
    with pytest.raises(ValueError, match="labels are integers"):
        run.adapt(x, torch.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="non-finite"):
        run.adapt(x.clone().fill_(float("nan")), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="steps must be an integer from 0 to 10,000"):
        run.adapt(x, torch.tensor([0, 1, 2]), steps=-1)
    with pytest.raises(ValueError, match="--model mlp is not this run's model"):
        metazoo.load_run(maml_run, model="mlp")
    with pytest.raises(ValueError, match="does not read tables"):
        run.read_table(maml_run / "config.json", targets="required")
    predictor = run.adapt(x, torch.tensor([0, 1, 2]), steps=0)
    assert torch.equal(predictor.params["head.weight"], run.params["head.weight"]) \
        if "head.weight" in run.params else predictor.steps == 0
    probabilities = predictor.probabilities(x)
    assert torch.allclose(probabilities.sum(-1), torch.ones(3, dtype=torch.float64))


def test_a_checkpoint_that_does_not_fit_its_folder_is_refused(maml_run, tree, tmp_path):
    other = train_tiny(tree, tmp_path / "other", "fomaml")
    (other / "checkpoint.pt").write_bytes((maml_run / "checkpoint.pt").read_bytes())
    with pytest.raises(ValueError, match="does not belong to the run"):
        metazoo.load_run(other)


def test_a_user_code_model_is_imported_only_when_named_again(tmp_path, monkeypatch, capsys):
    """A run folder names its model; when that is user code, naming the folder is not enough
    to import it (as a checkpoint is never unpickled beyond plain data)."""
    (tmp_path / "planted_models.py").write_text(
        "import torch\n"
        "def build(input_shape, output_size):\n"
        "    return torch.nn.Sequential(torch.nn.Linear(input_shape[0], 16), torch.nn.Tanh(),\n"
        "                               torch.nn.Linear(16, output_size))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "planted_models", raising=False)
    run_dir = tmp_path / "run"
    assert main(["train", "--model", "planted_models:build", "--iterations", "2",
                 "--eval-tasks", "2", "--no-progress", "--out", str(run_dir)]) == 0
    sys.modules.pop("planted_models")
    with pytest.raises(ValueError, match="does not import code because a run folder names it"):
        metazoo.load_run(run_dir)
    assert "planted_models" not in sys.modules  # refused before anything was imported
    with pytest.raises(ValueError, match="name it yourself: --model planted_models:build .*"
                                         "not 'mlp'"):
        metazoo.load_run(run_dir, model="mlp")
    run = metazoo.load_run(run_dir, model="planted_models:build")
    assert run.adapt(torch.zeros(3, 1), torch.zeros(3, 1)).predict(torch.ones(2, 1)).shape == (2, 1)
    capsys.readouterr()
    query = tmp_path / "q.csv"
    query.write_text("x\n0.5\n")
    argv = ["predict", str(run_dir), "--support", str(query), "--query", str(query)]
    assert main(argv) == 2 and "--model planted_models:build" in capsys.readouterr().err
    sys.modules.pop("planted_models")
    query.write_text("x,y\n0.5,1.0\n")
    assert main([*argv, "--model", "planted_models:build", "--out",
                 str(tmp_path / "p.csv")]) == 0
    sys.modules.pop("planted_models", None)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_predict_shows_a_bar_of_the_images_read_once_it_takes_a_while(maml_run, tree,
                                                                       tmp_path, monkeypatch):
    from metazoo.cli.predict import predict_files
    from metazoo.engine import progress

    run = metazoo.load_run(maml_run)
    query = tmp_path / "query"  # 15 images of 3 classes, unlabelled
    for i, image in enumerate(sorted(tree.glob("class0[0-2]/*.png"))):
        grey_png(query / f"q{i:02d}.png", np.asarray(Image.open(image)))
    support = tmp_path / "support"
    for c in range(WAYS):
        for i in range(SHOTS):
            grey_png(support / f"class{c}" / f"{i}.png",
                     np.asarray(Image.open(tree / f"class{c:02d}" / f"{i}.png")))
    paths = sorted(query.glob("*.png"))
    bar = progress.progress_bar(False, total=len(paths))
    assert torch.equal(progress.in_batches(run.read_images, paths, bar, size=4),
                       run.read_images(paths))  # read a few at a time: the same inputs

    drawn = progress.progress_bar

    def at_once(shown, **options):  # no delay, every update drawn
        return drawn(shown, **{**options, "delay": 0, "mininterval": 0,
                                               "miniters": 1})

    quiet, _ = predict_files(run, support, query)
    monkeypatch.setattr("sys.stderr", terminal := Terminal())
    monkeypatch.setattr("metazoo.engine.progress.progress_bar", at_once)
    table, _ = predict_files(run, support, query, progress=True)
    shown = terminal.getvalue()
    assert "reading queries" in shown and f"{len(paths)}/{len(paths)}" in shown, shown
    assert f"adapting ({run.steps} test steps)" in shown and "predicting" in shown, shown
    assert table.equals(quiet)
    monkeypatch.setattr("sys.stderr", terminal := Terminal())
    predict_files(run, support, query)
    assert terminal.getvalue() == ""  # progress=False
