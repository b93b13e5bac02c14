"""The HTML report in a real browser: headless Chromium opens it from a file, takes a screenshot,
and a measuring copy of the page reports what was laid out.

Chromium comes from Debian (``apt-get install -y chromium chromium-driver``; ``.ci/run`` installs
it); the test is skipped, saying so, only where no Chromium is installed. No Selenium: the
browser is driven through its command line (``--dump-dom``, ``--screenshot``). Set
``GRADER_SCREENSHOT_DIR`` to keep the screenshots (e.g. as CI artifacts).
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
from test_reports import PLANTED, buggy_result

from grader.out.reports import write_reports

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome",
                                               "google-chrome-stable")) if p), None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install -y chromium "
                             "chromium-driver); the browser test of the HTML report needs it")

WIDTH, HEIGHT = 1280, 900

# Injected into the TEST copy only (the product page has no script, and its CSP forbids one):
# record errors, then measure the score and every SVG after layout, into the DOM.
ERRORS = ("<script>window.__errors = []; window.addEventListener('error', function (e) "
          "{ window.__errors.push(String(e.message)); });</script>")
MEASURE = """<script>
(function () {
  function box(el) { var r = el.getBoundingClientRect();
    return {w: r.width, h: r.height, top: r.top, left: r.left}; }
  var score = document.getElementById('score');
  var style = score ? getComputedStyle(score) : null;
  var out = {
    errors: window.__errors,
    scripts: document.scripts.length,
    score: score ? Object.assign(box(score), {text: score.textContent.replace(/\\s+/g, ' ').trim(),
      visible: style.visibility === 'visible' && style.display !== 'none' &&
               parseFloat(style.opacity) > 0}) : null,
    svgs: Array.prototype.map.call(document.querySelectorAll('svg'), function (s) {
      var t = s.querySelector('title');
      var b = box(s);
      b.title = t ? t.textContent : null;
      b.open = !s.closest('details') || s.closest('details').open;
      return b; }),
    viewport: {w: window.innerWidth, h: window.innerHeight}
  };
  var pre = document.createElement('pre');
  pre.id = '__measure';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>"""


def chromium(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        return subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}",
             f"--window-size={WIDTH},{HEIGHT}", "--enable-logging=stderr", "--v=0", *args],
            capture_output=True, text=True, timeout=timeout, check=False)


def console(stderr: str) -> list[str]:
    """What the page wrote to the browser console (script errors, CSP violations, ...)."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("browser")
    result = buggy_result()
    return {audience: write_reports(result, out / audience, audience=audience)[0]
            for audience in ("student", "instructor")}


@pytest.mark.parametrize("audience", ["student", "instructor"])
def test_report_renders_in_chromium(reports: dict[str, Path], audience: str,
                                    tmp_path: Path) -> None:
    page_path = reports[audience]
    page = page_path.read_text(encoding="utf-8")
    assert not re.search(r"<script\b", page, re.I), "the product page must not hold a script"

    # The product page as it is: loads without a single console message (no script error, no
    # blocked fetch), and a screenshot is taken.
    shot = tmp_path / f"report-{audience}.png"
    run = chromium(f"--screenshot={shot}", page_path.as_uri())
    assert run.returncode == 0, run.stderr[-2000:]
    assert console(run.stderr) == []
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, len(data)
    keep = os.environ.get("GRADER_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)

    # The measuring copy: the product page without its CSP, plus the two scripts above.
    test_copy = tmp_path / "measure.html"
    text = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page)
    text = text.replace("<head>", "<head>" + ERRORS, 1).replace("</body>", MEASURE + "</body>")
    test_copy.write_text(text, encoding="utf-8")
    run = chromium("--dump-dom", test_copy.as_uri())
    assert run.returncode == 0, run.stderr[-2000:]
    found = re.search(r'<pre id="__measure">(.*?)</pre>', run.stdout, re.S)
    assert found, "the measuring script did not run:\n" + run.stderr[-2000:]
    m = json.loads(html.unescape(found.group(1)))

    assert m["errors"] == []
    assert m["scripts"] == 2  # ours; the planted <script> in a message stayed text
    assert PLANTED in html.unescape(run.stdout)  # ... visible as text
    score = m["score"]
    assert score and score["visible"] and score["w"] > 0 and score["h"] > 0
    assert 0 <= score["top"] < m["viewport"]["h"], "the score must be visible without scrolling"
    assert "6 / 36 points" in score["text"]
    # Every picture of a failure is laid out with a size; collapsed ones (passing checks) are not.
    shown = [s for s in m["svgs"] if s["open"]]
    assert len(shown) >= 5
    for s in shown:
        assert s["w"] > 50 and s["h"] > 50, s
    titles = {s["title"] for s in shown}
    assert {"Loss curve: yours and the reference's",
            "Learning-rate schedule: yours and the expected one",
            "Attention weights without a mask (first batch element and head)",
            "Your attention weights (first batch element and head)"} <= titles
    # No picture is wider than the page.
    assert max(s["left"] + s["w"] for s in shown) <= m["viewport"]["w"]


def test_csp_blocks_scripts_in_the_product_page(reports: dict[str, Path], tmp_path: Path) -> None:
    """Defence in depth: even if a script got into the page, the page's own policy stops it."""
    page = reports["student"].read_text(encoding="utf-8")
    hostile = tmp_path / "hostile.html"
    hostile.write_text(page.replace("</body>", "<script>document.body.setAttribute("
                                    "'data-ran', 'yes')</script></body>"), encoding="utf-8")
    run = chromium("--dump-dom", hostile.as_uri())
    assert run.returncode == 0, run.stderr[-2000:]
    assert "<main>" in run.stdout and 'data-ran="yes"' not in run.stdout
    assert any("Content Security Policy" in line for line in console(run.stderr))
