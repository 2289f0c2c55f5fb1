"""A live server and a headless Chromium for the pages' browser tests.

The browser tests need Debian's `chromium` and `chromium-driver` (`.ci/run` installs
them); without them they are skipped, with the reason in pytest's summary. The
accessibility check also needs npm, which fetches the pinned axe-core once into
test-output/.
"""

import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from service import close_app
from tests.conftest import make_app

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "test-output"
SCREENSHOTS = OUTPUT / "screenshots"
AXE_CORE_VERSION = "4.14.1"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--window-size=1280,900",
]


def browser_missing_reason() -> str | None:
    if CHROMIUM is None or CHROMEDRIVER is None:
        return "browser tests need Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "browser tests need selenium (pip install -e '.[test]')"
    return None


@pytest.fixture(scope="module")
def live_server(templates):
    """The app on a seeded SQLite database, served by werkzeug on a free port in a thread."""
    url = templates["sqlite"].create(seeded=True)
    app = make_app(url)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)
    close_app(app)
    templates["sqlite"].drop(url)


def skip_or_fail(reason: str):
    """Skip with the reason; CI (EXPORTCTL_REQUIRE_BROWSER_TESTS=1) fails instead, so it never skips."""
    if os.environ.get("EXPORTCTL_REQUIRE_BROWSER_TESTS") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    reason = browser_missing_reason()
    if reason:
        skip_or_fail(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture(scope="session")
def axe_source() -> str:
    """axe-core's browser build, from the npm package (fetched once, kept under test-output/)."""
    target = OUTPUT / f"axe-core-{AXE_CORE_VERSION}"
    script = target / "node_modules" / "axe-core" / "axe.min.js"
    if not script.exists():
        npm = shutil.which("npm")
        if npm is None:
            skip_or_fail("the accessibility check needs npm to fetch axe-core")
        target.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [
                npm,
                "install",
                "--no-save",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(target),
                f"axe-core@{AXE_CORE_VERSION}",
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode != 0 or not script.exists():
            pytest.fail(f"npm could not install axe-core@{AXE_CORE_VERSION}: {result.stderr[-2000:]}")
    return script.read_text()


def screenshot(driver, name: str, width: int) -> Path:
    """The whole page at `width` CSS pixels (a phone's 390 or a desktop's 1280)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    mobile = width < 600
    metrics = {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": mobile}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    height = driver.execute_script("return Math.ceil(document.documentElement.scrollHeight)")
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {**metrics, "height": min(height, 6000)})
    path = SCREENSHOTS / f"{name}-{width}.png"
    driver.save_screenshot(str(path))
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    return path
