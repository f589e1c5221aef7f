"""The upload page and the docs page in a real browser: Playwright driving Debian's chromium.

A local stack of its own, whose presigned-POST limit (SQUEEZER_MAX_POST_SIZE)
is 5 MiB, so the 9 MiB file goes up in two signed parts (8 MiB + 1 MiB) and
the page's CRC64NVME is checked by the API and storage; the two small files
go as presigned POST forms (multipart/form-data). Every console error, uncaught exception or CSP
violation fails the test. The finished page is saved as
``.state/test-artifacts/app.png`` (``SQUEEZER_UPDATE_SCREENSHOT=1`` also
copies it to ``docs/app.png``, the README's).
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest
import requests
import zstandard
from awscrt.checksums import crc64nvme

from infra.local import LocalStack, free_ports

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / ".state" / "test-artifacts"
MiB = 1024**2
SMALL_LIMIT = 5 * MiB
FINISH_TIMEOUT_MS = 120_000


def _chromium() -> Path:
    """Debian's chromium, installed with ``make browser`` when missing; skip only if that cannot work."""
    if not CHROMIUM.exists():
        subprocess.run(["make", "-s", "browser"], cwd=ROOT, check=False, timeout=900)
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium and 'make browser' could not install Debian's chromium (apt)")
    return CHROMIUM


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    api_port, moto_port = free_ports(2)
    env = {"SQUEEZER_MAX_POST_SIZE": str(SMALL_LIMIT)}
    with LocalStack(
        api_port=api_port, moto_port=moto_port, state_dir=tmp_path_factory.mktemp("browser-stack"), env=env
    ) as running:
        yield running


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(executable), args=["--no-sandbox"])
        yield chromium
        chromium.close()


class Watched:
    """A page whose console errors, uncaught exceptions and CSP violations are collected."""

    def __init__(self, browser, tmp_path: Path) -> None:
        self.context = browser.new_context(accept_downloads=True, viewport={"width": 1200, "height": 900})
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.problems.append(f"uncaught: {error}"))
        # Playwright's init scripts are not subject to the page's CSP.
        self.page.add_init_script(
            "document.addEventListener('securitypolicyviolation', (e) => console.error("
            "'CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));"
        )

    def _console(self, message) -> None:
        if message.type in ("error", "warning"):
            self.problems.append(f"console {message.type}: {message.text}")

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def watched(browser, tmp_path):
    page = Watched(browser, tmp_path)
    yield page
    page.close()


def _log_like(size: int, seed: int) -> bytes:
    """Compressible but not trivial: log lines with varying fields."""
    rng = random.Random(seed)
    words = ["GET", "POST", "PUT", "/jobs", "/files", "/app", "ok", "slow", "retry", "user", "tenant"]
    lines = []
    total = 0
    while total < size:
        line = (
            f"2026-12-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:"
            f"{rng.randint(0, 59):02d}Z {rng.choice(words)} {rng.choice(words)} id={rng.getrandbits(48):012x} "
            f"bytes={rng.randint(0, 10**7)} ms={rng.random() * 900:.2f}\n"
        )
        lines.append(line)
        total += len(line)
    return "".join(lines).encode()[:size]


@pytest.fixture
def files(tmp_path) -> dict[str, bytes]:
    contents = {
        "big.log": _log_like(9 * MiB, seed=1),  # over the 5 MiB limit: a multipart upload in two parts
        "notes.txt": ("Squeezer browser test\n" * 2000).encode(),
        "data.json": json.dumps([{"n": n, "square": n * n, "even": n % 2 == 0} for n in range(3000)]).encode(),
    }
    for name, data in contents.items():
        (tmp_path / name).write_bytes(data)
    return contents


