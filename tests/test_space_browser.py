"""The Space in a real browser: Debian's Chromium driven by playwright against the app on 127.0.0.1."""

import os
import re
import shutil
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
ARTIFACTS = Path(os.environ.get("HF_S1_ARTIFACTS", ROOT / "artifacts")) / "space"
MIN_TOKENS, MAX_TOKENS, WAITS = 6, 20, 2



def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def space_url(model, tokenizer, load_space_app):
    import torch

    app = load_space_app()
    from space_settings import SpaceSettings

    # Two generations run at once (compare mode): one intra-op thread each, as the Space sets on CPU.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    settings = SpaceSettings(max_thinking_tokens=64, max_answer_tokens=16, max_new_tokens=48)
    demo = app.build_demo(app.SpaceRuntime(model, tokenizer, settings))
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def page(space_url):
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's Chromium is needed: apt-get install -y chromium"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(space_url)
        page.wait_for_selector("#ask")
        try:
            yield page
        finally:
            browser.close()


def set_slider(page, elem_id: str, value: int) -> None:
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def test_bad_input_shows_an_error_naming_the_fix(page):
    set_slider(page, "min-thinking", 30)
    set_slider(page, "max-thinking", 10)
    page.fill("#question textarea", "What is 2 + 2?")
    page.click("#ask")
    error = page.get_by_text(re.compile("lower the minimum or raise the maximum"))
    error.first.wait_for(timeout=30_000)
    assert page.locator("#chat-forced").inner_text().count("What is 2 + 2?") == 0  # nothing was generated


def test_budget_forcing_streams_waits_and_cut_within_the_budget(page):
    set_slider(page, "min-thinking", MIN_TOKENS)
    set_slider(page, "max-thinking", MAX_TOKENS)
    set_slider(page, "num-waits", WAITS)
    page.locator("#compare input").check()
    page.locator("#chat-plain").wait_for(state="visible")
    page.fill("#question textarea", "What is 12 * 7?")
    page.click("#ask")
    # Both runs (with and without budget forcing) report "done" in the token meter when finished.
    page.wait_for_function("document.querySelector('#token-meter').innerText.split('done in').length === 3",
                           timeout=180_000)
    meter = page.locator("#token-meter").inner_text()
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
