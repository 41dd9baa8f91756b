"""A report page checked in headless Chromium, with no Python package beyond the standard
library: a copy of the page gets a script that measures it once loaded and writes what it
found into the page, and Chromium's ``--dump-dom`` hands the page back.

What is measured, in a window of a given width (:data:`WIDTHS`: a desktop browser's, and
a half-screen window's):

- every ``<img>`` loaded: ``complete`` and ``naturalWidth > 0`` (a broken data URI fails);
- every table fits its column: its right edge is within the content box of the element that
  holds it (the page's text column), so no table runs past the text or off the page;
- no cell's text overflows its cell: ``scrollWidth <= clientWidth`` for every ``th``/``td``;
- the page never scrolls sideways: the document is no wider than the window.

Each has one pixel of slack for rounding. Where Chromium is absent the check skips, saying
how to install it, unless ``METAZOO_REQUIRE_BROWSER=1`` (set by ``.ci/run``): then it fails.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

#: Window widths a report must read at, in CSS pixels (the window is 900 px high).
WIDTHS = (1280, 800)

#: Runs on the page's load event (after every image has loaded or failed).
_SCRIPT = """<script>
window.addEventListener("load", () => {
  const problems = [];
  const images = Array.from(document.images);
  images.forEach((img, i) => {
    if (!(img.complete && img.naturalWidth > 0))
      problems.push(`image ${i} (${img.alt}) did not load`);
  });
  const tables = Array.from(document.querySelectorAll("table"));
  tables.forEach((table, i) => {
    const holder = table.parentElement, style = getComputedStyle(holder);
    const right = holder.getBoundingClientRect().right - parseFloat(style.paddingRight)
                  - parseFloat(style.borderRightWidth);
    const edge = table.getBoundingClientRect().right;
    if (edge > right + 1)
      problems.push(`table ${i} runs ${Math.round(edge - right)} px past its column`);
    table.querySelectorAll("th, td").forEach(cell => {
      if (cell.scrollWidth > cell.clientWidth + 1)
        problems.push(`table ${i}: text overflows the cell "${cell.textContent.slice(0, 40)}"`);
    });
  });
  const wide = document.documentElement.scrollWidth;
  if (wide > window.innerWidth + 1)
    problems.push(`the page scrolls sideways (${wide} px in a ${window.innerWidth} px window)`);
  const out = document.createElement("pre");
  out.id = "browser-check";
  out.textContent = JSON.stringify({images: images.length, tables: tables.length, problems});
  document.body.appendChild(out);
});
</script>"""

_RESULT = re.compile(r'<pre id="browser-check">(.*?)</pre>', re.DOTALL)


def chromium() -> str:
    """Chromium's command, or a skip (a failure under ``METAZOO_REQUIRE_BROWSER=1``)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    reason = "headless Chromium not found (install Debian's chromium package; .ci/run does)"
    if os.environ.get("METAZOO_REQUIRE_BROWSER") == "1":
        pytest.fail(reason + ", and METAZOO_REQUIRE_BROWSER=1 requires it")
    pytest.skip(reason)


def check_page(page: Path, width: int = WIDTHS[0]) -> dict:
    """Load ``page`` in headless Chromium, ``width`` pixels wide; returns ``{"images": n,
    "tables": n, "problems": [...]}`` as measured in the browser (no problems: it passed)."""
    browser = chromium()
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "page.html"
        copy.write_text(page.read_text().replace("</body>", _SCRIPT + "</body>", 1))
        # --no-sandbox: CI runs as root, where Chromium refuses its sandbox.
        done = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", f"--user-data-dir={scratch}/profile",
             f"--window-size={width},900", "--virtual-time-budget=5000",
             "--dump-dom", copy.as_uri()],
            capture_output=True, text=True, timeout=120, check=False)
    found = _RESULT.search(done.stdout)
    assert found, f"Chromium gave no result (exit {done.returncode}): {done.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))
