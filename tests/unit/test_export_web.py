"""The exported web page in a real browser: headless Chromium (Debian's /usr/bin/chromium,
driven through playwright, which downloads no browser of its own).

The marker is dragged with real mouse events; the code the page lands on must lie on the
plane (mean + PCA basis for a 20-d vae, the code's own axes for the 2-d cvae), and the
image the page drew, and its ``window.latentExplorer.decode``, must match the app's
``decode`` within 1e-4. The page must make no request but its own file.

Under CI (CI=true) a missing Chromium or playwright fails the test: .ci/run installs both.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch

from explorer.analysis.projection import pca_axes
from explorer.export import export_model
from explorer.models.registry import build_model, config_for_data
from explorer.training.runs import model_config_for

API = "window.latentExplorer"
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-default-apps"]


def _chromium() -> str:
    found = os.environ.get("LATENT_EXPLORER_CHROMIUM") or next(
        (p for p in (shutil.which("chromium"), shutil.which("chromium-browser"), "/usr/bin/chromium") if p
         and os.path.exists(p)), None)
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Chromium is missing: CI installs it (.ci/run: apt-get install chromium)")
        pytest.skip("no Chromium here (apt-get install chromium)")
    return found


@pytest.fixture(scope="module")
def browser():
    executable = _chromium()
    if os.environ.get("CI") == "true":
        import playwright.sync_api as sync_api
    else:
        sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=executable, args=BROWSER_ARGS)
        yield launched
        launched.close()


def model_of(preset: str, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(config_for_data(model_config_for(preset), (1, 28, 28), 10)).eval()


def open_page(browser, path):
    """The page, with every request, console message and page error it makes recorded."""
    page = browser.new_page()
    seen = {"requests": [], "console": [], "errors": []}
    page.on("request", lambda r: seen["requests"].append(r.url))
    page.on("console", lambda m: seen["console"].append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.goto(path.as_uri())
    page.wait_for_function(f"{API} !== undefined")
    return page, seen


def drag(page, to_fraction: tuple[float, float]) -> list[float]:
    """Press on the marker, move in steps to a point of the plane's window, release; the
    plane point the drag aimed at."""
    xmin, xmax, ymin, ymax = page.evaluate(f"{API}.info.extent")
    target = [xmin + to_fraction[0] * (xmax - xmin), ymin + to_fraction[1] * (ymax - ymin)]
    start = page.evaluate(f"{API}.clientPoint({API}.point())")
    end = page.evaluate(f"{API}.clientPoint({target})")
    page.mouse.move(start["x"], start["y"])
    page.mouse.down()
    page.mouse.move(end["x"], end["y"], steps=12)
    page.mouse.up()
    return target


def app_decode(model, code, label=None) -> np.ndarray:
    with torch.no_grad():
        y = None if label is None else torch.tensor([label])
        return model.decode(torch.from_numpy(np.asarray([code], dtype=np.float32)), y).flatten().numpy()


def assert_no_requests(page, seen, path):
    assert seen["requests"] == [path.as_uri()], seen["requests"]
    assert page.evaluate("performance.getEntriesByType('resource').length") == 0
    assert seen["errors"] == [] and not [m for m in seen["console"] if m.startswith("error")], seen


def test_dragging_on_a_pca_plane_decodes_like_the_app(browser, tmp_path):
    model = model_of("vae")  # 20-d codes: the plane is the codes' two principal axes
    rng = np.random.default_rng(0)
    codes = (rng.normal(size=(2000, 20)) * np.linspace(3, 0.2, 20)).astype(np.float32)
    labels = np.arange(2000) % 10
    (path,) = export_model(model, "web", None, tmp_path / "vae.html", codes=codes, labels=labels)
    page, seen = open_page(browser, path)

    before = page.evaluate(f"{API}.code()")
    target = drag(page, (0.8, 0.25))
    point = page.evaluate(f"{API}.point()")
    code = np.asarray(page.evaluate(f"{API}.code()"))
    xmin, xmax, _, _ = page.evaluate(f"{API}.info.extent")
    assert np.allclose(point, target, atol=2 * (xmax - xmin) / 480)  # within two screen pixels of the aim
    assert np.abs(code - np.asarray(before)).max() > 0.1  # the drag moved the code

    axes = pca_axes(codes.astype(np.float64))
    np.testing.assert_allclose(code, axes.origin + point[0] * axes.basis[0] + point[1] * axes.basis[1], atol=1e-5)

    want = app_decode(model, code)
    np.testing.assert_allclose(page.evaluate(f"{API}.image()"), want, atol=1e-4, rtol=0)  # what it drew
    np.testing.assert_allclose(page.evaluate(f"{API}.decode({API}.code())"), want, atol=1e-4, rtol=0)
    assert len(want) == 28 * 28
    some = rng.normal(size=20).tolist()
    np.testing.assert_allclose(page.evaluate(f"{API}.decode({some})"), app_decode(model, some), atol=1e-4, rtol=0)
    with pytest.raises(Exception, match="20 numbers"):
        page.evaluate(f"{API}.decode([1, 2])")
    assert_no_requests(page, seen, path)
    page.close()


def test_a_conditional_page_decodes_the_chosen_class(browser, tmp_path):
    model = model_of("cvae")  # 2-d codes on their own axes, and a class input
    codes = np.random.default_rng(1).normal(size=(500, 2)).astype(np.float32)
    (path,) = export_model(model, "web", "decoder", tmp_path / "cvae.html", codes=codes, labels=np.arange(500) % 10,
                           class_names=tuple("zero one two three four five six seven eight nine".split()))
    page, seen = open_page(browser, path)
    page.select_option("#class", label="three")
    drag(page, (0.2, 0.7))
    code = page.evaluate(f"{API}.code()")
    assert np.allclose(code, page.evaluate(f"{API}.point()"), atol=1e-9)  # a 2-d code is the point itself
    np.testing.assert_allclose(page.evaluate(f"{API}.image()"), app_decode(model, code, 3), atol=1e-4, rtol=0)
    np.testing.assert_allclose(page.evaluate(f"{API}.decode({code}, 7)"), app_decode(model, code, 7), atol=1e-4,
                               rtol=0)
    assert_no_requests(page, seen, path)
    page.close()
