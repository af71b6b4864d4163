"""Headless Chromium (Debian's `chromium` and `chromium-driver`), where the machine has it: the
incident page's browser test drives it through Selenium, and `make demo` takes a screenshot."""

import shutil
import subprocess

CHROMIUM = ("chromium", "chromium-browser")
DRIVER = "chromedriver"
# As root, in a container: no sandbox (Chromium refuses to start as root with one), no GPU.
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage")


def chromium() -> str | None:
    """The Chromium on the PATH, or None."""
    return next((found for found in map(shutil.which, CHROMIUM) if found), None)


def driver():
    """A Selenium WebDriver on headless Chromium that keeps the page's console messages, or
    None where Chromium or its driver is missing."""
    browser, chromedriver = chromium(), shutil.which(DRIVER)
    if not (browser and chromedriver):
        return None
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (*FLAGS, "--window-size=1280,2000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(chromedriver), options=options)


def screenshot(page_path: str, png_path: str, width: int = 1280, height: int = 2400) -> bool:
    """A PNG of the page at `page_path` (a local file); False where there is no Chromium."""
    browser = chromium()
    if not browser:
        return False
    subprocess.run([browser, *FLAGS, "--hide-scrollbars", f"--window-size={width},{height}",
                    f"--screenshot={png_path}", f"file://{page_path}"], check=True,
                   capture_output=True, timeout=120)
    return True
