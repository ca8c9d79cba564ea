#!/usr/bin/env python3
"""Drives medpipe serve's page in headless Chromium (Debian chromium +
chromium-driver, python3-selenium): loads /, uploads the files through the
file input, clicks Predict, waits for the results, checks the summary counts
against the JSON API's answer for the same files, and one row; saves a
screenshot.

  web_test.py URL SCREENSHOT.png EXPECTED_SUMMARY_JSON FILE...

Exit 0 when every check passes; the reason on stderr otherwise.
"""
import json
import sys
import tempfile

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def main():
    url, screenshot, expected, files = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4:]
    profile = tempfile.mkdtemp(prefix="medpipe-chromium-")
    o = Options()
    o.binary_location = "/usr/bin/chromium"
    for flag in ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 "--window-size=1200,1400", "--user-data-dir=" + profile]:
        o.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
    try:
        driver.set_page_load_timeout(60)
        driver.get(url)
        driver.find_element(By.ID, "files").send_keys("\n".join(files))
        driver.find_element(By.ID, "predict").click()
        WebDriverWait(driver, 120).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-done"))
        status = driver.find_element(By.ID, "status").text
        if f"{len(files)} image(s) classified" not in status:
            sys.exit(f"status line: {status!r}")
        for level, count in expected.items():
            text = driver.find_element(By.ID, "count-" + level).text
            if not text.startswith(str(count)):
                sys.exit(f"summary {level}: page shows {text!r}, API says {count}")
        rows = driver.find_elements(By.CSS_SELECTOR, "tr.result")
        if len(rows) != len(files):
            sys.exit(f"{len(rows)} result rows for {len(files)} files")
        cells = rows[0].find_elements(By.TAG_NAME, "td")
        if len(cells) != 4 or not cells[0].text or "%" not in cells[2].text or cells[3].text.count("%") != 3:
            sys.exit("first row: " + " | ".join(c.text for c in cells))
        if not driver.find_element(By.ID, "csv-link").get_attribute("href"):
            sys.exit("no CSV link")
        driver.save_screenshot(screenshot)
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
