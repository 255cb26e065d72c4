"""The docs site in a real browser (headless Debian Chromium driven by pip's playwright; no `playwright install`).

- The project's site (`_docs/`, built by `bash .ci/docs` when missing or older than its sources): the home page and
  every page in its navigation load with their content and without a console error or a request off this machine.
- The widget pages (widgets, toolform, trajectory) render their stored widgets: browser, stepper, output, form,
  transcript and plot, from the embedded state with no kernel.
- Widgets offline: tests/fixtures/widget_nb.ipynb (executed, widget state stored) is built by the same pipeline into
  a small site in a temp dir; its widgets render from that state with every non-loopback request blocked.
"""
from __future__ import annotations

import contextlib, functools, http.server, json, re, shutil, subprocess, threading, urllib.error, urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO/"_docs"
WIDGET_NB = Path(__file__).resolve().parent/"fixtures"/"widget_nb.ipynb"
CHROMIUM = Path("/usr/bin/chromium")
# Flags from ../shared/notes/toolchain.md: no sandbox (we run as root), nothing in the background phoning home.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
DOCS_SOURCES = ["nbs", ".ci/docs", ".ci/docs_prep.py", ".ci/bin/quarto", ".ci/sphinx/conf.py", "settings.ini"]

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: `apt-get install chromium` "
                                 "(bash .ci/test does it when run as root)")]


# ---- fixtures: a static server, a browser, a page that records what went wrong -------------------------------------

@contextlib.contextmanager
def serve_dir(root: Path) -> Iterator[str]:
    "Serve `root` over HTTP on 127.0.0.1 (a free port) in a thread; yield the base URL; shut down afterwards."
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args): pass
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    t = threading.Thread(target=srv.serve_forever, name=f"docs-http-{srv.server_port}", daemon=True)
    t.start()
    try: yield f"http://127.0.0.1:{srv.server_port}/"
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(10)


def build_docs(project: Path) -> None:
    "Run the one docs command, `bash .ci/docs PROJECT`, failing the test with its output if it fails."
    r = subprocess.run(["bash", str(REPO/".ci"/"docs"), str(project)], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=600)
    assert r.returncode == 0, f"bash .ci/docs {project} failed (rc {r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"


def newest_mtime(paths: list[Path]) -> float:
    return max((f.stat().st_mtime for p in paths for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file()),
               default=0.0)


@pytest.fixture(scope="session")
def site() -> Path:
    "The project's `_docs/`, rebuilt first if it is missing or older than the notebooks and the docs tooling."
    home = DOCS/"index.html"
    if not home.exists() or home.stat().st_mtime < newest_mtime([REPO/p for p in DOCS_SOURCES]): build_docs(REPO)
    return DOCS


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright  # imported here: collecting this file must not need playwright
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try: yield b
        finally: b.close()


class Visit:
    "A fresh browser context whose requests off 127.0.0.1 are blocked and recorded, as are console errors."
    def __init__(self, browser):
        self.errors, self.offsite, self.requests = [], [], []
        self.context = browser.new_context()
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(f"console: {m.text}"))
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.on("requestfailed", lambda r: self.errors.append(f"requestfailed: {r.url} {r.failure}"))

    def _route(self, route):
        url = route.request.url
        self.requests.append(url)
        if urlsplit(url).hostname == "127.0.0.1" or url.startswith(("data:", "blob:", "about:")): route.continue_()
        else:
            self.offsite.append(url)
            route.abort()

    def open(self, url: str):
        resp = self.page.goto(url, wait_until="networkidle")
        assert resp is not None and resp.status == 200, f"{url}: HTTP {resp and resp.status}"
        return self.page

    def check_clean(self):
        assert not self.offsite, f"the page tried to reach other hosts (blocked): {self.offsite}"
        assert not self.errors, "\n".join(self.errors)


@pytest.fixture
def visit(browser):
    v = Visit(browser)
    try: yield v
    finally: v.context.close()


def article_text(page) -> str: return page.locator("article").inner_text()


def has_visible_code(nb: Path) -> bool:
    "Whether a notebook has a code cell the docs show (a prose-only page, like Performance, has none)."
    cells = json.loads(nb.read_text())["cells"]
    return any(c["cell_type"] == "code" and not "".join(c["source"]).lstrip().startswith(("#| hide", "#|hide", "#| default_exp"))
               for c in cells)

def nav_pages(page, base: str) -> list[str]:
    "Pages linked from the site navigation (furo's sidebar tree), in order."
    hrefs = page.eval_on_selector_all(".sidebar-tree a.reference.internal", "els => els.map(e => e.href)")
    return list(dict.fromkeys(h.split("#")[0] for h in hrefs if h.startswith(base)))


