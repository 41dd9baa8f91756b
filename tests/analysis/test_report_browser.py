"""The compare report in headless Chromium (:mod:`tests.browser`): every figure loads and every
table fits the page, on a grid of seconds that still writes every section (a contest, the
default test steps, the widest tables)."""

from metazoo.cli import main
from tests.browser import WIDTHS, check_page, chromium

SMALL = ["--algorithms", "maml", "fomaml", "reptile", "imaml", "--train-steps", "-1",
         "--seeds", "0", "1", "--iterations", "3", "--meta-batch", "2", "--eval-tasks", "6",
         "--analysis-tasks", "3", "--test-steps", "0", "1", "2", "5", "10", "--fidelity-steps",
         "1", "2", "--cost-steps", "1", "2", "--toy-iterations", "2", "--no-progress"]


def test_the_compare_report_reads_in_a_browser(tmp_path):
    chromium()  # skip before training where there is no browser
    out = tmp_path / "cmp"
    assert main(["compare", *SMALL, "--out", str(out)]) == 0
    for width in WIDTHS:
        result = check_page(out / "report" / "index.html", width)
        assert result == {"images": 6, "tables": 7, "problems": []}, width
