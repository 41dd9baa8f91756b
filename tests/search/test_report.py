"""The report of a tiny study (two trials, final runs of a CPU second): its files, and the page
in headless Chromium (:mod:`tests.browser`)."""

import pytest

from metazoo.cli import main
from tests.browser import WIDTHS, check_page, chromium
from tests.search.helpers import TINY


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """``<study>/report`` of a finished two-trial study with final runs, made once."""
    out = tmp_path_factory.mktemp("tune") / "study"
    reported = [option for option in TINY if option != "--no-report"]
    assert main(["tune", *reported, "--trials", "2", "--final-budget", "1", "--final-seeds",
                 "0", "--no-progress", "--out", str(out)]) == 0
    return out / "report"


def test_a_study_writes_its_report(report):
    markdown = (report / "index.md").read_text()
    for section in ("## Optimization history", "## Importance of each option",
                    "## Best settings against the defaults", "## Final runs on the test split"):
        assert section in markdown
    for figure in ("history.png", "importances.png"):
        assert (report / figure).read_bytes()[:4] == b"\x89PNG"
        assert f"]({figure})" in markdown
    assert (report / "index.html").read_text().count("data:image/png;base64,") == 2


def test_the_report_reads_in_a_browser(report):
    chromium()
    for width in WIDTHS:
        result = check_page(report / "index.html", width)
        assert result == {"images": 2, "tables": 2, "problems": []}, width


def test_a_report_without_the_defaults_final_says_so(tmp_path):
    out = tmp_path / "study"
    reported = [option for option in TINY if option != "--no-report"]
    assert main(["tune", *reported, "--algorithm", "fomaml", "--trials", "2", "--final-budget",
                 "0.2", "--no-final-defaults", "--no-progress", "--out", str(out)]) == 0
    markdown = (out / "report" / "index.md").read_text()
    final = markdown.split("## Final runs on the test split")[1]
    assert "the defaults were not retrained (--no-final-defaults)" in final
    assert "| tuned |" in final and "| defaults |" not in final


def test_a_study_from_a_preset_compares_with_the_preset(tmp_path):
    out = tmp_path / "study"
    assert main(["tune", "--preset", "maml-sinusoid-k10", "--iterations", "20", "--val-every",
                 "10", "--val-tasks", "5", "--eval-tasks", "5", "--trial-budget", "60",
                 "--trials", "1", "--final-budget", "0.2", "--no-progress", "--out",
                 str(out)]) == 0
    markdown = (out / "report" / "index.md").read_text()
    assert "## Best settings against the preset maml-sinusoid-k10" in markdown
    assert "| option | best | preset | range | why |" in markdown
    final = markdown.split("## Final runs on the test split")[1]
    # Its one trial is the preset itself: trained once, the difference 0.
    assert "best settings are the preset maml-sinusoid-k10 itself (trained once)" in final


def test_the_report_states_what_the_search_s_processes_used(report):
    first = (report / "index.md").read_text().split("## Optimization history")[0]
    assert "the search's meta-training used" in first and "CPU seconds in all" in first