def quarto_leftovers(page) -> list[str]:
    "Quarto/nbdev syntax that must never reach a reader: cell options in code, link attributes, raw front matter."
    code = "\n".join(page.locator("article pre").all_inner_texts())
    text = article_text(page)
    found = [l for l in code.splitlines() if l.lstrip().startswith("#|")]
    found += [s for s in ('{target="_blank"', "<!-- WARNING") if s in text]
    shown = set(code.splitlines())  # program output (a YAML listing, say) may say `description:`; prose may not
    found += [l for l in text.splitlines() if l.startswith(("output-file:", "title:", "description:")) and l not in shown]
    return found


@functools.cache
def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r: return r.read().decode()


def broken_links(page, base: str) -> list[str]:
    "Links from the page's content to this site that lead nowhere: a missing page, or no element with the #id."
    bad = []
    for href in dict.fromkeys(page.eval_on_selector_all("article a[href]", "els => els.map(e => e.href)")):
        if not href.startswith(base): continue
        url, _, frag = href.partition("#")
        try: html = fetch(url)
        except urllib.error.HTTPError as e:
            bad.append(f"{href}: HTTP {e.code}")
            continue
        if frag and f'id="{frag}"' not in html: bad.append(f"{href}: the page has no element with id {frag!r}")
    return bad


# ---- a reader's check: what a person reading the page would see as broken ------------------------------------------

# Links in page content may leave the site only for these: the project's source (show_doc's "source" links) and
# the standards and package indexes the prose cites.
OFFSITE_OK = ("https://github.com/openreward/openreward/", "https://html.spec.whatwg.org/", "https://pypi.org/",
              "https://peps.python.org/", "https://docs.python.org/", "https://packaging.python.org/")
RAW_TABLE = re.compile(r"^\s*\|?.*\|\s*:?(?:-{3,}|[—–]+):?\s*\|", re.M)  # a Markdown table's rule row, unrendered
TYPOGRAPHIC = re.compile("[\u2018\u2019\u201c\u201d]")
CLIPPED_JS = """els => els.filter(e => {
    const s = getComputedStyle(e), art = e.closest('article').getBoundingClientRect(), r = e.getBoundingClientRect();
    const cut = e.scrollWidth > e.clientWidth + 1 && !['auto', 'scroll'].includes(s.overflowX);
    return cut || r.right > art.right + 1;
}).map(e => e.innerText.split('\\n')[0].slice(0, 80))"""


# Code a page shows as source (cell inputs, fenced blocks), as opposed to a cell's output, which must not hold raw Markdown.
SOURCE_CODE_JS = "els => els.filter(e => !e.closest('.cell_output')).map(e => e.innerText)"


def reader_defects(page, base: str) -> list[str]:
    "What a reader would see as broken on the page: raw Markdown tables, curly quotes in code, links off the site, clipped code."
    found = []
    text = article_text(page)
    for src in page.eval_on_selector_all("article pre", SOURCE_CODE_JS):  # program text may spell a table's rule
        text = text.replace(src, "")
    found += [f"raw Markdown table: {m.group(0).strip()[:80]!r}" for m in RAW_TABLE.finditer(text)]
    code = page.locator("article pre, article code").all_inner_texts()
    found += [f"typographic quote in code: {c.strip()[:80]!r}" for c in code if TYPOGRAPHIC.search(c)]
    for href in dict.fromkeys(page.eval_on_selector_all("article a[href]", "els => els.map(e => e.href)")):
        if href.startswith((base, "mailto:", "javascript:")) or href.startswith(OFFSITE_OK): continue
        found.append(f"link leaves the site: {href}")
    found += [f"code cut off at the right edge: {c!r}" for c in page.eval_on_selector_all("article pre", CLIPPED_JS)]
    return found


ARTIFACTS = REPO/"_artifacts"/"docs"  # screenshots for a person to look at (gitignored)


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS/f"{name}.png"), full_page=True)
    return ARTIFACTS/f"{name}.png"


DEFECTS = {  # one page per defect the reader's check must catch (each as the build produced it before it was fixed)
    "raw-table": "<p>| variant | episodes | solved | |—|—:|—:| | counter | 4 | 4 |</p>",
    "raw-table-output": '<div class="cell_output"><pre>| variant | solved |\n|---|---:|\n| counter | 4 |</pre></div>',
    "curly-json": "<pre>{\u201cid\u201d: \u201ct0\u201d}</pre>",
    "absolute-link": '<p><a href="https://openreward.github.io/openreward/server.html#error_bytes">error_bytes</a></p>',
    "missing-anchor": '<p><a href="ok.html#types-runtooloutput">RunToolOutput</a></p>',
    "missing-page": '<p><a href="nowhere.html">gone</a></p>',
    "clipped-code": '<pre style="overflow-x: hidden; width: 200px">' + "x = 1  # " + "a" * 300 + "</pre>",
}


