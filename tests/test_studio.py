"""The studio page in a real headless Chromium (Debian's chromium and chromium-driver, driven by
selenium) against a real Serve app with auth on: the preview grows while the post streams, the
fold and the counter match the final text, copy, three drafts, errors, text never as HTML."""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServeApp

KEY = "studio-key-" + uuid.uuid4().hex
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SHOTS = Path(os.environ.get("STUDIO_SCREENSHOTS", "/tmp/linkedin-posts-studio"))
FOLDS = {"desktop": 210, "mobile": 140}  # the page's rule: these chars or three lines


def fold_at(text: str, chars: int, lines: int = 3) -> int:
    """Where the page folds `text` (deployments/edge/studio/studio.js, foldAt)."""
    cut = chars
    newline = -1
    for _ in range(lines):
        newline = text.find("\n", newline + 1)
        if newline < 0:
            break
    if 0 <= newline < cut:
        cut = newline
    if cut >= len(text):
        return len(text)
    if text[cut] != "\n":
        space = text.rfind(" ", 0, cut + 1)
        if space > 0:
            cut = space
    return cut


@pytest.fixture(scope="module")
def app(
    start_app: Callable[[dict], ServeApp],
    tiny_settings_args: dict,
    tmp_path_factory: pytest.TempPathFactory,
) -> ServeApp:
    keys_file = tmp_path_factory.mktemp("studio-secrets") / "keys.json"
    keys_file.write_text(json.dumps([{"name": "studio", "key": KEY}]))
    generation = {
        **tiny_settings_args["generation"],
        # Long enough bodies, sent piece by piece, that the preview is seen growing.
        "content_max_new_tokens": {"short": 48, "medium": 64, "long": 600},
        "content_min_new_tokens": {"short": 8, "medium": 8, "long": 600},
        "stream_interval_ms": 20,
    }
    security = {
        **tiny_settings_args["security"],
        "auth_enabled": True,
        "api_keys_file": str(keys_file),
    }
    return start_app({**tiny_settings_args, "generation": generation, "security": security})


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def _wait(condition: Callable[[], object], timeout_s: float = 60) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("timed out waiting for the page")


def _open(browser: object, app: ServeApp, key: str = KEY) -> None:
    browser.get(app.url + "/")  # type: ignore[attr-defined]
    field = browser.find_element("id", "api_key")  # type: ignore[attr-defined]
    field.clear()
    field.send_keys(key)


def test_the_page_is_served_under_a_content_security_policy(app: ServeApp) -> None:
    page = httpx.get(app.url + "/")  # no key needed for the page itself
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "<script>" not in page.text and "style=" not in page.text  # no inline code
    assert httpx.get(app.url + "/studio/studio.js").status_code == 200
    auth = {"Authorization": f"Bearer {KEY}"}
    # Only the studio's own files: nothing else of the package is served.
    assert httpx.get(app.url + "/studio/graph.py", headers=auth).status_code == 404
    assert httpx.get(app.url + "/studio/%2e%2e%2fgraph.py", headers=auth).status_code == 404
    assert httpx.post(app.url + "/v1/posts/stream", json={"topic": "No key"}).status_code == 401


def test_a_post_streams_into_the_preview_then_folds_counts_and_copies(
    app: ServeApp, browser: object
) -> None:
    _open(browser, app)
    find = browser.find_element  # type: ignore[attr-defined]
    script = browser.execute_script  # type: ignore[attr-defined]
    find("id", "topic").send_keys("Why <b>small</b> pull requests ship faster")
    find("id", "length").send_keys("long")
    find("id", "use_cache").click()  # off: a fresh post
    find("id", "generate").click()
    seen: list[int] = []

    def final() -> bool:
        post = find("id", "post")
        if post.get_attribute("data-final") == "yes":
            return True
        seen.append(int(post.get_attribute("data-length")))
        return False

    _wait(final)
    growing = sorted({n for n in seen if n > 0})
    assert len(growing) >= 2, f"the preview grew before the post arrived: {growing}"
    text = script("return state.post.text")
    post = find("id", "post")
    fold = fold_at(text, FOLDS["desktop"])
    assert int(post.get_attribute("data-fold")) == fold
    assert post.get_attribute("textContent") == text[:fold].rstrip()
    assert find("id", "more").is_displayed() == (fold < len(text))
    assert find("id", "counter").text == f"{len(text):,} / 3,000"
    assert not post.find_elements("tag name", "b"), "model and user text go in as text"
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SHOTS / "studio-desktop.png"))  # type: ignore[attr-defined]

    find("id", "mobile").click()
    assert int(post.get_attribute("data-fold")) == fold_at(text, FOLDS["mobile"])
    if fold < len(text):
        find("id", "more").click()
        assert post.get_attribute("textContent") == text
    find("id", "copy").click()
    _wait(lambda: find("id", "copied").is_displayed())
    assert find("id", "copy").get_attribute("data-copied") == text
    meta = find("id", "meta").text
    assert "written now" in meta and "total" in meta


def test_three_drafts_side_by_side(app: ServeApp, browser: object) -> None:
    _open(browser, app)
    find = browser.find_element  # type: ignore[attr-defined]
    find("id", "topic").send_keys("Three ways to say no to a feature request")
    find("id", "drafts").click()
    cards = _wait(lambda: browser.find_elements("css selector", "#draft-list .draft"))  # type: ignore[attr-defined]
    assert len(cards) == 3  # type: ignore[arg-type]
    texts = [
        card.find_element("class name", "text").get_attribute("textContent")  # type: ignore[union-attr]
        for card in cards  # type: ignore[union-attr]
    ]
    assert len(set(texts)) == 3, "three seeds, three drafts"
    cards[1].find_element("tag name", "button").click()  # type: ignore[index]
    assert browser.execute_script("return state.post.text") == texts[1]  # type: ignore[attr-defined]
    browser.save_screenshot(str(SHOTS / "studio-drafts.png"))  # type: ignore[attr-defined]


def test_errors_show_readably_and_markup_stays_text(app: ServeApp, browser: object) -> None:
    _open(browser, app, key="not-the-key")
    find = browser.find_element  # type: ignore[attr-defined]
    find("id", "topic").send_keys("Any topic at all")
    find("id", "generate").click()
    error = _wait(lambda: find("id", "error").is_displayed() and find("id", "error").text)
    assert str(error).startswith("401 unauthorized:")
    _open(browser, app)
    find("id", "topic").send_keys("ab")  # too short: a 422 naming the field
    find("id", "generate").click()
    error = _wait(lambda: "422" in find("id", "error").text and find("id", "error").text)
    assert "topic" in str(error)
    # Whatever a post holds is shown as text: markup never becomes elements.
    markup = '<img src=x id="injected"> <script>window.owned = 1</script> #Tag'
    browser.execute_script(  # type: ignore[attr-defined]
        "finish(arguments[0])",
        {"text": markup, "metadata": {"cache": {"hit": False}, "timings_ms": {}}},
    )
    post = find("id", "post")
    assert not browser.find_elements("id", "injected")  # type: ignore[attr-defined]
    assert post.get_attribute("textContent") == markup
    assert browser.execute_script("return window.owned") is None  # type: ignore[attr-defined]
    assert [a.text for a in post.find_elements("tag name", "a")] == ["#Tag"]
