"""`openreward.transport.AsyncHTTP11Transport` on real uvicorn (127.0.0.1): bodies by length, chunked and streamed,
keep-alive reuse, a server closing idle connections, bytes cut anywhere, timeouts, refused connections, the https
fallback; then the async client's direct path through it against the scriptable ORS server (retries, re-attach,
heartbeat, calls that may have run), and `transport=` still putting httpx in charge."""
import asyncio, contextlib, json, sys, threading, time
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).parent/"fixtures"))
from fake_ors_server import free_port

from openreward import AsyncOpenReward
from openreward.demo import serve_in_thread
from openreward.api.environments.types import Task
from openreward import OpenReward
from openreward.client import (AsyncIO, DirectRoute, Request as OrsRequest, RetryPolicy, SyncIO, adirect_send, direct_head,
                               direct_send)
from openreward.errors import HeartbeatTimeoutError, SessionResponseError, TransportError
from openreward.transport import AsyncHTTP11Transport, HTTP11Transport, ResponseParser

# -- a small app for the transport itself
release = threading.Event()  # /sse sends its second event only once the test has read the first

async def port(request: Request): return JSONResponse({"port": request.client.port})
async def echo(request: Request): return Response(await request.body(), media_type="application/octet-stream")
async def big(request: Request): return Response(b"x" * 1_000_000, media_type="application/octet-stream")
async def sse(request: Request):
    async def events():
        yield b"event: task_id\r\ndata: t1\r\n\r\n"
        for _ in range(500):  # bounded: at most 5 s
            if release.is_set(): break
            await asyncio.sleep(0.01)
        yield b"event: end\r\ndata: {}\r\n\r\n"
    return StreamingResponse(events(), media_type="text/event-stream")
async def slow(request: Request):
    await asyncio.sleep(float(request.query_params.get("s", "1")))
    return JSONResponse({"slow": True})

async def moved(request: Request): return RedirectResponse("/port", status_code=307)

APP = Starlette(routes=[Route("/port", port), Route("/moved", moved), Route("/echo", echo, methods=["POST"]), Route("/big", big),
                        Route("/sse", sse, methods=["POST"]), Route("/slow", slow)])

def uvicorn_thread(app, keep_alive: float = 60):
    "Run `app` on uvicorn in a daemon thread on a free 127.0.0.1 port; yield its URL; stop it on exit."
    return serve_in_thread(app, log_level="critical", lifespan="off", timeout_keep_alive=keep_alive)

@pytest.fixture(scope="module")
def url():
    with uvicorn_thread(APP) as u: yield u

@pytest.fixture
def anyio_backend(): return "asyncio"

def client(**kw) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=AsyncHTTP11Transport(), **kw)

@pytest.mark.anyio
async def test_lengths_bodies_and_keep_alive(url):
    async with client() as c:
        ports = [(await c.get(url + "/port")).json()["port"] for _ in range(5)]
        assert len(set(ports)) == 1  # one connection, reused
        body = bytes(range(256)) * 40
        r = await c.post(url + "/echo", content=body)
        assert r.status_code == 200 and r.content == body
        async def parts():
            for i in range(3): yield f"part{i};".encode()
        r = await c.post(url + "/echo", content=parts())  # a streamed request body goes out chunked
        assert r.content == b"part0;part1;part2;"
        r = await c.get(url + "/big")
        assert len(r.content) == 1_000_000 and r.headers["content-length"] == "1000000"
        assert (await c.get(url + "/port")).json()["port"] == ports[0]  # still the same connection
        r = await c.get(url + "/nowhere")
        assert (r.status_code, r.text) == (404, "Not Found")

@pytest.mark.anyio
async def test_event_stream_arrives_incrementally(url):
    release.clear()
    async with client() as c:
        async with c.stream("POST", url + "/sse", json={}) as r:
            assert r.headers["transfer-encoding"] == "chunked"
            got = b""
            async for piece in r.aiter_raw():
                got += piece
                if b"task_id" in got and not release.is_set():
                    assert b"end" not in got  # the first event came while the server was holding the second
                    release.set()
        assert got == b"event: task_id\r\ndata: t1\r\n\r\nevent: end\r\ndata: {}\r\n\r\n"