def test_reader_check_catches_each_defect(tmp_path, visit):
    "Each defect, planted alone in a page of its own, is reported; a clean page reports nothing."
    shell = '<html><head><meta charset="utf-8"></head><body><article style="width: 600px"><h1 id="t">t</h1>{}</article></body></html>'
    (tmp_path/"ok.html").write_text(shell.format("<p>plain</p><pre>{\"id\": \"t0\"}</pre>"
                                                 '<div class="cell_input"><pre>rule = "|---|---:|"</pre></div>'))
    for name, body in DEFECTS.items(): (tmp_path/f"{name}.html").write_text(shell.format(body))
    with serve_dir(tmp_path) as base:
        page = visit.open(base + "ok.html")
        assert reader_defects(page, base) == [] and broken_links(page, base) == []
        for name in DEFECTS:
            page = visit.open(base + f"{name}.html")
            assert reader_defects(page, base) + broken_links(page, base), f"the check missed the {name} defect"


# ---- the project's site --------------------------------------------------------------------------------------------

def test_home_and_api_pages_render_cleanly(site, visit):
    settings = dict(l.split(" = ", 1) for l in (REPO/"settings.ini").read_text().splitlines() if " = " in l)
    with serve_dir(site) as base:
        page = visit.open(base)
        title = page.locator("article h1").first.inner_text().rstrip("¶").strip()
        assert title == settings["title"]
        home = article_text(page)
        assert len(home.split()) >= 20, f"the home page has almost no content: {home!r}"
        assert not quarto_leftovers(page), quarto_leftovers(page)
        bad = broken_links(page, base) + reader_defects(page, base)
        screenshot(page, "index")
        pages = nav_pages(page, base)
        api = [u for u in pages if not u.rstrip("/").endswith(("index.html", base.rstrip("/")))]
        assert api, f"the navigation lists no page besides the home page: {pages}"
        # in the notebooks' order, each at the page name nbdev gives it (00_types.ipynb -> types.html): first the
        # guides (nbs/guides/), as their own group, then the reference (the top-level notebooks)
        page_of = lambda p: re.sub(r"^\d+[a-zA-Z0-9]*_", "", p.stem.lower()) + ".html"
        guides = [base + "guides/" + page_of(p) for p in sorted((REPO/"nbs"/"guides").glob("*.ipynb"))]
        assert api[:len(guides)] == guides, f"the guides must lead the navigation: {api}"
        captions = page.locator(".sidebar-tree .caption-text").all_text_contents()  # as written (furo upper-cases them)
        assert captions == (["Guides", "Reference"] if guides else []), captions
        nbs = sorted(p for p in (REPO/"nbs").glob("*.ipynb") if p.name != "index.ipynb")
        expected = [base + page_of(p) for p in nbs]
        assert [u for u in api if u.count("/") == base.count("/")] == expected
        shows_code = {u: has_visible_code(p) for u, p in zip(expected, nbs)}
        for url in api:
            page = visit.open(url)
            assert page.locator("article h1").count() == 1, f"{url}: expected one page title"
            text = article_text(page)
            assert len(text.split()) >= 20, f"{url} has almost no content: {text!r}"
            assert not quarto_leftovers(page), f"{url}: {quarto_leftovers(page)}"
            if shows_code.get(url, True):
                assert page.locator("article .cell").count() > 0, f"{url}: no notebook cells rendered"
            bad += [f"{url}: {d}" for d in broken_links(page, base) + reader_defects(page, base)]
            if url.endswith("/client.html"): screenshot(page, "client")
            if url == (guides or [None])[0]: screenshot(page, "guide")
    assert not bad, "what a reader would see as broken:\n" + "\n".join(bad)
    visit.check_clean()


