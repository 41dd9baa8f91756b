"""The README's code runs as written, and its first commands are the ones CI uses."""

import re

from tests.helpers import REPO

README = REPO / "README.md"


def test_readme_python_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    assert blocks, "the README lost its library example"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})  # noqa: S102 - running the documented example is the test


def test_readme_test_command_is_what_ci_runs():
    commands = re.findall(r"```bash\n(.*?)\n```", README.read_text(), re.DOTALL)
    test_command = commands[1].strip()
    ci = (README.parent / ".ci" / "run").read_text()
    assert test_command in ci.splitlines()
