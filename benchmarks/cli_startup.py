"""How long the command line takes to answer, against ``python -c "import torch"``.

Each round runs, in a fresh interpreter each, the baseline (importing torch) and every
command below, in turn; the table gives each one's median wall-clock seconds over the rounds
and its ratio to the baseline of the same run. On an idle machine every answer should take
under a quarter of the baseline (none of them imports torch: ``tests/cli/test_startup.py``).

    python benchmarks/cli_startup.py               # 7 rounds
    python benchmarks/cli_startup.py --rounds 15
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

from common import ROOT, Clock, command, table

BASELINE = ("import torch", ["-c", "import torch"])
#: What each command line answers without running anything.
COMMANDS = [
    ("metazoo --help", ["--help"]),
    ("metazoo train --help", ["train", "--help"]),
    ("metazoo tune --help", ["tune", "--help"]),
    ("metazoo plot --help", ["plot", "--help"]),
    ("metazoo presets", ["presets"]),
    ("metazoo presets maml-omniglot-5w1s", ["presets", "maml-omniglot-5w1s"]),
    ("metazoo train --no-such-flag (usage error)", ["train", "--no-such-flag"]),
]


def seconds(arguments: list[str]) -> float:
    """Wall-clock seconds of ``python ARGUMENTS`` in a fresh interpreter, this checkout's
    metazoo first on its path."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    with Clock() as clock:
        subprocess.run([sys.executable, *arguments], cwd=ROOT, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return clock.wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    runs = [BASELINE, *((name, ["-m", "metazoo", *argv]) for name, argv in COMMANDS)]
    for _, arguments in runs:  # once each first, so that no round reads cold files
        seconds(arguments)
    times: dict[str, list[float]] = {name: [] for name, _ in runs}
    for _ in range(args.rounds):
        for name, arguments in runs:  # interleaved: a slower moment hits every command
            times[name].append(seconds(arguments))
    baseline = statistics.median(times[BASELINE[0]])
    rows = [[name, f"{statistics.median(found):.3f}",
             "1" if name == BASELINE[0] else f"{statistics.median(found) / baseline:.3f}"]
            for name, found in times.items()]
    print(f"{command('cli_startup.py')}: median wall-clock seconds of {args.rounds} rounds, "
          f"each command in a fresh interpreter (target: under 0.25 of import torch)\n")
    print("\n".join(table(["what", "seconds", "× import torch"], rows)))


if __name__ == "__main__":
    main()