def test_widget_pages_render_their_widgets(site, visit):
    with serve_dir(site) as base:
        page = visit.open(base + "widgets.html")
        stepper = page.locator(".openreward-session-stepper").first
        stepper.wait_for(state="visible", timeout=20_000)
        text = stepper.inner_text()
        assert "Count from 0 to 2." in text and "count=2" in text and "total reward 1 · 2 calls · episode finished" in text
        assert page.locator(".openreward-session-stepper").count() == 3   # counter, workbench, the browser's
        workbench = page.locator(".openreward-session-stepper").nth(1)
        assert workbench.locator("img").count() >= 2 and "Correct!" in workbench.inner_text()   # prompt and drawn images
        assert "refused (input_validation)" in workbench.inner_text()
        browser = page.locator(".openreward-task-browser").last
        assert "tasks 1–3 of 3" in browser.inner_text() and browser.locator(".widget-select select option").count() == 3
        assert page.locator(".openreward-tool-output").count() >= 4
        page = visit.open(base + "toolform.html")
        page.locator(".widget-text input").first.wait_for(state="visible", timeout=20_000)
        values = page.eval_on_selector_all(".widget-text input", "els => els.map(e => e.value)")
        assert values[:5] == ["3", "2", "255", "128", "0"], values       # the draw form, as the lesson left it
        assert "lower-case letters" in article_text(page)                  # a field's description next to it
        page = visit.open(base + "trajectory.html")
        viewer = page.locator(".openreward-trajectory")
        viewer.wait_for(state="visible", timeout=20_000)
        assert "Correct!" in viewer.inner_text() and "step 12 of 12" in viewer.inner_text()
        assert viewer.locator(".openreward-reward-plot circle").count() == 3
        assert viewer.locator(".openreward-message").count() == 12 and viewer.locator(".widget-slider").count() == 1
    visit.check_clean()


# ---- widgets render offline ----------------------------------------------------------------------------------------

SETTINGS = """[DEFAULT]
repo = widgetsite
lib_name = widgetsite
lib_path = widgetsite
nbs_path = nbs
doc_path = _docs
version = 0.0.1
title = widget site
description = The widget fixture, built by the docs pipeline
branch = main
git_url = https://github.com/example/widgetsite
doc_host = https://example.github.io
doc_baseurl = /widgetsite
user = example
author = example
author_email = example@example.com
copyright = example
keywords = example
language = English
status = 1
min_python = 3.11
license = apache2
custom_sidebar = False
recursive = True
"""
INDEX_NB = {"cells": [{"cell_type": "markdown", "id": "home", "metadata": {},
                       "source": "# widget site\n\n> The widget fixture, built by the docs pipeline.\n\nSee the widget page."}],
            "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
            "nbformat": 4, "nbformat_minor": 5}


@pytest.fixture(scope="module")
def widget_site(tmp_path_factory) -> Path:
    "A tiny nbdev project (index + the widget fixture) built into HTML by `bash .ci/docs`."
    proj = tmp_path_factory.mktemp("widgetsite")
    (proj/"settings.ini").write_text(SETTINGS)
    (proj/"widgetsite").mkdir()
    (proj/"widgetsite"/"__init__.py").write_text("")
    (proj/"nbs").mkdir()
    (proj/"nbs"/"index.ipynb").write_text(json.dumps(INDEX_NB))
    shutil.copy(WIDGET_NB, proj/"nbs"/"01_widget_nb.ipynb")
    build_docs(proj)
    return proj/"_docs"


def test_widget_outputs_render_offline(widget_site, visit):
    assert (widget_site/"_static"/"embed-amd.js").exists(), "the widget JavaScript must ship with the site"
    html = (widget_site/"widget_nb.html").read_text()
    assert "cdn.jsdelivr.net" not in html and "unpkg.com" not in html and "cdnjs" not in html
    with serve_dir(widget_site) as base:
        page = visit.open(base + "widget_nb.html")
        label = page.locator(".widget-label", has_text="widget-label-rendered-offline")
        label.wait_for(state="visible", timeout=15_000)
        slider = page.locator(".widget-slider")
        assert slider.count() == 1 and "level" in slider.inner_text()
        assert page.locator(".widget-readout").inner_text().strip() == "7"
        text = article_text(page)
        # nbdev processing honoured: hidden cell gone, echo: false keeps only the output, show_doc rendered
        assert "HIDDEN-CELL-MARKER" not in page.content()
        assert "ECHO-FALSE-OUTPUT" in text and '"ECHO-FALSE-" +' not in text
        assert page.locator("article .rubric", has_text="greet").count() == 1
        assert "Return a greeting for" in text and "show_doc(greet)" not in text
        assert not quarto_leftovers(page), quarto_leftovers(page)
        served = {urlsplit(u).path for u in visit.requests if urlsplit(u).hostname == "127.0.0.1"}
        assert {"/_static/require.js", "/_static/embed-amd.js"} <= served, sorted(served)
    visit.check_clean()
