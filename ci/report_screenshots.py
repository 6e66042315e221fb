"""Open the workflow's HTML report in headless Chromium and screenshot every figure it lists.

    python ci/report_screenshots.py results/report.html --out results/report_screenshots

Proves the report renders in a real browser (issue: the HTML report shows the figures). Needs
Debian's `chromium` and `chromium-driver` and `pip install selenium`; not a test dependency.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.common.by import By


def browser(width: int, height: int) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--window-size={width},{height}",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=webdriver.ChromeService(executable_path="/usr/bin/chromedriver"), options=options)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("--out", type=Path, default=Path("results/report_screenshots"))
    parser.add_argument("--categories", default="Feature inversion,Texture synthesis,Style transfer,Guided diffusion")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    url = args.report.resolve().as_uri()
    driver = browser(1400, 1000)
    try:
        driver.get(url)
        time.sleep(2)
        driver.save_screenshot(str(args.out / "00_home.png"))
        shots = 0
        for category in args.categories.split(","):
            driver.get(url)
            time.sleep(1.5)
            entries = driver.find_elements(By.XPATH, f"//*[normalize-space(text())='{category}']")
            if not entries:
                print(f"{category}: not in the report")
                continue
            entries[0].click()
            time.sleep(1)
            names = [cell.text for cell in driver.find_elements(By.XPATH, "//tbody/tr/td[1]")]
            for index, name in enumerate(names):
                eyes = driver.find_elements(By.XPATH, "//tbody/tr/td[2]//a[@iconname='eye']")
                eyes[index].click()
                time.sleep(1.5)
                images = driver.find_elements(By.TAG_NAME, "img")
                shown = [
                    img
                    for img in images
                    if driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img)
                ]
                shots += 1
                target = args.out / f"{shots:02d}_{Path(name).stem}.png"
                driver.save_screenshot(str(target))
                print(f"{category}: {name}: {len(shown)} image(s) rendered -> {target}")
        print(f"{shots} figures opened")
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
