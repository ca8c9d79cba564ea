#!/usr/bin/python3
"""Opens a medpipe report.html in headless Chromium (Selenium + chromium-driver)
from file:// and checks what a reader sees: the split table, that every image
loaded, one bar per split in the classes chart, and that the page fetched
nothing but local files. Writes a screenshot. Exit 0 when every check holds;
prints one line per failed check otherwise.

usage: report_browser.py REPORT_HTML SCREENSHOT_PNG
"""
import json
import pathlib
import sys
import tempfile

from selenium import webdriver
from selenium.webdriver.chrome.service import Service


def main():
    html = pathlib.Path(sys.argv[1]).resolve()
    shot = pathlib.Path(sys.argv[2])
    profile = tempfile.mkdtemp(prefix="medpipe-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                "--user-data-dir=" + profile, "--window-size=1280,2400",
                # Every host name resolves to nothing: a fetch could not leave
                # the machine even if the page tried.
                "--host-resolver-rules=MAP * ~NOTFOUND"]:
        opts.add_argument(arg)
    # The DevTools network log: every request the page made, whatever the
    # Resource Timing API leaves out (it lists no file:// images).
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    failures = []
    try:
        driver.get_log("performance")  # drop the start page's requests
        driver.get(html.as_uri())
        driver.execute_async_script("""
            var done = arguments[arguments.length - 1];
            if (document.readyState === 'complete') done(); else window.addEventListener('load', function(){ done(); });
        """)
        facts = driver.execute_script("""
            var t = document.querySelector('table[data-table^="splits"]');
            var cols = t ? Array.from(t.querySelectorAll('thead th[data-col]')).map(function(th){ return th.textContent; }) : [];
            var rows = t ? Array.from(t.querySelectorAll('tbody tr')).map(function(tr){ return tr.dataset.row; }) : [];
            var images = {};
            if (t) t.querySelectorAll('tr[data-row="images"] td').forEach(function(td){ images[td.dataset.col] = +td.textContent; });
            var imgs = Array.from(document.images);
            var chart = document.querySelector('section[id^="classes"] svg.chart');
            return {
              columns: cols, rows: rows, images: images,
              img_count: imgs.length,
              img_broken: imgs.filter(function(i){ return !(i.complete && i.naturalWidth > 0); }).map(function(i){ return i.getAttribute('src'); }),
              bars: chart ? Array.from(chart.querySelectorAll('g.bar')).map(function(g){ return g.dataset.bar; }) : [],
              resources: performance.getEntriesByType('resource').map(function(e){ return e.name; }),
              page: location.protocol
            };
        """)
        splits = [c for c in facts["columns"] if c != "total"]
        if not splits or facts["columns"][-1] != "total":
            failures.append("split table columns: %r" % facts["columns"])
        for row in ["images", "patients", "negatives", "negative_share", "augmented"]:
            if row not in facts["rows"]:
                failures.append("split table has no row %r" % row)
        if facts["images"].get("total", 0) != sum(facts["images"].get(s, 0) for s in splits):
            failures.append("split images do not add up to the total: %r" % facts["images"])
        if facts["img_count"] == 0:
            failures.append("no <img> on the page")
        if facts["img_broken"]:
            failures.append("images not loaded: %r" % facts["img_broken"][:5])
        if facts["bars"] != splits:
            failures.append("classes chart bars %r, splits %r" % (facts["bars"], splits))
        remote = [r for r in facts["resources"] if not (r.startswith("file:") or r.startswith("data:"))]
        if facts["page"] != "file:" or remote:
            failures.append("non-local requests: %r" % remote[:5])
        requested = []
        for entry in driver.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            # Requests of the report's document only (not of Chromium's
            # start page, whose log lines may arrive late).
            if (msg.get("method") == "Network.requestWillBeSent"
                    and msg["params"].get("documentURL", "") == html.as_uri()):
                requested.append(msg["params"]["request"]["url"])
        remote = [u for u in requested if not (u.startswith("file:") or u.startswith("data:"))]
        if remote:
            failures.append("network requests: %r" % remote[:5])
        if not any(u.startswith("file:") or u.startswith("data:") for u in requested):
            failures.append("the request log is empty: the check saw nothing")
        shot.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(shot))
        print(json.dumps({"splits": splits, "images": facts["img_count"], "bars": len(facts["bars"]),
                          "requests": len(requested)}))
    finally:
        driver.quit()
    for f in failures:
        print("FAIL", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
