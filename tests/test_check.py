"""`openreward.check` and `orwd check`: the conformance checks pass against our server and the reference server, and
each check fails against a server broken in the one way that check looks at (tests/fixtures/broken_ors.py)."""
from __future__ import annotations

import json, subprocess, sys
from pathlib import Path

import pytest

from openreward.check import check_names, check_server
from openreward.demo import serve_in_thread
from openreward.examples import ENVIRONMENTS
from openreward.server import Server

sys.path.insert(0, str(Path(__file__).parent/"fixtures"))
from broken_ors import MUTATIONS, BrokenORS  # noqa: E402

ORWD = str(Path(sys.executable).parent/"orwd")

@pytest.fixture(scope="module")
def broken():
    "Our server on the examples behind a switchable fault; yields (BrokenORS, url)."
    app = BrokenORS(Server(ENVIRONMENTS).app)
    with serve_in_thread(app) as url:
        yield app, url

def test_every_check_has_a_fault():
    assert sorted(MUTATIONS) == sorted(check_names())

def test_unbroken_passes(broken):
    app, url = broken
    app.mutation = None
    report = check_server(url)
    assert report.ok and report.skipped == 0, str(report)
    assert report.passed == len(check_names())

@pytest.mark.parametrize("name", check_names())
def test_each_check_can_fail(broken, name):
    app, url = broken
    app.mutation = name
    try: report = check_server(url, timeout=10)
    finally: app.mutation = None
    assert report[name].status == "fail", f"{name} did not catch its fault:\n{report}"
    assert not report.ok

def test_orwd_check_against_ours(ours_server):
    r = subprocess.run([ORWD, "check", ours_server], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{len(check_names())} passed, 0 failed" in r.stdout

def test_orwd_check_against_reference(reference_server):
    "The reference server passes every check, for each of its variants' session checks."
    for variant in (None, "workbench"):
        r = subprocess.run([ORWD, "check", reference_server, "-o", "json"] + (["--variant", variant] if variant else []),
                           capture_output=True, text=True, timeout=120)
        report = json.loads(r.stdout)
        assert r.returncode == 0 and report["failed"] == 0, r.stdout + r.stderr
        assert report["passed"] >= len(check_names()) - 1  # the workbench's first tool raises: nothing to re-attach to compare

def test_orwd_check_fails_on_broken_server(broken):
    app, url = broken
    app.mutation = "call_chunking"
    try: r = subprocess.run([ORWD, "check", url], capture_output=True, text=True, timeout=120)
    finally: app.mutation = None
    assert r.returncode == 1
    assert "✗ calls      call_chunking" in r.stdout and "1 failed" in r.stdout.splitlines()[-1]

def test_orwd_check_unreachable():
    from openreward.demo import free_port
    r = subprocess.run([ORWD, "check", f"http://127.0.0.1:{free_port()}", "--timeout", "2"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "ConnectError" in r.stdout and "Traceback" not in r.stderr

def test_a_stream_that_never_ends_fails_in_bounded_time():
    "A server that keeps a stream open with pings forever fails the check after 4 x the timeout, not never."
    import asyncio, time
    inner = Server(ENVIRONMENTS).app
    async def app(scope, receive, send):
        if scope["type"] == "http" and scope["path"] == "/create_session":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
            for _ in range(600):  # bounded: 60 s at most
                await send({"type": "http.response.body", "body": b": ping\r\n\r\n", "more_body": True})
                await asyncio.sleep(0.1)
            await send({"type": "http.response.body", "body": b""})
            return
        await inner(scope, receive, send)
    with serve_in_thread(app, timeout_graceful_shutdown=1) as url:
        t0 = time.monotonic()
        report = check_server(url, timeout=1, only=["create_session"])
        assert time.monotonic() - t0 < 30
    assert report["create_session"].status == "fail"
    assert "did not end within 4 s" in report["create_session"].detail