@pytest.mark.anyio
async def test_abandoned_stream_closes_its_connection(url):
    release.clear()
    async with client() as c:
        p0 = (await c.get(url + "/port")).json()["port"]
        async with c.stream("POST", url + "/sse", json={}) as r:
            async for piece in r.aiter_raw(): break  # the rest of the body is never read
        release.set()
        assert (await c.get(url + "/port")).json()["port"] != p0  # a fresh connection, not the half-read one

@pytest.mark.anyio
async def test_server_closing_idle_connections():
    with uvicorn_thread(APP, keep_alive=0.3) as u:
        async with client() as c:
            p0 = (await c.get(u + "/port")).json()["port"]
            await asyncio.sleep(1.5)  # uvicorn closes the idle connection; the transport notices without a request
            p1 = (await c.get(u + "/port")).json()["port"]
            assert p1 != p0

@pytest.mark.anyio
async def test_bytes_cut_anywhere():
    "A raw server that sends its answer one byte at a time: head, chunk sizes and data split everywhere."
    answer = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Thing:  spaced  \r\n\r\n"
              b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nTrailer: yes\r\n\r\n")
    async def handle(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        for i in range(len(answer)):
            writer.write(answer[i:i+1]); await writer.drain(); await asyncio.sleep(0)
        await asyncio.sleep(0.2)
        writer.close()
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    u = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        async with client() as c:
            r = await c.get(u)
            assert (r.status_code, r.text, r.headers["x-thing"]) == (200, "hello, world", "spaced")
    finally:
        server.close(); await server.wait_closed()

@pytest.mark.anyio
async def test_truncated_body_and_garbage_are_errors():
    answers = [b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", b"garbage\r\n\r\n",
               b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"]
    async def handle(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answers.pop(0)); await writer.drain()
        writer.close()
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    u = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        async with client() as c:
            with pytest.raises(httpx.RemoteProtocolError, match="complete message body"): await c.get(u)
            with pytest.raises(httpx.RemoteProtocolError, match="malformed status line"): await c.get(u)
            with pytest.raises(httpx.RemoteProtocolError, match="malformed chunk size"): await c.get(u)
    finally:
        server.close(); await server.wait_closed()

@pytest.mark.anyio
async def test_timeouts_refusals_and_https_fallback(url):
    async with client(timeout=httpx.Timeout(5, read=0.2)) as c:
        t0 = time.monotonic()
        with pytest.raises(httpx.ReadTimeout): await c.get(url + "/slow?s=2")
        assert time.monotonic() - t0 < 1.5
        assert (await c.get(url + "/slow?s=0")).json() == {"slow": True}  # a fresh connection; the late answer is not read as this one
        with pytest.raises(httpx.ConnectError): await c.get(f"http://127.0.0.1:{free_port()}/")
        with pytest.raises(httpx.ConnectError): await c.get(f"https://127.0.0.1:{free_port()}/")  # httpx's own transport
        assert c._transport._fallback is not None

def test_parser_refuses_conflicting_lengths():
    with pytest.raises(httpx.RemoteProtocolError, match="Content-Length"):
        ResponseParser().feed(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n")
    p = ResponseParser(b"HEAD")
    p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\n")
    assert p.done and p.keep_alive  # a HEAD answer has no body, whatever its length says

# -- the async client's direct path, against the scriptable ORS server
TASK = Task(server_name="fake", environment_name="fake", task_spec={"id": "t0"}, namespace=None)
FAST = RetryPolicy(backoff=0.01, stream_backoff=0.01)

@pytest.fixture(autouse=True)
def fresh(request):
    if "fake" in request.fixturenames:
        f = request.getfixturevalue("fake")
        f.fail.clear(); f.counts.clear()

def run(coro_fn, **kw):
    async def main():
        c = AsyncOpenReward(ping_interval=60, retry=kw.pop("retry", FAST), **kw)
        try: return await coro_fn(c)
        finally: await c.aclose()
    return asyncio.run(main())

def test_direct_path_is_taken_and_transport_seam_holds(fake):
    async def session(c):
        async with c.environments.get("fake", base_url=fake.url).session(TASK) as s:
            return s.sid, (await s.call_tool("count")).blocks[0].text
    sid, text = run(session)
    mine = [r for r in fake.log if r["headers"].get("x-session-id") == sid]
    assert text.startswith("count #") and mine
    assert all("accept-encoding" not in r["headers"] for r in mine)  # written by the direct path, not by httpx
    assert all(r["headers"]["content-type"] == "application/json" for r in mine if r["path"] in ("/create", "/call"))
    seen = []
    class Recording(httpx.AsyncBaseTransport):  # a transport of the user's own: httpx stays in charge of every request
        def __init__(self): self.inner = httpx.AsyncHTTPTransport()
        async def handle_async_request(self, request):
            seen.append(request.url.path)
            return await self.inner.handle_async_request(request)
        async def aclose(self): await self.inner.aclose()
    sid, text = run(session, transport=Recording())
    assert "/create_session" in seen and "/call" in seen and text.startswith("count #")
    assert all("accept-encoding" in r["headers"] for r in fake.log if r["headers"].get("x-session-id") == sid)

def test_direct_path_retries_and_reattaches(fake):
    async def main(c):
        e = c.environments.get("fake", base_url=fake.url)
        fake.fail["/prompt"] = [(503, {}), (429, {"Retry-After": "0"})]
        async with e.session(TASK) as s:
            prompt = await s.get_prompt()
            drop = await s.call_tool("drop")
            fake.fail["/prompt"] = [(500, {})]
            with pytest.raises(SessionResponseError) as err: await s.get_prompt()
        return prompt, drop, err.value.status
    prompt, drop, status = run(main)
    assert prompt[0].text == "Say hello." and drop.metadata == {"resumed": True} and status == 500
    assert fake.counts["drop"] == 1

def test_direct_path_heartbeat_and_calls_that_may_have_run(fake):
    async def main(c):
        async with c.environments.get("fake", base_url=fake.url).session(TASK) as s:
            t0 = time.monotonic()
            silent = await s.call_tool("silent")
            waited = time.monotonic() - t0
            with pytest.raises(TransportError, match="not retried, as it may have run"): await s.call_tool("drop_early")
        return silent, waited
    silent, waited = run(main, heartbeat_timeout=0.4)
    assert silent.metadata == {"resumed": True} and 0.3 < waited < 5 and fake.counts["drop_early"] == 1
    async def mute(c):
        async with c.environments.get("fake", base_url=fake.url).session(TASK) as s:
            with pytest.raises(HeartbeatTimeoutError, match="no data for 0.3 s"): await s.call_tool("mute")
    run(mute, heartbeat_timeout=0.3, retry=RetryPolicy(stream_backoff=0.01, call_retries=1))

def test_direct_path_refused_connection_is_retried_then_reported():
    async def main(c):
        e = c.environments.get("fake", base_url=f"http://127.0.0.1:{free_port()}")
        with pytest.raises(TransportError, match="Exceeded 3 retries for /create_session"):
            async with e.session(TASK): pass
    run(main)

def test_many_sessions_share_few_connections(fake):
    "12 sessions making 36 calls and 24 open/close requests in parallel keep about one connection each, not one per request."
    async def main(c):
        e = c.environments.get("fake", base_url=fake.url)
        async with contextlib.AsyncExitStack() as stack:
            ss = [await stack.enter_async_context(e.session(TASK)) for _ in range(12)]
            for _ in range(3): await asyncio.gather(*[s.call_tool("count") for s in ss])
        io = c.environments._io
        return sum(len(conns) for sh in io._servers.values() for lane in sh.clients for conns in lane.direct._idle.values())
    assert 12 <= run(main) <= 24  # one per session, two where its first ping overlapped a request; never one per request

def test_redirects_leave_the_direct_path_for_httpx(url):
    async def main():
        io = AsyncIO()
        try:
            direct = await adirect_send(AsyncHTTP11Transport(), DirectRoute.of(url), OrsRequest("GET", "/moved", {}))
            reply = await io.send(url, OrsRequest("GET", "/moved", {}))  # httpx follows the 307, on the same transport
            return direct, reply
        finally: await io.aclose()
    direct, reply = asyncio.run(main())
    assert direct is None and reply.status == 200 and "port" in reply.json()
    io = SyncIO()
    try:
        assert direct_send(HTTP11Transport(), DirectRoute.of(url), OrsRequest("GET", "/moved", {})) is None
        reply = io.send(url, OrsRequest("GET", "/moved", {}))
        assert reply.status == 200 and "port" in reply.json()
    finally: io.close()

# -- the blocking transport
def test_sync_transport_bodies_keep_alive_and_stale_connections(url):
    with httpx.Client(transport=HTTP11Transport()) as c:
        ports = [c.get(url + "/port").json()["port"] for _ in range(4)]
        assert len(set(ports)) == 1
        body = bytes(range(256)) * 40
        assert c.post(url + "/echo", content=body).content == body
        assert c.post(url + "/echo", content=iter([b"a", b"bc"])).content == b"abc"  # chunked request body
        assert len(c.get(url + "/big").content) == 1_000_000
        release.clear()
        with c.stream("POST", url + "/sse", json={}) as r:
            got = b""
            for piece in r.iter_raw():
                got += piece
                if b"task_id" in got and not release.is_set():
                    assert b"end" not in got  # streamed as it comes, not buffered to the end
                    release.set()
        assert got.endswith(b"event: end\r\ndata: {}\r\n\r\n")
    with uvicorn_thread(APP, keep_alive=0.3) as u, httpx.Client(transport=HTTP11Transport()) as c:
        p0 = c.get(u + "/port").json()["port"]
        time.sleep(1.5)  # the server closes the idle connection; the peek before reuse sees it
        assert c.get(u + "/port").json()["port"] != p0

def test_sync_transport_timeouts_and_errors(url):
    with httpx.Client(transport=HTTP11Transport(), timeout=httpx.Timeout(5, read=0.2)) as c:
        with pytest.raises(httpx.ReadTimeout): c.get(url + "/slow?s=2")
        assert c.get(url + "/slow?s=0").json() == {"slow": True}
        with pytest.raises(httpx.ConnectError): c.get(f"http://127.0.0.1:{free_port()}/")
        with pytest.raises(httpx.ConnectError): c.get(f"https://127.0.0.1:{free_port()}/")

def test_sync_client_direct_path_against_the_ors_server(fake):
    with OpenReward(ping_interval=60, retry=FAST, heartbeat_timeout=0.4).environments.get("fake", base_url=fake.url).session(TASK) as s:
        fake.fail["/prompt"] = [(503, {})]
        assert s.get_prompt()[0].text == "Say hello."
        assert s.call_tool("drop").metadata == {"resumed": True}
        assert s.call_tool("silent").metadata == {"resumed": True}
        with pytest.raises(TransportError, match="not retried, as it may have run"): s.call_tool("drop_early")
        sid = s.sid
    mine = [r for r in fake.log if r["headers"].get("x-session-id") == sid]
    assert mine and all("accept-encoding" not in r["headers"] for r in mine)  # the direct path wrote them

def test_direct_route_prefix_and_proxies(monkeypatch):
    for var in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"): monkeypatch.delenv(var, raising=False)
    route = DirectRoute.of("http://127.0.0.1:8000/ors/")
    head = direct_head(route, OrsRequest("POST", "/counter/call", {"X-Session-ID": "s"}), 2)
    assert head.startswith(b"POST /ors/counter/call HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n") and head.endswith(b"\r\n\r\n")
    assert b"Content-Length: 2\r\n" in head
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    assert DirectRoute.of("http://127.0.0.1:8000") is None  # proxied: httpx's mounts take it
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert DirectRoute.of("http://127.0.0.1:8000") is not None
