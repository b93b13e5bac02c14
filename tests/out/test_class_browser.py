"""The class summary page in headless Chromium, as the student report is checked
(tests/out/test_report_browser.py): the product page loads without one console message, a
screenshot is taken, and a measuring copy reports that every SVG is laid out with a size.
Set ``GRADER_SCREENSHOT_DIR`` to keep the screenshots."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from test_class_summary import FILES, ROOT
from test_export_fixtures import STUDENTS, make_gradebook
from test_report_browser import CHROMIUM, ERRORS, HEIGHT, chromium, console

from grader.cli import main

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install -y chromium "
                             "chromium-driver); the browser test of the class summary needs it")

MEASURE = """<script>
(function () {
  function box(el) { var r = el.getBoundingClientRect();
    return {w: r.width, h: r.height, top: r.top, left: r.left}; }
  var title = document.getElementById('title');
  var out = {
    errors: window.__errors,
    scripts: document.scripts.length,
    title: title ? Object.assign(box(title), {text: title.textContent}) : null,
    svgs: Array.prototype.map.call(document.querySelectorAll('svg'), function (s) {
      var t = s.querySelector('title'); var b = box(s);
      b.title = t ? t.textContent : null; return b; }),
    page: {w: document.documentElement.scrollWidth, vw: window.innerWidth}
  };
  var pre = document.createElement('pre'); pre.id = '__measure';
  pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
})();
</script>"""


@pytest.fixture(scope="module")
def summary_page(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("class-browser")
    book = make_gradebook(base / "run" / "gradebook.sqlite", regrade=True)
    book.close()
    class_dir = base / "class"
    for sid in STUDENTS:
        (class_dir / sid).mkdir(parents=True)
        if sid in FILES:
            shutil.copy(ROOT / "examples" / FILES[sid] / "attention.py",
                        class_dir / sid / "attention.py")
    out = base / "summary"
    assert main(["summary", str(base / "run"), "-o", str(out), "--class-dir", str(class_dir),
                 "--stubs", str(ROOT / "assignments")]) == 0
    return out / "summary.html"


def test_summary_renders_in_chromium(summary_page: Path, tmp_path: Path) -> None:
    page = summary_page.read_text(encoding="utf-8")
    assert not re.search(r"<script\b", page, re.I)
    shot = tmp_path / "class-summary.png"
    run = chromium(f"--screenshot={shot}", summary_page.as_uri())
    assert run.returncode == 0, run.stderr[-2000:]
    assert console(run.stderr) == []
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, len(data)
    keep = os.environ.get("GRADER_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)

    test_copy = tmp_path / "measure.html"
    text = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page)
    text = text.replace("<head>", "<head>" + ERRORS, 1).replace("</body>", MEASURE + "</body>")
    test_copy.write_text(text, encoding="utf-8")
    run = chromium("--dump-dom", test_copy.as_uri())
    assert run.returncode == 0, run.stderr[-2000:]
    found = re.search(r'<pre id="__measure">(.*?)</pre>', run.stdout, re.S)
    assert found, "the measuring script did not run:\n" + run.stderr[-2000:]
    m = json.loads(html.unescape(found.group(1)))
    assert m["errors"] == [] and m["scripts"] == 2
    assert m["title"] and 0 <= m["title"]["top"] < HEIGHT and m["title"]["h"] > 0
    assert len(m["svgs"]) == 4
    for s in m["svgs"]:
        assert s["w"] > 100 and s["h"] > 100, s
    titles = {s["title"] for s in m["svgs"]}
    assert "total (6)" in titles and any("convergence_probe" in t for t in titles)
    assert m["page"]["w"] <= m["page"]["vw"], "the page must not scroll sideways"


def test_side_by_side_page_renders(summary_page: Path, tmp_path: Path) -> None:
    pair = summary_page.parent / "pairs" / "attention--bob--carol.html"
    shot = tmp_path / "pair.png"
    run = chromium(f"--screenshot={shot}", pair.as_uri())
    assert run.returncode == 0, run.stderr[-2000:]
    assert console(run.stderr) == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
