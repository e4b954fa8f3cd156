"""End-to-end in a real browser: headless Chromium (Debian's) driven by
Playwright. Opens two chat tabs, sends a message in one and sees it in the
other with its sender's name and time, uploads a file through the form,
fetches it back and finds it in the listing under its own name, and saves
a screenshot of the chat page.

    demo.py BASE_URL SCREENSHOT_PATH UPLOAD_FILE [CA_FILE SPKI_SHA256_HEX]

For an https:// BASE_URL, CA_FILE is the certificate authority Python's
fetches trust, and SPKI_SHA256_HEX the SHA-256 of the server key's
SubjectPublicKeyInfo, which Chromium is told to trust
(--ignore-certificate-errors-spki-list): the test's certificate is trusted
for this browser only, nothing is installed.

Prints "OK ..." lines; any failure raises (exit 1). Every wait is bounded.
"""

import base64
import ssl
import sys
import urllib.request

from playwright.sync_api import sync_playwright

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def main():
    base, shot, upload = sys.argv[1], sys.argv[2], sys.argv[3]
    flags, tls = list(FLAGS), None
    if len(sys.argv) > 5:
        tls = ssl.create_default_context(cafile=sys.argv[4])
        spki = base64.b64encode(bytes.fromhex(sys.argv[5])).decode()
        flags.append("--ignore-certificate-errors-spki-list=" + spki)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=flags, timeout=30000)
        ctx = browser.new_context(viewport={"width": 900, "height": 640})
        ctx.set_default_timeout(15000)
        a = ctx.new_page()
        b = ctx.new_page()
        a.goto(base + "/chat")
        b.goto(base + "/chat")
        for page in (a, b):
            page.wait_for_function("document.getElementById('status').textContent === 'connected'")
        # Both tabs see two clients online.
        a.wait_for_function("document.getElementById('online').textContent === '2'")
        a.fill("#name", "Alice")
        a.dispatch_event("#name", "change")
        a.fill("#text", "hello from tab A")
        a.click("#send")
        b.wait_for_selector("#log div:has-text('hello from tab A')")
        # Each message shows its sender and the time it was said.
        got = b.locator("#log div.msg").first
        assert got.locator(".who").text_content() == "Alice", got.inner_html()
        shown = got.locator("time").text_content()
        assert any(ch.isdigit() for ch in shown) and ":" in shown, shown
        assert got.locator("time").get_attribute("datetime").endswith("Z"), got.inner_html()
        b.fill("#text", "and hello back from tab B")
        b.press("#text", "Enter")
        a.wait_for_selector("#log div:has-text('and hello back from tab B')")
        # The server clock arrives through the periodic eventfd broadcast.
        a.wait_for_function("document.getElementById('clock').textContent.includes('GMT')")
        a.screenshot(path=shot, full_page=True)
        print("OK chat between two tabs; screenshot", shot)

        up = ctx.new_page()
        up.goto(base + "/upload")
        up.set_input_files("#file", upload)
        up.click("#submit")
        up.wait_for_selector("h1:has-text('Uploaded')")
        link = up.get_attribute("li a", "href")
        with open(upload, "rb") as f:
            want = f.read()
        got = urllib.request.urlopen(base + link, timeout=15, context=tls).read()
        assert got == want, f"uploaded file differs: {len(got)} vs {len(want)} bytes"
        print("OK upload through the form and fetch back", len(got), "bytes")

        # The listing names the file as it was uploaded, with its size.
        up.goto(base + "/files/")
        name = upload.rsplit("/", 1)[-1]
        row = up.locator("#files tr", has_text=name).first
        cells = row.locator("td").all_text_contents()
        assert cells[0] == name, cells
        assert cells[1].endswith("B"), cells
        assert cells[2][:2] == "20", cells
        print("OK listing shows", cells)
        browser.close()


if __name__ == "__main__":
    main()