def test_upload_three_files_and_download_a_result(stack, watched, files, tmp_path):
    from playwright.sync_api import expect

    page = watched.page
    sent: list[tuple[str, str]] = []
    page.on("request", lambda request: sent.append((request.method, request.url)))
    page.goto(f"{stack.api_url}/app")
    page.get_by_label("API token").fill(str(stack.token))
    page.get_by_label("Algorithm").select_option("zstd")
    page.get_by_label("Level", exact=True).fill("3")
    page.locator("#files").set_input_files([str(tmp_path / name) for name in files])
    expect(page.locator("#results tbody tr")).to_have_count(3)
    page.get_by_role("button", name="Compress").click()

    expect(page.locator("#status")).to_contain_text("Done:", timeout=FINISH_TIMEOUT_MS)
    expect(page.locator("#status")).to_contain_text("3 completed, 0 failed")
    for name in files:
        row = page.locator("#results tbody tr", has=page.get_by_role("rowheader", name=name, exact=True))
        expect(row.locator("td").nth(2)).to_have_text("completed")
        expect(row.get_by_role("link", name=f"{name}.zst")).to_be_visible()
    assert page.locator("#overall").evaluate("bar => bar.value") == 1
    # big.log went up in two signed parts, then was completed with its CRC64NVME
    assert [m for m, url in sent if url.endswith("/parts")] == ["POST"]
    assert [m for m, url in sent if url.endswith("/complete")] == ["POST"]
    assert sorted(url.split("partNumber=")[1].split("&")[0] for m, url in sent if "partNumber=" in url) == ["1", "2"]
    # the two small files as presigned POST forms, straight to storage
    assert [m for m, url in sent if url.startswith(stack.endpoint_url) and "partNumber=" not in url] == ["POST", "POST"]
    assert not any(stack.token in url for _, url in sent)
    # the token stays in this tab's sessionStorage, nowhere else
    assert page.evaluate("sessionStorage.getItem('squeezer-token')") == stack.token
    assert page.evaluate("localStorage.length") == 0

    # The result of the multipart upload, through the browser's own download, decompressed.
    with page.expect_download() as started:
        page.get_by_role("link", name="big.log.zst").click()
    download = started.value
    assert download.suggested_filename == "big.log.zst"
    assert (
        zstandard.ZstdDecompressor().decompressobj().decompress(Path(download.path()).read_bytes()) == files["big.log"]
    )
    # And the others by their links.
    for name in ("notes.txt", "data.json"):
        href = page.get_by_role("link", name=f"{name}.zst").get_attribute("href")
        result = requests.get(href, timeout=30)
        assert result.status_code == 200
        assert zstandard.ZstdDecompressor().decompressobj().decompress(result.content) == files[name]

    page.screenshot(path=str(_artifacts() / "app.png"), full_page=True)
    if os.environ.get("SQUEEZER_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(ARTIFACTS / "app.png", ROOT / "docs" / "app.png")
    assert watched.problems == []


def test_the_pages_crc64nvme_is_awscrts(stack, watched):
    page = watched.page
    page.goto(f"{stack.api_url}/app/")  # redirected: the page's relative URLs need /app
    assert page.url == f"{stack.api_url}/app"
    sizes = [0, 1, 7, 8, 9, 255, 4096 + 5, 3 * MiB + 3]
    found = page.evaluate(
        """async (sizes) => {
            const { Crc64Nvme } = await import(new URL("app/crc64nvme.js", location.href).href);
            return sizes.map((size) => {
                const bytes = new Uint8Array(size);
                for (let i = 0; i < size; i++) bytes[i] = (i * 131 + (i >> 9)) & 0xff;
                const whole = new Crc64Nvme().update(bytes);
                const split = new Crc64Nvme().update(bytes.subarray(0, size >> 1)).update(bytes.subarray(size >> 1));
                const resumed = new Crc64Nvme(new Crc64Nvme().update(bytes.subarray(0, 3)).value).update(bytes.subarray(3));
                return [whole.value.toString(), split.value.toString(), resumed.value.toString(), whole.base64];
            });
        }""",
        sizes,
    )
    for size, (whole, split, resumed, b64) in zip(sizes, found, strict=True):
        data = bytes((i * 131 + (i >> 9)) & 0xFF for i in range(size))
        expected = crc64nvme(data)
        assert int(whole) == int(split) == expected, size
        if size >= 3:
            assert int(resumed) == expected, size
        assert b64 == base64.b64encode(expected.to_bytes(8, "big")).decode()
    assert watched.problems == []


def test_the_docs_page_lists_every_operation(stack, watched):
    from playwright.sync_api import expect

    spec = requests.get(f"{stack.api_url}/openapi.json", timeout=10)
    assert spec.status_code == 200, f"GET /openapi.json: {spec.status_code} {spec.text[:200]}"
    operations = sorted(
        (method.upper(), path)
        for path, item in spec.json()["paths"].items()
        for method in item
        if method in ("get", "put", "post", "delete", "patch", "head", "options")
    )
    page = watched.page
    page.goto(f"{stack.api_url}/docs")
    blocks = page.locator(".opblock")
    expect(blocks.first).to_be_visible(timeout=30_000)
    expect(blocks).to_have_count(len(operations))
    shown = sorted(
        (
            block.locator(".opblock-summary-method").inner_text().strip(),
            block.locator(".opblock-summary-path").inner_text().replace("\u200b", "").strip(),
        )
        for block in blocks.all()
    )
    assert shown == operations
    # Everything drawn (operations, their schemas, the models) within the page's policy.
    for summary in page.locator(".opblock-summary").all():
        summary.click()
    for tab in page.get_by_role("button", name="Schema", exact=True).all():
        tab.click()
    for model in page.locator(".models .model-box-control").all():
        model.click()
    page.wait_for_timeout(500)
    page.locator(".information-container").scroll_into_view_if_needed()
    page.screenshot(path=str(_artifacts() / "docs.png"))
    assert watched.problems == []


def _artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def test_a_folder_keeps_its_relative_paths(stack, watched, tmp_path):
    from playwright.sync_api import expect

    folder = tmp_path / "site"
    (folder / "css").mkdir(parents=True)
    contents = {
        "site/index.html": b"<!doctype html><title>x</title>" * 50,
        "site/css/main.css": b"body { margin: 0 }\n" * 80,
    }
    for name, data in contents.items():
        (tmp_path / name).write_bytes(data)

    page = watched.page
    page.goto(f"{stack.api_url}/app")
    page.get_by_label("API token").fill(str(stack.token))
    page.get_by_label("Algorithm").select_option("gzip")
    expect(page.get_by_label("Level", exact=True)).to_have_value("6")  # gzip's default
    page.locator("#folder").set_input_files(str(folder))
    expect(page.locator("#results tbody tr")).to_have_count(2)
    page.get_by_role("button", name="Compress").click()
    expect(page.locator("#status")).to_contain_text("Done: 2 completed, 0 failed", timeout=FINISH_TIMEOUT_MS)
    for name, data in contents.items():
        row = page.locator("#results tbody tr", has=page.get_by_role("rowheader", name=name, exact=True))
        link = row.get_by_role("link", name=name.rsplit("/", 1)[-1] + ".gz")
        result = requests.get(link.get_attribute("href"), timeout=30)
        assert gzip.decompress(result.content) == data
    assert watched.problems == []
