"""The dashboard in a real headless Chromium with JavaScript off, driven by selenium through the
system's chromedriver: log in, read the overview, click through to a request and cancel it.

Runs whenever `chromium` (or `chromium-browser`, `google-chrome`) and `chromedriver` are on the
PATH; skipped, saying so, otherwise (README.rst, Development, tells how to install them). The
overview's screenshot is saved in the test's temporary directory, and also to the path in
DASHBOARD_SCREENSHOT when set (that is how docs/dashboard-overview.png is made)."""
from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path

import pytest
import requests

from app.core import clock
from app.embedded import free_port
from app.processes import ServiceProcesses, TemporaryRedis, service_env
from app.storage.client import Store
from tests.support import dashboard_data
from tests.support.settings import make_settings
from tests.support.waiting import wait_until
from tests.ui.conftest import TOKEN

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
BROWSER = next(filter(None, map(shutil.which, BROWSERS)), None)
DRIVER = shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")

pytestmark = pytest.mark.skipif(
    BROWSER is None or DRIVER is None,
    reason="no Chromium and chromedriver on the PATH: the dashboard's browser test did not run "
           "(Debian/Ubuntu: apt-get install chromium chromium-driver)")

WIDTH = 1360


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A Redis of its own (no beat on it: the demo data stays as written), htq's web with tokens
    on, and one worker, which heartbeats and so shows as live."""
    logs = tmp_path_factory.mktemp("browser")
    server = TemporaryRedis()
    server.start()
    procs = ServiceProcesses(service_env(server.url, HTQ_API_TOKENS=TOKEN), logs)
    try:
        store = Store.from_url(server.url)
        dashboard_data.fill(store, make_settings(server.url), clock.now_ms())
        store.redis.close()
        procs.start_worker(name="celery", concurrency=1)
        url = procs.start_web(free_port())
        wait_until(lambda: requests.get(url + "/v1/workers", headers=auth(), timeout=5).json()["items"], 30, 0.1)
        yield url
    finally:
        procs.stop_all()
        server.cleanup()


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = BROWSER
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     f"--window-size={WIDTH},900", "--force-device-scale-factor=1"):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=DRIVER))
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


def click_through(driver, element) -> None:
    """Click a link or button, and wait until the browser has left the page it was on."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.support.wait import WebDriverWait

    page = driver.find_element(webdriver.common.by.By.TAG_NAME, "html")

    def left(_driver) -> bool:
        try:
            page.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as exc:
            # Chrome may say so while its old document is being replaced, instead of "stale".
            if "does not belong to the document" in str(exc):
                return True
            raise
        return False

    element.click()
    WebDriverWait(driver, 10).until(left)


def save_screenshot(driver, path: Path) -> None:
    """The whole page, not only the window (DevTools' capture, which needs no script in the page)."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": WIDTH, "height": size["height"], "scale": 1}})
    path.write_bytes(base64.b64decode(shot["data"]))


def test_log_in_read_the_overview_and_cancel_a_request(site, browser, tmp_path):
    by = webdriver.common.by.By
    scheduled = requests.post(site + "/v1/requests", headers=auth(), timeout=10, json={
        "url": "https://partner.example.com/reminders", "delay": 172800, "json": {"remind": "renewal"}}).json()["id"]

    browser.get("data:text/html,<title>no script</title><script>document.title = 'script ran'</script>")
    assert browser.title == "no script"  # JavaScript is off in this browser

    browser.get(site + "/ui")
    assert browser.current_url.startswith(site + "/ui/login")
    browser.find_element(by.ID, "token").send_keys(TOKEN)
    click_through(browser, browser.find_element(by.XPATH, "//button[text()='Log in']"))

    assert browser.current_url == site + "/ui"
    assert browser.find_element(by.TAG_NAME, "h1").text == "Overview"
    assert len(browser.find_elements(by.CSS_SELECTOR, "svg.chart rect.bar")) == 60
    assert "celery@" in browser.find_element(by.ID, "workers-heading").find_element(by.XPATH, "..").text
    assert "thumbnails" in browser.find_element(by.ID, "queues-heading").find_element(by.XPATH, "..").text
    save_screenshot(browser, tmp_path / "dashboard-overview.png")
    if os.environ.get("DASHBOARD_SCREENSHOT"):
        shutil.copyfile(tmp_path / "dashboard-overview.png", os.environ["DASHBOARD_SCREENSHOT"])

    click_through(browser, browser.find_element(by.CSS_SELECTOR, "a.card.status-scheduled"))
    assert browser.find_element(by.TAG_NAME, "h1").text == "Requests · scheduled"
    click_through(browser, browser.find_element(by.LINK_TEXT, scheduled))
    assert scheduled in browser.find_element(by.TAG_NAME, "h1").text
    click_through(browser, browser.find_element(by.XPATH, "//button[text()='Cancel']"))

    assert browser.find_element(by.CSS_SELECTOR, "p.notice").text == "Canceled."
    assert browser.find_element(by.CSS_SELECTOR, "h1 .badge").text == "canceled"
    assert requests.get(f"{site}/v1/requests/{scheduled}/status", headers=auth(), timeout=10).json()["status"] == \
        "canceled"
    assert browser.find_elements(by.XPATH, "//button[text()='Retry']")
