"""The pages in a real headless Chromium against a live server: what an analyst does, and axe-core."""

import json

import pytest

from tests.pages.conftest import screenshot

pytestmark = pytest.mark.browser


def wait_for(driver, condition, timeout=10):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def by_css(driver, selector):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, selector)


def all_css(driver, selector):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def test_search_viet_reaches_vietnam_with_d1_and_d3_pending_removal(browser, live_server):
    browser.get(live_server + "/")
    box = by_css(browser, "input#q")
    box.send_keys("viet")
    box.submit()
    wait_for(browser, lambda d: d.current_url.endswith("/countries/VN"))

    assert by_css(browser, "h1").text == "Vietnam"
    assert "Export restrictions apply" in by_css(browser, ".verdict").text
    # One banner for the removal announced for both lists, with its dates and sources.
    (banner,) = all_css(browser, ".banner")
    assert "Pending removal from D:1 (National Security) and D:3 (Chemical & Biological)" in banner.text
    assert "Announced 2026-02-20" in banner.text
    assert "VTC News" in banner.text
    assert all(
        a.get_attribute("href").startswith("http") for a in banner.find_elements("css selector", ".sources a")
    )
    # The evidence: each pending entry's sources are links, with their citations.
    d1 = by_css(browser, "#entry-us-ear-d1")
    assert "pending removal" in d1.text
    links = d1.find_elements("css selector", ".sources a")
    assert links and all(a.get_attribute("href").startswith("http") for a in links)
    assert "VTC News" in d1.text  # each source names its publisher (and citation, where it has one)


def test_changing_the_date_to_2016_11_03_shows_d5_listed(browser, live_server):
    browser.get(live_server + "/countries/VN")
    date_input = by_css(browser, "input#as_of")
    # A date input takes typed digits in the locale's order; setting the value is what a picker does.
    browser.execute_script("arguments[0].value = '2016-11-03'", date_input)
    by_css(browser, "form.when button[type=submit]").click()
    wait_for(browser, lambda d: "as_of=2016-11-03" in d.current_url)

    assert "2016-11-03" in by_css(browser, "#answering").text
    d5 = by_css(browser, "#entry-us-ear-d5")
    status = d5.find_element("css selector", 'td[data-label="Status"]').text
    assert "listed" in status and "removed" not in status
    # The timeline is drawn by the server: a D:5 lane with a listed run, then removed.
    lane_titles = [t.get_attribute("textContent") for t in all_css(browser, ".timeline svg g title")]
    assert any(t.startswith("D:5: removed from 2016-11-04") for t in lane_titles)


def test_d1_list_page_has_vietnam_among_its_members(browser, live_server):
    browser.get(live_server + "/countries/VN")
    by_css(browser, "#entry-us-ear-d1 th a").click()
    wait_for(browser, lambda d: d.current_url.endswith("/lists/us-ear-d1"))

    assert "D:1" in by_css(browser, "h1").text
    members = {
        row.find_element("css selector", "th a").text: row.text
        for row in all_css(browser, "table.members tbody tr")
    }
    assert "Vietnam" in members
    assert "pending removal" in members["Vietnam"]


def test_status_filter_on_the_list_page(browser, live_server):
    from selenium.webdriver.support.ui import Select

    browser.get(live_server + "/lists/us-ear-d1")
    Select(by_css(browser, "select#status")).select_by_value("pending_removal")
    by_css(browser, "form.when button[type=submit]").click()
    wait_for(browser, lambda d: "status=pending_removal" in d.current_url)
    rows = all_css(browser, "table.members tbody tr")
    assert [r.find_element("css selector", "th a").text for r in rows] == ["Vietnam"]


def run_axe(driver, axe_source: str) -> list[dict]:
    """axe-core's violations on the current page (an error in axe counts as a critical one)."""
    driver.execute_script(axe_source)
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']}).then(r => done(JSON.stringify(r.violations)))"
        ".catch(e => done(JSON.stringify([{id: 'axe-error', impact: 'critical', help: String(e)}])));"
    )
    return json.loads(result)


def test_the_accessibility_check_can_fail(browser, live_server, axe_source):
    """The check itself works: a page with an unlabelled control and an image without text fails it."""
    browser.get(live_server + "/")
    browser.execute_script(
        "const main = document.querySelector('main');"
        "main.insertAdjacentHTML('beforeend', '<img src=\"/static/pages.css\"><input type=\"text\">');"
        "document.querySelector('label[for=q]').remove();"
    )
    found = {v["id"] for v in run_axe(browser, axe_source) if v.get("impact") in ("serious", "critical")}
    assert {"image-alt", "label"} <= found


PAGES = {
    "home": "/",
    "search": "/search?q=united",
    "country": "/countries/VN",
    "country-2016": "/countries/VN?as_of=2016-11-03",
    "list": "/lists/us-ear-d1",
    "lists": "/lists",
    "changes": "/changes",
    "signin": "/signin",
    "error": "/countries/XX",
}


@pytest.mark.parametrize("name", PAGES)
def test_every_page_type_passes_axe_and_is_screenshotted(browser, live_server, axe_source, name):
    browser.get(live_server + PAGES[name])
    for width in (1280, 390):
        assert screenshot(browser, name, width).stat().st_size > 0
        browser.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 600},
        )
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{name} scrolls sideways at {width}px"
        violations = [v for v in run_axe(browser, axe_source) if v.get("impact") in ("serious", "critical")]
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        assert not violations, json.dumps(
            [
                {"id": v["id"], "help": v["help"], "nodes": [n["target"] for n in v.get("nodes", [])][:5]}
                for v in violations
            ],
            indent=1,
        )
