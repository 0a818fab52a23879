"""Headless Chromium (Debian's ``chromium``) for the report tests: load a page at a given width and
read back what a person would see (layout width, images), or take a screenshot.

The page is a copy of the report with a script appended that measures the layout after the load
event and writes the result into the DOM; ``--dump-dom`` prints that DOM. Only the standard library
and the chromium binary are used."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

_PROBE = """<script>
window.addEventListener('load', () => {
  const root = document.documentElement;
  const imgs = Array.from(document.images);
  const right = root.clientWidth + 0.5;
  const out = {
    scrollWidth: root.scrollWidth, clientWidth: root.clientWidth, innerWidth: window.innerWidth,
    images: imgs.length,
    broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt || i.src.slice(0, 40)),
    overflowing: Array.from(document.querySelectorAll('body *'))
      .filter(e => e.getBoundingClientRect().right > right)
      .map(e => e.tagName + ': ' + (e.getAttribute('alt') || e.textContent || '').trim().slice(0, 80)),
  };
  const pre = document.createElement('pre');
  pre.id = 'lusynth-probe';
  pre.style.display = 'none';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def chromium() -> str | None:
    """The chromium binary, or None when it is not installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _run(args: list[str], profile: Path) -> str:
    exe = chromium()
    assert exe, "chromium is not installed"
    # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start; the page is our own file
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--disable-extensions",
           f"--user-data-dir={profile}", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    if res.returncode:
        raise AssertionError(f"chromium failed ({res.returncode}): {res.stderr[-2000:]}")
    return res.stdout


def measure(html_file: Path, *, width: int = 1280, height: int = 1000) -> dict[str, Any]:
    """Load ``html_file`` at ``width`` x ``height`` CSS pixels (with the browser's own scroll bars);
    return the document's scroll/client width, the images that did not load and the elements whose
    right edge lies past the viewport."""
    with tempfile.TemporaryDirectory(prefix="lusynth-chromium-") as tmp:
        page = Path(tmp) / html_file.name
        text = html_file.read_text(encoding="utf-8")
        page.write_text(text.replace("</body>", _PROBE + "</body>") if "</body>" in text else text + _PROBE, encoding="utf-8")
        dom = _run([f"--window-size={width},{height}", "--virtual-time-budget=10000", "--dump-dom", page.as_uri()], Path(tmp) / "profile")
    start = dom.find('id="lusynth-probe"')
    assert start >= 0, f"the probe did not run (no load event?): {dom[-500:]}"
    body = dom[dom.index(">", start) + 1 : dom.index("</pre>", start)]
    import html

    return json.loads(html.unescape(body))


def screenshot(html_file: Path, png: Path, *, width: int = 1280, height: int = 2400) -> Path:
    """A PNG of the first ``height`` pixels of ``html_file`` rendered ``width`` pixels wide."""
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lusynth-chromium-") as tmp:
        _run(["--hide-scrollbars", f"--window-size={width},{height}", f"--screenshot={png}", html_file.resolve().as_uri()],
             Path(tmp) / "profile")
    return png
