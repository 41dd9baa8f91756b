"""``benchmarks/tune_contest.py`` on tiny finished studies: the paired table and verdicts,
and a study whose defaults were not retrained, scored against an earlier run's file."""

import json
import math
import subprocess
import sys
from pathlib import Path

from tests.search.helpers import tune

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "tune_contest.py"
#: The marker of benchmarks/common.py (the benchmarks are scripts, not a package).
HAND_WRITTEN = "<!-- hand-written below: kept when the tables above are regenerated -->"


def test_a_contest_of_tiny_studies(tmp_path):
    final = ["--trials", "2", "--final-budget", "0.2", "--no-progress"]
    assert tune(tmp_path, "--algorithm", "maml", *final, out="maml") == 0
    assert tune(tmp_path, "--algorithm", "fomaml", *final, out="fomaml") == 0
    assert tune(tmp_path, "--algorithm", "fomaml", *final, "--no-final-defaults",
                out="fomaml-alone") == 0
    best = json.loads((tmp_path / "fomaml-alone" / "best.json").read_text())
    steps = json.loads((tmp_path / "fomaml-alone" / "final.json").read_text())["tuned"]["steps"]
    earlier = [{"name": "fomaml", "results": {
        "config": {**best, "time_budget": 0.2},
        "evaluation": {str(steps): {"loss": {"mean": 1.5, "ci95": 0.3}}},
        "iterations": 7, "train_seconds": 0.2}}]
    (tmp_path / "earlier.json").write_text(json.dumps(earlier))
    out = tmp_path / "contest"
    command = [sys.executable, str(SCRIPT), *(str(tmp_path / n) for n in ("maml", "fomaml",
                                                                            "fomaml-alone")),
               "--contests", "maml:fomaml", "--untuned-from", str(tmp_path / "earlier.json"),
               "--out", str(out)]
    for _ in range(2):  # written again, the reading written by hand below the marker stays
        result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                                check=False)
        assert result.returncode == 0, result.stderr[-2000:]
        markdown = out.with_suffix(".md")
        if HAND_WRITTEN not in markdown.read_text():
            markdown.write_text(markdown.read_text() + f"\n{HAND_WRITTEN}\nA reading.\n")
    assert markdown.read_text().count(HAND_WRITTEN) == 1
    assert markdown.read_text().endswith(f"{HAND_WRITTEN}\nA reading.\n")
    assert markdown.read_text().startswith("# Tuned against defaults")
    data = json.loads(out.with_suffix(".json").read_text())
    paired, alone = data["methods"]["fomaml"], data["methods"]["fomaml-alone"]
    assert paired["difference_paired"] and not alone["difference_paired"]
    assert alone["defaults"] == 1.5 and alone["defaults_ci"] == 0.3
    assert math.isclose(alone["difference"], alone["tuned"] - 1.5)
    assert math.isclose(alone["difference_ci"], math.hypot(alone["tuned_ci"], 0.3))
    assert math.isclose(paired["difference"], paired["tuned"] - paired["defaults"], abs_tol=1e-9)
    assert set(data["contests"]) == {"maml-fomaml"}
    markdown = out.with_suffix(".md").read_text()
    assert "(unpaired)" in markdown and "**maml or fomaml?**" in markdown


def test_a_study_without_its_defaults_and_no_earlier_file_is_refused(tmp_path):
    assert tune(tmp_path, "--algorithm", "fomaml", "--trials", "1", "--final-budget", "0.2",
                "--no-final-defaults", "--no-progress", out="alone") == 0
    result = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "alone"), "--out",
                             str(tmp_path / "contest")], capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 2 and "give --untuned-from" in result.stderr
    assert not (tmp_path / "contest.md").exists()


def test_a_study_whose_first_trial_won_takes_its_score_from_the_earlier_run(tmp_path):
    """Its best settings are its baseline: the final run would train them again, so the
    earlier run's score is both, and a contest with it is unpaired."""
    final = ["--no-progress", "--iterations", "20"]
    assert tune(tmp_path, "--algorithm", "fomaml", "--trials", "1", *final, out="fomaml") == 0
    assert tune(tmp_path, "--algorithm", "maml", "--trials", "1", "--final-budget", "0.2",
                *final, out="maml") == 0
    best = json.loads((tmp_path / "fomaml" / "best.json").read_text())
    earlier = [{"name": "fomaml", "results": {
        "config": {**best, "time_budget": 0.2},
        "evaluation": {"10": {"loss": {"mean": 1.5, "ci95": 0.3}}},
        "iterations": 7, "train_seconds": 0.2}}]
    (tmp_path / "earlier.json").write_text(json.dumps(earlier))
    out = tmp_path / "contest"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path / "maml"), str(tmp_path / "fomaml"),
         "--contests", "maml:fomaml", "--untuned-from", str(tmp_path / "earlier.json"),
         "--out", str(out)], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads(out.with_suffix(".json").read_text())
    fomaml = data["methods"]["fomaml"]
    assert fomaml["best_is_defaults"] and fomaml["tuned"] == fomaml["defaults"] == 1.5
    contest = data["contests"]["maml-fomaml"]
    assert math.isclose(contest["difference"], data["methods"]["maml"]["tuned"] - 1.5)
    assert "(unpaired)" in out.with_suffix(".md").read_text()
