"""The headless Chromium the web UI checks drive (ui_check.py, reports_ui_check.py).

AUTHTRAIL_CHROMIUM and AUTHTRAIL_CHROMEDRIVER override Debian's paths.
"""

import os

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait


class Browser:
    """One headless Chromium window; screenshots go to `artifacts`."""

    def __init__(self, artifacts):
        os.makedirs(artifacts, exist_ok=True)
        self.artifacts = artifacts
        options = webdriver.ChromeOptions()
        for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
            options.add_argument(flag)
        options.binary_location = os.environ.get("AUTHTRAIL_CHROMIUM", "/usr/bin/chromium")
        service = Service(os.environ.get("AUTHTRAIL_CHROMEDRIVER", "/usr/bin/chromedriver"))
        self.driver = webdriver.Chrome(service=service, options=options)

    def shot(self, name):
        self.driver.save_screenshot(os.path.join(self.artifacts, name + ".png"))

    def wait(self, condition, timeout=90):
        """Polls `condition` until it is truthy; raises TimeoutException past `timeout` s."""
        return WebDriverWait(self.driver, timeout, poll_frequency=0.2).until(
            lambda _: condition()
        )
