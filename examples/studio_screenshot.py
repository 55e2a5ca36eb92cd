"""A screenshot of the studio writing one post on a running service, in headless Chromium.

    .venv/bin/python examples/studio_screenshot.py "Why code review makes teams faster" \
        --url http://127.0.0.1:8000 --out docs/studio.png

Needs Debian's chromium and chromium-driver (`make browser`) and selenium (`make install`).
"""

from __future__ import annotations

import argparse
import shutil
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("topic")
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--out", default="studio.png")
    parser.add_argument("--key", default="", help="an API key, when the service asks for one")
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()

    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,900"):
        options.add_argument(flag)
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.get(args.url.rstrip("/") + "/")
        driver.find_element("id", "api_key").send_keys(args.key)
        driver.find_element("id", "topic").send_keys(args.topic)
        driver.find_element("id", "use_cache").click()  # a fresh post
        driver.find_element("id", "generate").click()
        deadline = time.monotonic() + args.timeout
        post = driver.find_element("id", "post")
        while post.get_attribute("data-final") != "yes":
            if driver.find_element("id", "error").is_displayed():
                raise SystemExit(driver.find_element("id", "error").text)
            if time.monotonic() > deadline:
                raise SystemExit("no post before the timeout")
            time.sleep(0.2)
        driver.save_screenshot(args.out)
        print(driver.execute_script("return state.post.text"))
    finally:
        driver.quit()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
