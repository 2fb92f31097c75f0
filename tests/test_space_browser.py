"""The Space in a real browser: Debian's Chromium driven by playwright against the app on 127.0.0.1."""

import os
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
ARTIFACTS = Path(os.environ.get("HF_S1_ARTIFACTS", ROOT / "artifacts")) / "space"
MIN_TOKENS, MAX_TOKENS, WAITS = 6, 20, 2


@pytest.fixture(scope="module")
def space_url(serve_space):
    # Two generations run at once (compare mode): serve_space runs them with one intra-op thread each.
    with serve_space(max_thinking_tokens=64, max_answer_tokens=16, max_new_tokens=48) as (url, _):
        yield url


@pytest.fixture(scope="module")
def browser(space_url):
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's Chromium is needed: apt-get install -y chromium"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser, space_url, width: int, height: int):
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(space_url)
    page.wait_for_selector("#ask")
    return page


@pytest.fixture(scope="module")
def page(browser, space_url):
    page = open_page(browser, space_url, 1400, 1000)
    try:
        yield page
    finally:
        page.close()


def set_slider(page, elem_id: str, value: int) -> None:
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def wait_until_done(page, runs: int = 1, timeout: int = 180_000) -> str:
    """Wait until the meter says every run finished; returns its text."""
    page.wait_for_function(
        f"document.querySelector('#token-meter').innerText.split('done in').length === {runs + 1}", timeout=timeout)
    return page.locator("#token-meter").inner_text()


MIN_ABOVE_MAX = re.compile(r"min thinking tokens \(30\) is above max thinking tokens \(10\): lower the minimum or "
                           r"raise the maximum")


def test_bad_input_shows_an_error_naming_the_fix(page):
    inline = page.locator("#budget-error")
    assert not inline.is_visible()
    set_slider(page, "min-thinking", 30)
    set_slider(page, "max-thinking", 10)
    # The sliders cross: the page says so at once, next to them, before anything is asked.
    inline.wait_for(state="visible", timeout=30_000)
    assert MIN_ABOVE_MAX.search(inline.inner_text()), inline.inner_text()
    page.fill("#question textarea", "What is 2 + 2?")
    page.click("#ask")
    # Asking anyway: a toast and the meter name the fix; nothing is generated.
    page.locator(".toast-wrap").get_by_text(MIN_ABOVE_MAX).first.wait_for(timeout=30_000)
    page.locator("#token-meter").get_by_text(MIN_ABOVE_MAX).wait_for(timeout=30_000)
    assert page.locator("#chat-forced").inner_text().count("What is 2 + 2?") == 0
    # Fixing the sliders takes the inline error away.
    set_slider(page, "max-thinking", 40)
    inline.wait_for(state="hidden", timeout=30_000)


def test_error_after_a_run_resets_the_meter(browser, space_url):
    page = open_page(browser, space_url, 1400, 1000)
    try:
        _error_after_a_run_resets_the_meter(page)
    finally:
        page.close()


def _error_after_a_run_resets_the_meter(page):
    set_slider(page, "min-thinking", 0)
    set_slider(page, "max-thinking", 4)
    set_slider(page, "num-waits", 0)
    page.fill("#question textarea", "What is 3 + 4?")
    page.click("#ask")
    meter = wait_until_done(page)
    assert re.search(r"\d+ / 4 thinking tokens", meter), meter
    set_slider(page, "min-thinking", 30)
    set_slider(page, "max-thinking", 10)
    page.click("#ask")
    page.locator("#token-meter").get_by_text(MIN_ABOVE_MAX).wait_for(timeout=30_000)
    meter = page.locator("#token-meter").inner_text()
    # The previous run's numbers are gone: the meter holds the error only.
    assert "thinking tokens (min" not in meter and "done in" not in meter and "/ 4" not in meter, meter
    assert "Not run" in meter
    # The chat keeps the earlier turn; the refused question was not added.
    assert page.locator("#chat-forced").inner_text().count("What is 3 + 4?") == 1


