#!/usr/bin/env python3
"""Drives medpipe serve's page in headless Chromium (Debian chromium +
chromium-driver, python3-selenium): loads /, uploads the files through the
file input, clicks Predict, waits for the results, checks the summary counts
against the JSON API's answer for the same files, and one row; saves a
screenshot. With --expect-warning TEXT, TEXT must be shown (displayed, not
merely in the DOM) above the upload form when the page loads and above the
results after the prediction: the untrained model's warning.

  web_test.py [--expect-warning TEXT] URL SCREENSHOT.png EXPECTED_SUMMARY_JSON FILE...

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
    args = sys.argv[1:]
    warning = None
    if args[:1] == ["--expect-warning"]:
        warning, args = args[1], args[2:]
    url, screenshot, expected, files = args[0], args[1], json.loads(args[2]), args[3:]
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
        if warning is not None:
            banner = driver.find_element(By.ID, "model-warning")
            if not banner.is_displayed() or warning not in banner.text:
                sys.exit(f"page warning: {banner.text!r} (displayed: {banner.is_displayed()})")
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
        if warning is not None:
            shown = driver.find_element(By.ID, "result-warning")
            if not shown.is_displayed() or warning not in shown.text:
                sys.exit(f"results warning: {shown.text!r}")
        driver.save_screenshot(screenshot)
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
