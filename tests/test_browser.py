"""The browser check itself (:mod:`tests.browser`): it passes a page that fits and names each
fault of one that does not."""

from tests.browser import check_page

_FITS = ("<!doctype html><html><body style='max-width:30em'>"
         "<img src='data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7' alt='one pixel'>"
         "<table><tr><th>a</th><td>1.0 ± 0.1</td></tr></table></body></html>")

_FAULTS = ("<!doctype html><html><body style='max-width:30em'>"
           "<img src='data:image/png;base64,AAAA' alt='broken'>"
           f"<table><tr><td>{'x' * 300}</td></tr></table>"
           "<table style='table-layout:fixed;width:5em'><tr><td>incomprehensibilities</td></tr>"
           "</table></body></html>")


def test_a_page_that_fits_passes(tmp_path):
    page = tmp_path / "fits.html"
    page.write_text(_FITS)
    assert check_page(page) == {"images": 1, "tables": 1, "problems": []}


def test_a_broken_image_and_overflowing_tables_are_named(tmp_path):
    page = tmp_path / "faults.html"
    page.write_text(_FAULTS)
    result = check_page(page)
    assert (result["images"], result["tables"]) == (1, 2)
    problems = "\n".join(result["problems"])
    assert "image 0 (broken) did not load" in problems
    assert "table 0 runs" in problems and "past its column" in problems
    assert 'table 1: text overflows the cell "incomprehensibilities"' in problems
    assert "the page scrolls sideways" in problems