def test_budget_forcing_streams_waits_and_cut_within_the_budget(page):
    set_slider(page, "min-thinking", MIN_TOKENS)
    set_slider(page, "max-thinking", MAX_TOKENS)
    set_slider(page, "num-waits", WAITS)
    page.locator("#compare input").check()
    page.locator("#chat-plain").wait_for(state="visible")
    page.fill("#question textarea", "What is 12 * 7?")
    page.click("#ask")
    # Both runs (with and without budget forcing) report "done" in the token meter when finished.
    meter = wait_until_done(page, runs=2)
    forced = re.search(r"With budget forcing: (\d+) / (\d+) thinking tokens \(min (\d+)\) · (\d+) injected", meter)
    assert forced, meter
    used, cap, low, injected = map(int, forced.groups())
    assert (cap, low) == (MAX_TOKENS, MIN_TOKENS)  # the sliders reached the server
    assert MIN_TOKENS <= used <= MAX_TOKENS
    assert re.search(r"Without budget forcing: \d+ thinking tokens \(no budget\)", meter), meter

    # Open the (now collapsed) thought: every injected Wait is its own marked step.
    chat = page.locator("#chat-forced")
    chat.get_by_text("Thinking (budget forcing)").click()
    steps = chat.get_by_text(re.compile(rf"Wait injected \(\d+ of {WAITS}\)"))
    steps.first.wait_for()
    assert injected >= 1 and steps.count() == injected
    assert chat.get_by_text(re.compile(rf"{used} / {MAX_TOKENS} thinking tokens")).count() == 1
    if "cut by the budget" in meter:
        assert chat.get_by_text(f"Budget reached: thinking cut at {MAX_TOKENS} tokens").count() == 1
    # The unforced run never gets a Wait.
    assert page.locator("#chat-plain").get_by_text(re.compile("injected")).count() == 0

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "space_browser.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


# A 1366x768 laptop screen: the whole screen (a full-screen browser), and the page area left by a browser's tabs,
# address and bookmarks bars and the task bar.
LAPTOP_VIEWPORTS = [(1366, 768), (1366, 625)]


def _inside(inner, outer, slack: float = 1.0) -> bool:
    return (inner["y"] >= outer["y"] - slack and inner["y"] + inner["height"] <= outer["y"] + outer["height"] + slack
            and inner["x"] >= outer["x"] - slack and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + slack)


@pytest.mark.parametrize("width,height", LAPTOP_VIEWPORTS)
def test_answer_is_visible_without_scrolling_on_a_laptop(browser, space_url, width, height):
    page = open_page(browser, space_url, width, height)
    try:
        set_slider(page, "min-thinking", 4)
        set_slider(page, "max-thinking", 12)
        set_slider(page, "num-waits", 1)
        page.locator("#compare input").check()
        page.locator("#chat-plain").wait_for(state="visible")
        # Two questions: the second answer sits at the bottom of a chat that has scrolled.
        for runs, question in enumerate(["What is 12 * 7?", "What is 9 squared?"], start=1):
            page.fill("#question textarea", question)
            page.click("#ask")
            page.wait_for_function(
                "document.querySelector('#token-meter').innerText.split('done in').length === 3 && "
                f"document.querySelector('#chat-forced').innerText.split({question!r}).length === 2",
                timeout=180_000)
        page.wait_for_timeout(500)  # the chats' scroll to their last message
        assert page.evaluate("window.scrollY") == 0
        viewport = {"x": 0, "y": 0, "width": width, "height": height}
        for selector in ("#question", "#ask", "#token-meter"):
            box = page.locator(selector).bounding_box()
            assert _inside(box, viewport), (selector, box, viewport)
        for chat in ("#chat-forced", "#chat-plain"):
            chat_box = page.locator(chat).bounding_box()
            messages = page.locator(f"{chat} .message")
            answer = messages.nth(messages.count() - 1)
            assert answer.inner_text().strip() != "What is 9 squared?"  # the bot's last message, not the question
            box = answer.bounding_box()
            # The answer is on screen: inside the chat's visible area, and the chat's area inside the window.
            assert _inside(box, chat_box), (chat, box, chat_box)
            assert _inside(box, viewport), (chat, box, viewport)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"space_laptop_{width}x{height}.png"))
    finally:
        page.close()
