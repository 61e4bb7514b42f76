"""The review page in a real browser: headless Chromium (Debian) opens it from the file system.

Driven through Chromium's DevTools protocol over a pipe (tests/chromium.py) rather than Selenium: no new
Python dependency and no chromedriver, and the same protocol gives the two things the checks need, real
mouse clicks and screenshots of each WebGL canvas from the compositor. WebGL2 comes from SwiftShader.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chromium import Browser, ensure_installed
from review_patient import VISITS, lesion_centroid_mm, track_and_assess, write_patient

#: installs Debian's chromium: BRAINMETS_SYSTEM_TESTS=1 only
pytestmark = [pytest.mark.system, pytest.mark.slow]


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The review page of the generated patient P1 (tracked and assessed), built with the installed NiiVue."""
    from brainmets.review.page import build_review_page, read_niivue

    read_niivue()  # fails in one line, naming `make env`, when the viewer was not installed
    folder = write_patient(tmp_path_factory.mktemp("review") / "P1")
    track_and_assess(folder)
    build_review_page(folder, folder / "review.html")
    return folder / "review.html"


@pytest.fixture(scope="module")
def browser(page: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """Chromium with the page loaded from file:// (every visit's viewer ready)."""
    chromium = Browser(ensure_installed(), tmp_path_factory.mktemp("chromium-profile"))
    try:
        downloads = page.parent / "downloads"
        downloads.mkdir()
        chromium.send("Browser.setDownloadBehavior", behavior="allow", downloadPath=str(downloads))
        chromium.open(page.as_uri())
        chromium.wait_for("document.documentElement.dataset.ready === 'true' || document.documentElement.dataset.error")
        assert chromium.evaluate("document.documentElement.dataset.error || ''") == ""
        yield chromium
    finally:
        chromium.close()


def settle(browser: Browser) -> None:
    """Wait for two animation frames, so that NiiVue has drawn what the last action changed."""
    browser.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def test_every_visit_is_drawn(browser: Browser) -> None:
    """One canvas per visit, each showing an image: many grey levels, not one colour."""
    assert browser.evaluate("document.querySelectorAll('canvas').length") == len(VISITS)
    for index in range(len(VISITS)):
        pixels = browser.screenshot(f"#viewer-{index}").reshape(-1, 3)
        assert pixels.std() > 20, f"visit {index}: blank canvas"
        assert len(np.unique(pixels, axis=0)) > 50, f"visit {index}: too few colours for a drawn scan"


def test_clicking_a_lesion_moves_every_crosshair_to_its_centroid(browser: Browser, page: Path) -> None:
    """A click on lesion 3's row at the second visit puts every visit's crosshair on its centroid (mm)."""
    lesions = pd.read_csv(page.parent / "lesions.tsv", sep="\t")
    row = lesions[(lesions["lesion_id"] == 3) & (lesions["timepoint"] == VISITS[1])].iloc[0]
    tracked = row[["centroid_x_mm", "centroid_y_mm", "centroid_z_mm"]].to_numpy(float)
    assert np.allclose(tracked, lesion_centroid_mm(3), atol=0.01)
    before = np.array(browser.evaluate("brainmetsReview.crosshairsMM()"))
    assert not np.allclose(before, tracked, atol=2.0), "the crosshairs start on the lesion: nothing would be tested"
    browser.click(f"tr.lesion[data-lesion='3'][data-timepoint='{VISITS[1]}'] td.id")
    settle(browser)
    after = np.array(browser.evaluate("brainmetsReview.crosshairsMM()"))
    assert after.shape == (len(VISITS), 3)
    assert np.allclose(after, tracked[None, :], atol=0.5), after


def test_clicking_in_one_viewer_moves_the_crosshair_of_every_visit(browser: Browser) -> None:
    """The crosshair is shared (NiiVue's broadcastTo): a click in the first visit's view moves all three alike."""
    before = np.array(browser.evaluate("brainmetsReview.crosshairsMM()"))
    r = browser.rect("#viewer-0")
    x, y = r["x"] + r["width"] * 0.2, r["y"] + r["height"] * 0.3  # inside the top-left plane
    for kind in ("mousePressed", "mouseReleased"):
        browser.send("Input.dispatchMouseEvent", session=True, type=kind, x=x, y=y, button="left", clickCount=1)
    settle(browser)
    after = np.array(browser.evaluate("brainmetsReview.crosshairsMM()"))
    assert not np.allclose(after[0], before[0], atol=1.0), "the click did not move the first crosshair"
    assert np.allclose(after, after[0][None, :], atol=0.01), after


def test_entropy_toggle_changes_the_picture(browser: Browser) -> None:
    """Ticking the total-entropy box overlays the map: the canvas changes; unticking restores it."""
    browser.evaluate("brainmetsReview.goTo([-13, -19, 20])")
    settle(browser)
    plain = browser.screenshot("#viewer-1").astype(int)
    browser.click("#entropy-toggle")
    settle(browser)
    assert browser.evaluate("document.getElementById('entropy-toggle').checked") is True
    overlaid = browser.screenshot("#viewer-1").astype(int)
    changed = np.abs(overlaid - plain).sum(axis=2) > 30
    assert changed.mean() > 0.01, f"only {changed.mean():.4%} of the pixels changed"
    browser.click("#entropy-toggle")
    settle(browser)
    assert np.abs(browser.screenshot("#viewer-1").astype(int) - plain).max() <= 2


def test_rejecting_a_lesion_saves_the_expected_review(browser: Browser, page: Path) -> None:
    """Reject lesion 3 at the second visit, save: review.tsv names it, and tracking and RANO-BM take it in."""
    browser.click(f"tr.lesion[data-lesion='3'][data-timepoint='{VISITS[1]}'] button.reject")
    browser.click("#save")
    saved = page.parent / "downloads" / "review.tsv"
    browser.wait_for("true")  # one round trip
    for _ in range(100):
        if saved.is_file() and saved.stat().st_size:
            break
        browser.evaluate("new Promise(r => setTimeout(r, 100))")
    assert saved.read_text() == f"lesion_id\ttimepoint\tdecision\tinto\n3\t{VISITS[1]}\treject\t\n"
    # the saved file feeds back into the chain: lesion 3 no longer makes the second visit progression
    before = pd.read_csv(page.parent / "rano_response.tsv", sep="\t", keep_default_na=False)
    assert before["overall_response"].tolist()[1] == "PD"
    track_and_assess(page.parent, review=saved)
    after = pd.read_csv(page.parent / "rano_response.tsv", sep="\t", keep_default_na=False)
    assert after["overall_response"].tolist()[1] == "SD"
    assert after["review"].tolist()[1] == "lesion 3: rejected"
