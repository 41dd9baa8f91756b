"""The README as a new user meets it in a fresh clone: its Python runs; every ``metazoo``
command in it parses, and a ``train`` command's options make a valid config; the commands that
can run quickly run as written, in a temporary folder, in the README's order (a long one with
flags appended after its own, which argparse lets win); every flag and file it names exists;
and its test command is the one CI runs."""

import argparse
import contextlib
import io
import re
import shlex
import shutil
from pathlib import Path

import pytest

from metazoo.cli import build_parser
from metazoo.cli.flags import config_from
from tests.helpers import REPO
from tests.hostile.harness import OK, TINY, cli

README = REPO / "README.md"

#: Words that mark a value the reader supplies (a metavar such as NAME or OUT/, their own data,
#: machine or database): a command holding one is parsed but never run.
PLACEHOLDERS = ("~/", "<", "…", "NAME", "OUT/", "HOST0", "example.org")

#: Task families that need no data: their ``train`` commands run (shortened); the others'
#: only where their ``--data-dir`` is a folder an earlier command made.
NO_DATA = ("sinusoid", "linear")

#: Flags appended to a command that would take minutes as written.
SHORTER = {"train": TINY, "eval": ["--tasks", "2"]}

#: Commands that read only their own arguments and answer at once.
AT_ONCE = ("presets", "models")


def bash_commands() -> list[list[str]]:
    """Every command of the README's ``bash`` blocks, in order, as words: continued lines
    joined, comments dropped, ``a && b`` taken as two commands."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            command: list[str] = []
            for word in [*shlex.split(line, comments=True), "&&"]:
                if word != "&&":
                    command.append(word)
                elif command:
                    commands.append(command)
                    command = []
    return commands


def metazoo_args(command: list[str]) -> list[str] | None:
    """The arguments of ``metazoo`` in ``command`` (also ``torchrun … -m metazoo …``)."""
    if command[0] == "metazoo":
        return command[1:]
    for at in range(len(command) - 1):
        if command[at:at + 2] == ["-m", "metazoo"]:
            return command[at + 2:]
    return None


def metazoo_commands() -> list[list[str]]:
    found = [args for args in map(metazoo_args, bash_commands()) if args is not None]
    assert len(found) > 30, "the README's commands were not found"
    return found


def placeholder(words: list[str]) -> str | None:
    return next((mark for mark in PLACEHOLDERS for word in words if mark in word), None)


def parse(args: list[str]) -> argparse.Namespace | None:
    """``metazoo ARGS`` parsed, or None for ``--help`` (which must answer with status 0)."""
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            return build_parser().parse_args(args)
    except SystemExit as exit_:
        assert exit_.code in (0, None) and "--help" in args, \
            f"metazoo {shlex.join(args)}: {err.getvalue().strip()}"
        return None


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {"": parser, **action.choices}


def test_readme_python_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    assert blocks, "the README lost its library example"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})  # noqa: S102 - running the documented example is the test


def test_readme_test_command_is_what_ci_runs():
    blocks = re.findall(r"```bash\n(.*?)\n```", README.read_text(), re.DOTALL)
    (test_command,) = [block.strip() for block in blocks if "pytest" in block]
    ci = (README.parent / ".ci" / "run").read_text()
    assert test_command in ci.splitlines()


def test_every_readme_command_parses_and_makes_a_valid_config():
    for args in metazoo_commands():
        parsed = parse(args)
        if parsed is None or parsed.command != "train" or parsed.resume is not None:
            continue  # a resumed run's options are checked against the stored run
        if parsed.config is not None and placeholder([str(parsed.config)]):
            continue
        try:
            config_from(parsed).resolve()
        except ValueError as error:
            pytest.fail(f"metazoo {shlex.join(args)}: {error}")


def test_every_flag_in_the_readme_is_a_flag_of_metazoo():
    text = README.read_text()
    # Other programs' flags, as the README gives them: pip, torchrun, tensorboard, benchmarks.
    spans = [shlex.split(span) for span in re.findall(r"`((?:python|bash) [^`]*)`", text)]
    others = {word.split("=")[0] for command in [*bash_commands(), *spans]
              if command[0] != "metazoo"
              for word in command[:command.index("metazoo") if "metazoo" in command else None]
              if word.startswith("--")}
    known = {option for parser in subcommands().values() for option in parser._option_string_actions}
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9_-]*[a-z0-9]", text))
    assert named - others - known == set()


def test_every_file_the_readme_names_exists():
    text = README.read_text()
    links = re.findall(r"\]\(([^)#:]+)\)", text)
    spans = re.findall(r"`(?:python |bash )?((?:results|docs|benchmarks|examples|metazoo|tests)/"
                       r"[^`\s]*)", text)
    paths = {path for path in [*links, *spans] if not placeholder([path])}
    assert len(paths) > 20, "the README's paths were not found"
    assert sorted(path for path in paths if not (REPO / path).exists()) == []


def runnable(parsed: argparse.Namespace) -> bool:
    """Whether a command can run here, quickly: what it reads exists (its data, its runs)."""
    if parsed.command in AT_ONCE:
        return True
    if parsed.command == "train":
        if parsed.resume is not None:
            return (parsed.resume / "checkpoint.pt").is_file()
        config = config_from(parsed)
        has_data = config.task in NO_DATA or (bool(config.data_dir)
                                              and Path(config.data_dir).is_dir())
        return has_data and config.device == "cpu"
    if parsed.command in ("eval", "predict"):
        runs = [parsed.run]
    elif parsed.command == "plot":
        runs = parsed.runs
    else:  # compare and tune train many runs: minutes, even shortened
        return False
    return all((run / "checkpoint.pt").is_file() for run in runs)


def test_quick_readme_commands_run_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("METAZOO_CACHE_DIR", str(tmp_path / "cache"))
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    ran = []
    for command in bash_commands():
        if command[:2] == ["mkdir", "-p"]:
            for folder in command[2:]:
                (tmp_path / folder).mkdir(parents=True, exist_ok=True)
        elif command[:2] == ["python", "-c"]:
            exec(compile(command[2], "README.md", "exec"), {})  # noqa: S102 - the documented snippet
        elif command[0] == "metazoo" and not placeholder(command):
            args = command[1:]
            parsed = parse(args)
            if parsed is not None and not runnable(parsed):
                continue
            result = cli(*args, *(SHORTER.get(args[0], []) if parsed is not None else []))
            assert result.code == OK, f"metazoo {shlex.join(args)}: {result.err[-2000:]}"
            ran.append((args[0] if parsed is not None else "--help", result.out))
    assert {name for name, _ in ran} >= {"--help", "train", "eval", "predict", "plot", *AT_ONCE}
    assert [out for name, out in ran if name == "predict"][-1].count("mean squared error") == 1
