"""The web console in a real headless browser (Debian's chromium through chromedriver, driven by selenium):
signing in through the form, the voucher drawing checked on a screenshot, the live feed's script under the
console's content security policy.

Set TALLY_CONSOLE_SCREENSHOTS=DIR to keep the pages' screenshots there (docs/ has the README's)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.e2e import png
from tests.e2e.conftest import Server, adjustment_request, line, md
from tests.e2e.console_support import Ledger, console_server

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT_S = 10
WINDOW = "1200,860"
CHROMA_MIN = 80  # max - min of a pixel's channels: the red and green of the flows, not white or grey
SPLIT = (("alice", 2_500_000), ("bob", 1_500_000), ("merchant-us", 1_000_000))


@pytest.fixture(scope="module", params=["sqlite"])
def console(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Ledger]]:
    with console_server(request, tmp_path_factory) as found:
        yield found


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(path):
            pytest.fail(f"{path} is missing: apt-get install -y chromium chromium-driver (.ci/run does it)")
    options = Options()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     f"--window-size={WINDOW}", "--force-device-scale-factor=1", "--hide-scrollbars"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


def test_sign_in_then_the_voucher_view_draws_every_line(console, browser: webdriver.Chrome) -> None:
    srv, ledger = console
    funding = srv.funding_account("console-a")
    voucher = srv.accounting().Post(adjustment_request(
        "console-split", [line(funding.code, "debit", sum(units for _, units in SPLIT)),
                          *(line(code, "credit", units) for code, units in SPLIT)], reason="month-end payout"),
        metadata=md("console-a")).vouchers[0]
    browser.get(f"{ledger.console_url}/vouchers/{voucher.id}")
    assert browser.title.startswith("Sign in")
    browser.find_element(By.NAME, "key").send_keys(ledger.reader_key)
    browser.find_element(By.CSS_SELECTOR, "form.login button").click()
    WebDriverWait(browser, WAIT_S).until(lambda d: d.title.startswith("Voucher"))

    svg = browser.find_element(By.CSS_SELECTOR, "svg.voucher-flow")
    paths = svg.find_elements(By.CSS_SELECTOR, "path.flow")
    rows = browser.find_elements(By.CSS_SELECTOR, "table.lines tbody tr")
    assert len(paths) == len(rows) == len(voucher.lines) == 4
    shot = png.decode(svg.screenshot_as_png)
    for path in paths:
        x, y = browser.execute_script(MIDPOINT, path, svg)
        assert _coloured_near(shot, x, y), f"nothing drawn at ({x}, {y}) for line {path.get_attribute('data-line')}"
    assert not _coloured_near(shot, 3, 3), "the drawing's corner should be background"
    _keep(browser, "console-voucher.png")


def test_accounts_tree_and_live_feed_follow_new_events(console, browser: webdriver.Chrome) -> None:
    srv, ledger = console
    browser.get(f"{ledger.console_url}/")
    if browser.title.startswith("Sign in"):
        browser.find_element(By.NAME, "key").send_keys(ledger.reader_key)
        browser.find_element(By.CSS_SELECTOR, "form.login button").click()
        WebDriverWait(browser, WAIT_S).until(lambda d: d.title.startswith("Accounts"))
    nested = browser.find_elements(By.CSS_SELECTOR, "ul.tree li ul li a.account")
    assert {a.text for a in nested} >= {"merchant-eu", "merchant-us"}
    _keep(browser, "console-accounts.png")

    browser.get_log("browser")  # only what the feed's page logs counts below
    browser.get(f"{ledger.console_url}/events")
    shown = len(browser.find_elements(By.CSS_SELECTOR, "table.events tbody tr"))
    posted = srv.transfer("console-a", "bob", "alice", 1_000).vouchers[0]
    WebDriverWait(browser, WAIT_S).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "table.events tbody tr")) > shown)
    newest = browser.find_element(By.CSS_SELECTOR, "table.events tbody tr")
    assert "ledger.entry.posted" in newest.text and posted.id[-8:] in newest.text
    assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"], "errors in the browser console"


MIDPOINT = """
const [path, svg] = arguments;
const point = path.getPointAtLength(path.getTotalLength() / 2);
const m = path.getScreenCTM(), box = svg.getBoundingClientRect();
return [Math.round(point.x * m.a + point.y * m.c + m.e - box.left),
        Math.round(point.x * m.b + point.y * m.d + m.f - box.top)];
"""


def _coloured_near(shot: png.Image, x: int, y: int, reach: int = 2) -> bool:
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            px, py = x + dx, y + dy
            if 0 <= px < shot.width and 0 <= py < shot.height:
                rgb = shot.rgb(px, py)
                if max(rgb) - min(rgb) >= CHROMA_MIN:
                    return True
    return False


def _keep(browser: webdriver.Chrome, name: str) -> None:
    folder = os.environ.get("TALLY_CONSOLE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        assert browser.save_screenshot(str(Path(folder) / name))
