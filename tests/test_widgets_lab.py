"""The widgets in a real JupyterLab, driven by headless Chromium (pip `playwright` on Debian's /usr/bin/chromium; never
`playwright install`), against our server on real uvicorn in a subprocess: a person's session, click by click.

Open a notebook, run its cell, pick a task in the TaskBrowser, open a session, type into the generated form, click
Call, and read the ToolOutput, the reward and the finished latch off the page. The screenshot is saved to
`_artifacts/lab_widgets.png` (or $OPENREWARD_ARTIFACTS) for a person to look at.

Pitfall (../shared/notes/toolchain.md §3): Lab shows the kernel as idle before its websocket is connected, and a cell
run then is silently lost, so the run is retried until the widget appears.
"""
from __future__ import annotations

import json, os, subprocess, sys, tempfile, time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from conftest import free_port, stop_process, subprocess_env

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("OPENREWARD_ARTIFACTS", REPO/"_artifacts"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: `apt-get install chromium`")]

CELL = """from openreward import OpenReward
from openreward.widgets import browse
env = OpenReward().environments.get("examples", variant="counter", base_url={url!r})
b = browse(env)
b"""


@pytest.fixture(scope="module")
def lab(ours_server, tmp_path_factory):
    "JupyterLab on 127.0.0.1 (fresh config, data and workspace dirs), its root holding one notebook; yields its URL."
    root = tmp_path_factory.mktemp("lab")
    nb = {"cells": [{"cell_type": "code", "execution_count": None, "id": "play", "metadata": {}, "outputs": [],
                     "source": CELL.format(url=ours_server)}],
          "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
          "nbformat": 4, "nbformat_minor": 5}
    (root/"play.ipynb").write_text(json.dumps(nb))
    port, token = free_port(), "widget-test-token"
    home = Path(tempfile.mkdtemp(prefix="orw-lab-"))
    env = subprocess_env(JUPYTER_CONFIG_DIR=str(home/"config"), JUPYTER_RUNTIME_DIR=str(home/"runtime"),
                         JUPYTERLAB_SETTINGS_DIR=str(home/"settings"), JUPYTERLAB_WORKSPACES_DIR=str(home/"workspaces"),
                         JUPYTER_DATA_DIR=str(home/"data"), JUPYTER_PLATFORM_DIRS="1")
    news = home/"settings"/"@jupyterlab"/"apputils-extension"/"notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))  # no "news?" toast over the page
    log = open(home/"lab.log", "w+b")
    proc = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
                             f"--port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
                             "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
                            cwd=root, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"jupyter-lab exited:\n{(home/'lab.log').read_text()[-4000:]}"
            try:
                if httpx.get(f"{base}/api/status?token={token}", timeout=2).status_code == 200: break
            except httpx.TransportError: pass
            assert time.monotonic() < deadline, f"jupyter-lab did not start:\n{(home/'lab.log').read_text()[-4000:]}"
            time.sleep(0.2)
        yield f"{base}/lab/tree/play.ipynb?token={token}"
    finally:
        stop_process(proc)
        log.close()


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            ctx = browser.new_context(viewport={"width": 1280, "height": 1100})
            offsite = []
            def route(r):
                if urlsplit(r.request.url).hostname in ("127.0.0.1", None) or r.request.url.startswith(("data:", "blob:")):
                    r.continue_()
                else:
                    offsite.append(r.request.url)
                    r.abort()
            ctx.route("**/*", route)
            p = ctx.new_page()
            yield p
        finally: browser.close()


def run_until(page, selector: str, tries: int = 10):
    "Run the notebook's cell (Shift+Enter) until `selector` shows: a run sent before the kernel connects is lost."
    cell = page.locator(".jp-Cell .jp-InputArea-editor").first
    for _ in range(tries):
        cell.click()
        page.keyboard.press("Control+Enter")
        try:
            page.locator(selector).first.wait_for(state="visible", timeout=3_000)
            return page.locator(selector).first
        except Exception: continue
    raise AssertionError(f"{selector} never appeared after {tries} runs")


def test_play_a_session_in_jupyterlab(lab, page):
    from playwright.sync_api import expect
    page.goto(lab, wait_until="domcontentloaded")
    page.locator(".jp-Notebook").wait_for(timeout=60_000)
    page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(timeout=60_000)
    browser = run_until(page, ".openreward-task-browser")
    expect(browser).to_contain_text("tasks 1–3 of 3", timeout=20_000)
    # browse to a task: the second of the train split (count from 5 to 7)
    browser.locator("select").last.select_option(index=1)
    expect(browser).to_contain_text('"target"', timeout=10_000)
    browser.get_by_role("button", name="Open a session").click()
    stepper = browser.locator(".openreward-session-stepper")
    expect(stepper).to_contain_text("Count from 5 to 7.", timeout=20_000)
    expect(stepper).to_contain_text("open", timeout=10_000)
    # fill the form generated from the tool's schema, first with something invalid
    amount = stepper.locator(".widget-text input").first
    amount.fill("two")
    expect(stepper).to_contain_text("not an integer", timeout=10_000)
    amount.fill("2")
    expect(stepper).not_to_contain_text("not an integer", timeout=10_000)
    stepper.get_by_role("button", name="Call").click()
    step = stepper.locator(".openreward-step").first
    expect(step).to_contain_text("count=7", timeout=20_000)
    expect(step).to_contain_text("reward 1")
    expect(step).to_contain_text("finished")
    expect(stepper).to_contain_text("total reward 1 · 1 call · episode finished")
    expect(stepper.get_by_role("button", name="Call")).to_be_disabled()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS/"lab_widgets.png"), full_page=True)
    # close the session from the page
    stepper.get_by_role("button", name="Close session").click()
    expect(stepper).to_contain_text("closed", timeout=20_000)
