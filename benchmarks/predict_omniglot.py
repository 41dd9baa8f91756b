"""The README's worked example of ``metazoo predict``: a 20-way one-shot problem from an
alphabet that training never saw, against a nearest neighbour on pixels.

    METAZOO_OMNIGLOT_DIR=../shared/data/omniglot python benchmarks/predict_omniglot.py \\
        --time-budget 900 --work runs/predict-omniglot

1. Train MAML for 20-way 1-shot Omniglot on the ``lake`` split, whose training part is the
   30 background alphabets only (``--time-budget`` CPU seconds, one thread).
2. Take the first alphabet of the *evaluation* set that has 20 characters (or
   ``--alphabet``): the first drawing of each character goes into ``support/<character>/``,
   the other 19 into ``query/<character>/`` (sub-folders named after support classes are
   labelled queries, so ``metazoo predict`` reports its accuracy).
3. ``metazoo predict RUN --support support --query query``, and a 1-nearest-neighbour on the
   same preprocessed pixels (28×28, Euclidean) for comparison.

Writes ``results/predict-omniglot.md``. A run that exists is reused (or resumed).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: the training protocol: MAML's 20-way Omniglot settings (cbfinn/maml main.py: update_lr 0.1
#: on a loss summed over the N·K examples / K, i.e. 0.1 × 20 = 2.0 on the mean; meta-batch 16),
#: with one inner step instead of the paper's five, to fit a CPU budget.
TRAIN = ["--task", "omniglot", "--split", "lake", "--n-way", "20", "--k-shot", "1",
         "--query-shots", "1", "--algorithm", "maml", "--inner-steps", "1", "--inner-lr", "2.0",
         "--meta-batch", "16", "--outer-lr", "0.001", "--model", "conv4-stride",
         "--iterations", "60000", "--eval-k-shot", "1", "--eval-query-shots", "5",
         "--eval-steps", "0", "1", "3", "5", "--eval-tasks", "200", "--strategy", "loop"]


def make_folders(data: Path, alphabet: str | None, work: Path) -> str:
    """support/ and query/ from the evaluation archive; returns the alphabet used."""
    with zipfile.ZipFile(data / "images_evaluation.zip") as archive:
        drawings: dict[str, dict[str, list[str]]] = {}
        for name in archive.namelist():
            parts = name.split("/")
            if len(parts) == 4 and parts[3].endswith(".png"):
                drawings.setdefault(parts[1], {}).setdefault(parts[2], []).append(name)
        if alphabet is None:
            alphabet = next(a for a in sorted(drawings) if len(drawings[a]) >= 20)
        if alphabet not in drawings:
            raise SystemExit(f"no alphabet {alphabet!r}; choose one of {', '.join(sorted(drawings))}")
        characters = sorted(drawings[alphabet])[:20]
        for character in characters:
            files = sorted(drawings[alphabet][character])
            for i, member in enumerate(files):
                folder = work / ("support" if i == 0 else "query") / character
                folder.mkdir(parents=True, exist_ok=True)
                (folder / Path(member).name).write_bytes(archive.read(member))
    return alphabet


def scored(predictions: Path) -> tuple[int, int]:
    """(right, labelled) among the queries of ``metazoo predict``'s CSV (its ``true`` column
    holds each labelled query's class)."""
    with open(predictions, newline="") as file:
        rows = [row for row in csv.DictReader(file) if row.get("true")]
    return sum(row["label"] == row["true"] for row in rows), len(rows)


def nearest_neighbour(work: Path, run_dir: Path) -> tuple[int, int]:
    """1-NN on the run's own preprocessed pixels: (hits, queries)."""
    import metazoo
    from metazoo.tasks.inputs import query_images

    run = metazoo.load_run(run_dir)
    x, y, names = run.read_support(work / "support")
    paths, truth = query_images(work / "query", names)
    queries = run.read_images(paths).flatten(1)
    nearest = (queries[:, None] - x.flatten(1)[None]).pow(2).sum(-1).argmin(-1)
    labels = [names[int(y[i])] for i in nearest]
    return sum(a == b for a, b in zip(labels, truth)), len(truth)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "predict-omniglot")
    parser.add_argument("--time-budget", type=float, default=900.0)
    parser.add_argument("--alphabet", default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "predict-omniglot.md")
    args = parser.parse_args()
    data = Path(os.environ.get("METAZOO_OMNIGLOT_DIR", ROOT.parent / "shared/data/omniglot"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "METAZOO_OMNIGLOT_DIR": str(data)}
    alphabet = make_folders(data, args.alphabet, args.work)
    run_dir = args.work / "run"
    command = [sys.executable, "-m", "metazoo"]
    if not (run_dir / "results.json").is_file():
        train = (["train", "--resume", str(run_dir)] if (run_dir / "checkpoint.pt").is_file()
                 else ["train", *TRAIN, "--time-budget", str(args.time_budget), "--budget-clock",
                       "cpu", "--out", str(run_dir)])
        subprocess.run([*command, *train, "--no-progress"], check=True, env=env,
                       stdout=subprocess.DEVNULL)
    results = json.loads((run_dir / "results.json").read_text())
    began = time.perf_counter()
    predicted = subprocess.run(
        [*command, "predict", str(run_dir), "--support", str(args.work / "support"),
         "--query", str(args.work / "query"), "--out", str(args.work / "predictions.csv")],
        check=True, env=env, capture_output=True, text=True).stdout
    seconds = time.perf_counter() - began
    hits, total = scored(args.work / "predictions.csv")
    nn_hits, nn_total = nearest_neighbour(args.work, run_dir)
    table = results["evaluation"]
    step = max(table, key=int)
    lines = [
        "# `metazoo predict`: 20-way one-shot on an alphabet training never saw",
        "",
        "```bash",
        "METAZOO_OMNIGLOT_DIR=../shared/data/omniglot python benchmarks/predict_omniglot.py \\",
        f"    --time-budget {args.time_budget:g} --work runs/predict-omniglot",
        "```",
        "",
        (f"MAML, trained on the `lake` split's background alphabets only (20-way 1-shot, one "
         f"inner step of 2.0, meta-batch 16; see `TRAIN` in the script) for "
         f"{results['train_seconds']:.0f} CPU seconds ({results['iterations']} meta-iterations, "
         "one thread). Then the evaluation alphabet "
         f"**{alphabet}**: the first drawing of each of its 20 characters is the support set, "
         "the other 19 drawings of each are the queries."),
        "",
        "| classifier | accuracy on the queries |",
        "|---|---:|",
        (f"| `metazoo predict` ({step} test steps, its run's default) | "
        f"{100 * hits / total:.1f}% ({hits}/{total}) |"),
        (f"| nearest neighbour on pixels (28×28, Euclidean) | "
        f"{100 * nn_hits / nn_total:.1f}% ({nn_hits}/{nn_total}) |"),
        f"| chance | {100 / 20:.1f}% |",
        "",
        (f"`metazoo predict` took {seconds:.1f} s of wall time (loading, decoding 400 images, "
         f"adapting, predicting). For reference, the run's own evaluation on "
         f"{results['config']['eval_tasks']} held-out 20-way tasks of the lake split's "
         f"evaluation alphabets: {100 * table[step]['accuracy']['mean']:.1f} ± "
         f"{100 * table[step]['accuracy']['ci95']:.1f}% after {step} steps "
         f"(0 steps: {100 * table['0']['accuracy']['mean']:.1f}%)."),
        "",
        "Output of `metazoo predict`:",
        "",
        "```",
        predicted.strip().replace(str(args.work), "runs/predict-omniglot"),
        "```",
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
