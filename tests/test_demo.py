"""The main job end to end (quick settings), and its page opened in headless Chromium."""
import re
import shutil
import subprocess

import cv2
import numpy as np
import pytest

from training.demo import run_demo


@pytest.fixture(scope="module")
def demo_page(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("demo")
    assert run_demo(root / "results", root / "work", quick=True) == 0
    return root / "results" / "index.html"


@pytest.mark.slow
def test_demo_writes_a_page_with_every_panel(demo_page):
    text = demo_page.read_text()
    for title in ("person", "garment", "keypoints", "parsing", "predicted layout", "warped cloth",
                  "try-on (layout)", "non-parametric", "coarse result", "viton", "truth"):
        assert f"<th>{title}</th>" in text
    images = re.findall(r'<img src="([^"]+)"', text)
    # 2 real persons x 3 garments x 8 panels, 1 real person x (lower, dress) x 3 panels, 2 synthetic pairs x 7
    # panels, curves, representation figure.
    assert len(images) == 2 * 3 * 8 + 1 * 2 * 3 + 2 * 7 + 2
    for source in images:
        image = cv2.imread(str(demo_page.parent / source))
        assert image is not None and image.std() > 5, source  # a real picture, not a blank
    assert "trained here only on the\nproject's synthetic world" in text
    full = re.findall(r'<a href="([^"]+)">768x1024 result</a>', text)
    assert len(full) == 6 + 2 and cv2.imread(str(demo_page.parent / full[-1])).shape == (1024, 768, 3)
    assert "<h2>Real photos: lower-body garments and dresses</h2>" in text and "<br>lower<br>" in text


@pytest.mark.slow
def test_demo_page_renders_its_images_in_chromium(demo_page, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run does)")
    flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000"]
    dom = subprocess.run([*flags, "--dump-dom", demo_page.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    assert 'data-broken-images="0"' in dom, dom[-500:]
    screenshot = tmp_path / "page.png"
    subprocess.run([*flags, f"--screenshot={screenshot}", "--window-size=1800,1200", demo_page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    page = cv2.imread(str(screenshot))
    # The first result row (below the heading and text) holds photos: far from a blank page.
    row = page[250:600, 150:1700]
    assert row.std() > 30 and (np.abs(np.diff(row.astype(int), axis=1)) > 40).mean() > 0.02
