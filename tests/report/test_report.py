"""The run report: a self-contained HTML file, checked in a real headless browser."""

import os
import re
import shutil
from pathlib import Path

import pytest

from selfsup.config import PretrainConfig
from selfsup.report import build_report
from selfsup.tasks import pretrain

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(os.environ.get("SELFSUP_ARTIFACTS", Path(__file__).resolve().parents[2] / "artifacts"))


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "r"
    pretrain(PretrainConfig(data="digits", method="simclr", epochs=2, image_size=16, out=str(out)))
    return out / "report.html"


def test_pretrain_writes_a_self_contained_report(report):
    page = report.read_text()
    for section in ("curves", "map", "neighbours", "skipped"):
        assert f'id="{section}"' in page
    assert page.count('src="data:image/png;base64,') >= 2 + 6 * 9  # curves, map, 6 grids of 1+8
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched from elsewhere
    assert "knn_top1" in page and "baseline_knn_top1" in page


def test_report_command_rebuilds_it(report):
    report.unlink()
    assert build_report(report.parent) == report and report.exists()


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (scripts/test.sh installs it as root)")
def test_report_in_a_headless_browser(report):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    errors = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(report.as_uri())
        page.wait_for_load_state("load")
        images = page.eval_on_selector_all("img", "all => all.map(i => [i.complete, i.naturalWidth])")
        assert len(images) >= 56 and all(done and width > 0 for done, width in images)
        assert page.locator("#neighbours .grid").count() == 6
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
        browser.close()
    assert errors == []
    assert (ARTIFACTS / "report.png").stat().st_size > 10_000
