"""Drives authtrail's web UI in headless Chromium (Debian `chromium` + `chromium-driver`).

Usage: ui_check.py BASE_URL API_KEY ARTIFACTS_DIR

Loads the page, enters the key, waits for a live alert, opens it and waits for its
evidence, follows the principal to the timeline, draws the service graph, and runs a query
in the SQL console. Saves a screenshot after each step in ARTIFACTS_DIR and prints a JSON
summary of what it saw; exits non-zero (with a screenshot) when a step fails.
"""

import json
import sys

from selenium.webdriver.common.by import By

from browser import Browser

base, key, artifacts = sys.argv[1], sys.argv[2], sys.argv[3]

browser = Browser(artifacts)
driver, shot, wait = browser.driver, browser.shot, browser.wait
summary = {}
step = "start"


def rows(selector):
    return driver.find_elements(By.CSS_SELECTOR, selector)


try:
    step = "load"
    driver.get(base)
    assert driver.title == "authtrail", driver.title
    shot("01-loaded")

    step = "connect and wait for a live alert"
    driver.find_element(By.ID, "key").send_keys(key)
    driver.find_element(By.CSS_SELECTOR, "#key-form button").click()
    wait(lambda: len(rows("#alerts tbody tr")) > 0)
    alert_rows = rows("#alerts tbody tr")
    summary["alerts"] = [row.text for row in alert_rows]
    shot("02-live-alerts")

    step = "open an alert and wait for its evidence"
    alert_rows[-1].click()
    wait(lambda: driver.find_elements(By.CSS_SELECTOR, "#evidence table")
         and not any("next flush" in p.text for p in rows("#evidence p")))
    summary["detail"] = driver.find_element(By.ID, "alert-detail").text
    summary["evidence_ids"] = [
        row.find_elements(By.TAG_NAME, "td")[-1].text for row in rows("#evidence tbody tr")
    ]
    shot("03-alert-evidence")

    step = "principal timeline"
    driver.find_element(By.CSS_SELECTOR, "#alert-detail a.link").click()
    wait(lambda: len(rows("#timeline tbody tr")) > 0)
    summary["timeline_rows"] = len(rows("#timeline tbody tr"))
    shot("04-principal-timeline")

    step = "service graph"
    driver.find_element(By.CSS_SELECTOR, "#tabs button[data-tab=graph]").click()
    wait(lambda: driver.find_elements(By.CSS_SELECTOR, "#graph svg line"))
    summary["graph_edges"] = len(rows("#graph svg line"))
    summary["graph_anomalous"] = len(rows("#graph svg line.anomalous"))
    shot("05-service-graph")

    step = "SQL console"
    driver.find_element(By.CSS_SELECTOR, "#tabs button[data-tab=sql]").click()
    sql = driver.find_element(By.ID, "sql")
    sql.clear()
    sql.send_keys("SELECT id, kind, principal FROM events ORDER BY id LIMIT 5")
    driver.find_element(By.ID, "sql-run").click()
    wait(lambda: len(rows("#sql-table tbody tr")) > 0)
    summary["sql_rows"] = [row.text for row in rows("#sql-table tbody tr")]
    summary["sql_header"] = [th.text for th in rows("#sql-table thead th")]
    shot("06-sql-console")
except Exception as error:  # report which step failed, with a picture of it
    shot("failed")
    print(json.dumps({"failed": step, "error": repr(error), "summary": summary}))
    driver.quit()
    sys.exit(1)
driver.quit()
print(json.dumps(summary))
