"""Drives the web UI's report pages in headless Chromium (as ui_check.py does).

Usage: reports_ui_check.py BASE_URL API_KEY ARTIFACTS_DIR SINCE UNTIL

Opens the Trust tab for every service, follows a service link to that service's view,
opens the Privilege tab and sorts its holders' table by another column. Saves a screenshot
after each step and prints a JSON summary of what it saw; exits non-zero (with a
screenshot) when a step fails.
"""

import json
import sys

from selenium.webdriver.common.by import By

from browser import Browser

base, key, artifacts, since, until = sys.argv[1:6]

browser = Browser(artifacts)
driver, shot, wait = browser.driver, browser.shot, browser.wait
summary = {}
step = "start"


def found(selector):
    return driver.find_elements(By.CSS_SELECTOR, selector)


def fill(element_id, text):
    field = driver.find_element(By.ID, element_id)
    field.clear()
    field.send_keys(text)


def section_rows():
    """Rows per section of the shown report, each row its cells' text."""
    return {
        part.get_attribute("data-section"): [
            [td.text for td in row.find_elements(By.TAG_NAME, "td")]
            for row in part.find_elements(By.CSS_SELECTOR, "tbody tr")
        ]
        for part in found("#trust .report-section")
    }


try:
    step = "load and connect"
    driver.get(base)
    driver.find_element(By.ID, "key").send_keys(key)
    driver.find_element(By.CSS_SELECTOR, "#key-form button").click()

    step = "trust report, every service"
    driver.find_element(By.CSS_SELECTOR, "#tabs button[data-tab=trust]").click()
    fill("trust-since", since)
    fill("trust-until", until)
    driver.find_element(By.ID, "trust-run").click()
    wait(lambda: found("#trust [data-section=accepted_invalid] tbody tr"))
    summary["trust"] = section_rows()
    shot("01-trust")

    step = "one service's trust view"
    link = next(a for a in found("#trust a.service-link") if a.text == "orders")
    link.click()
    wait(lambda: "service orders" in driver.find_element(By.ID, "trust").text
         and found("#trust [data-section=accepted_invalid]"))
    summary["service_scope"] = driver.find_element(By.ID, "trust-scope").text
    summary["service_view"] = section_rows()
    shot("02-trust-orders")

    step = "privilege report"
    driver.find_element(By.CSS_SELECTOR, "#tabs button[data-tab=privilege]").click()
    fill("privilege-since", since)
    fill("privilege-until", until)
    driver.find_element(By.ID, "privilege-run").click()
    wait(lambda: found("#privilege-summary tbody tr"))
    headers = [th.text.strip(" ▼▲") for th in found("#privilege-summary thead th")]
    summary["privilege_headers"] = headers

    def column(name):
        index = headers.index(name)
        return [row.find_elements(By.TAG_NAME, "td")[index].text
                for row in found("#privilege-summary tbody tr")]

    summary["by_unused_scopes"] = column("scopes_unused")
    summary["holders"] = column("holder")
    summary["recommendations"] = [
        td.text for td in found("#privilege [data-section] tbody td:last-child")
    ]
    shot("03-privilege")

    step = "sort the holders by tokens issued"
    driver.find_element(By.CSS_SELECTOR, "#privilege-summary th[data-column=tokens_issued]").click()
    wait(lambda: found("#privilege-summary th.sorted-desc[data-column=tokens_issued]"))
    summary["by_tokens_issued"] = column("tokens_issued")
    shot("04-privilege-sorted")
except Exception as error:  # report which step failed, with a picture of it
    shot("failed")
    print(json.dumps({"failed": step, "error": repr(error), "summary": summary}))
    driver.quit()
    sys.exit(1)
driver.quit()
print(json.dumps(summary))
