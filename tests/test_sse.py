"""The event-stream codec (openreward.sse) beyond the notebook's lessons.

- the captured reference streams (tests/fixtures/sse/*.sse) decode identically however they are cut, our encoder
  reproduces them byte for byte, and the assembler never calls a stream complete before its last blank line;
- hypothesis round trips (encode → cut → decode, frame → encode → cut → decode → assemble) and a differential
  test of the incremental decoder against a whole-text oracle of the WHATWG rules;
- `iter_sse`/`aiter_sse` over a real uvicorn serving a Starlette app that writes awkward pieces with delays;
- live: the reference server (its own venv) still sends what the fixtures hold, and our helpers read it, including
  re-attaching to a running tool by task id and a stream with a keep-alive ping.

`python tests/test_sse.py capture` re-captures the fixtures from a reference server it starts itself.
"""
from __future__ import annotations

import contextlib, json, random, re, sys, threading, time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import anyio
import httpx
import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings, strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from openreward.errors import SSEError, TransportError
from openreward.sse import (CHUNK_CHARS, EVENT_STREAM_HEADERS, ResultAssembler, SSEDecoder, ServerSentEvent, aassemble,
                            aconnect_sse, aiter_sse, assemble, connect_sse, decode_events, encode_comment,
                            encode_event, encode_events, frame_result, iter_sse, ping_comment, result_events)

SSE_DIR = Path(__file__).resolve().parent/"fixtures"/"sse"
STREAMS = {p.stem: p.read_bytes() for p in sorted(SSE_DIR.glob("*.sse"))}
LINE_BREAK = re.compile(r"\r\n|\r|\n")
PING = re.compile(rb": ping - ([^\r\n]*)\r\n\r\n")
SPACES_TEXT = "y" * 4056 + "    four spaces at the boundary é ü 😀 \n ok"

# name → (the events as (name, data length or exact data), the assembled outcome)
EXPECTED = {
    "create_session": ([("task_id", 36), ("end", "")], ("result", "")),
    "call_ok": ([("task_id", 32), ("end", 133)], ("text", "count=1")),
    "call_9000": ([("task_id", 32), ("chunk", 4096), ("chunk", 4096), ("end", 928)], ("text", "x" * 9000)),
    "call_spaces": ([("task_id", 32), ("chunk", 4096), ("end", 123)], ("text", SPACES_TEXT)),
    "call_error": ([("task_id", 32), ("error", "kaboom from tool")], ("error", "kaboom from tool")),
    "call_error_multiline": ([("task_id", 32), ("error", "line one\nline two\nline three")],
                             ("error", "line one\nline two\nline three")),
    "call_unknown_task": ([("error", "unknown task_id")], ("error", "unknown task_id")),
    "call_ping": ([("task_id", 32), ("end", 125)], ("text", "slept")),
    "call_resume": ([("task_id", 32), ("end", 125)], ("text", "slept")),
}

def shape(events: list[ServerSentEvent]) -> list[tuple[str, int | str]]:
    "Events as (name, data) with data replaced by its length where the expectation gives a length."
    return [(e.event, e.data if e.event in ("error",) or e.data == "" else len(e.data)) for e in events]

def outcome(asm: ResultAssembler) -> tuple[str, str]:
    if asm.error is not None: return ("error", asm.error)
    if asm.result and asm.result.startswith('{"ok"'): return ("text", json.loads(asm.result)["output"]["blocks"][0]["text"])
    return ("result", asm.result)

def reencode(raw: bytes) -> bytes:
    "Our encoding of the events of `raw`, with a captured ping comment put back where it stood."
    events = decode_events(raw)
    out = encode_events(events)
    if (m := PING.search(raw)):
        first = encode_event(events[0])
        out = first + ping_comment(datetime.fromisoformat(m[1].decode())) + out[len(first):]
    return out

# ---------------------------------------------------------------------------------------------------------------
# Captured reference streams
# ---------------------------------------------------------------------------------------------------------------

def test_all_fixtures_present():
    assert set(STREAMS) == set(EXPECTED)

@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_captured_stream_decodes_identically_however_cut(name):
    raw = STREAMS[name]
    whole = decode_events(raw)
    assert shape(whole) == EXPECTED[name][0]
    for cut in range(len(raw) + 1):
        assert decode_events([raw[:cut], raw[cut:]]) == whole, cut
    assert decode_events([raw[i:i + 1] for i in range(len(raw))]) == whole
    rng = random.Random(name)
    for _ in range(200):
        points = sorted(rng.sample(range(len(raw) + 1), k=min(8, len(raw) + 1)))
        assert decode_events([raw[a:b] for a, b in zip([0] + points, points + [len(raw)])]) == whole, points

@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_encoder_reproduces_captured_stream(name):
    assert reencode(STREAMS[name]) == STREAMS[name]

@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_assembler_outcome_and_never_complete_early(name):
    raw = STREAMS[name]
    asm = assemble(decode_events(raw))
    assert outcome(asm) == EXPECTED[name][1]
    first = decode_events(raw)[0]
    assert asm.task_id == (first.data if first.event == "task_id" else None)
    # the final event dispatches on the CR of its blank line (the last two bytes are that CRLF): cut anywhere
    # before it, the stream must read as incomplete, and the decoder must say it stopped inside an event
    for cut in range(len(raw) + 1):
        decoder, partial = SSEDecoder(), ResultAssembler()
        for event in decoder.feed(raw[:cut]): partial.feed(event)
        assert partial.done == (cut >= len(raw) - 1), cut
        if not partial.done and decoder.pending:
            with pytest.raises(SSEError, match="ended inside an event"): decoder.close()

def test_stream_problems_are_transport_errors_and_misuse_is_refused():
    assert issubclass(SSEError, TransportError)
    with pytest.raises(SSEError): decode_events(b"data: cut")
    with pytest.raises(TypeError, match="takes bytes"): SSEDecoder().feed("event: x\r\n")
    with pytest.raises(ValueError, match="on one line"): ServerSentEvent("a\rb")
    with pytest.raises(ValueError, match="exactly one"): list(frame_result("t"))
    with pytest.raises(ValueError, match="at least 1"): list(result_events("x", size=0))

def test_reference_client_would_lose_the_spaces_we_keep():
    "The reference client left-strips every data value; at this slice boundary that drops four characters."
    end_line = STREAMS["call_spaces"].split(b"event: end\r\n")[1].split(b"\r\n")[0].decode()
    reference_value = end_line.split(":", 1)[1].lstrip()
    ours = decode_events(STREAMS["call_spaces"])[2].data
    assert ours.startswith("    four spaces") and len(ours) - len(reference_value) == 4

# ---------------------------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------------------------

TEXTS = st.text(st.characters(codec="utf-8"), max_size=60) | st.sampled_from(["\r\n", "\r", "\n", " ", "😀", "\r\r\n\n", ":", "\ufeff"])
NAMES = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), min_size=1, max_size=20)
POINTS = st.lists(st.integers(0, 1 << 20), max_size=12)
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXTS,
                    lambda kids: st.lists(kids, max_size=5) | st.dictionaries(TEXTS, kids, max_size=5), max_leaves=30)
def examples(n: int) -> settings:
    "Hypothesis settings for a property run on `n` examples."
    return settings(max_examples=n, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

def cut(raw: bytes, points: list[int]) -> list[bytes]:
    "`raw` in pieces, cut at the given offsets (modulo its length + 1); empty pieces included."
    edges = sorted(p % (len(raw) + 1) for p in points)
    return [raw[a:b] for a, b in zip([0] + edges, edges + [len(raw)])]

@examples(1000)
@given(events=st.lists(st.tuples(NAMES, st.lists(TEXTS, max_size=5).map("".join)), min_size=1, max_size=5),
       comments=st.lists(TEXTS, max_size=3), points=POINTS)
def test_events_roundtrip_through_any_cut(events, comments, points):
    raw = b"".join(encode_comment(c) for c in comments) + encode_events(ServerSentEvent(n, d) for n, d in events)
    expected = [ServerSentEvent(n, LINE_BREAK.sub("\n", d)) for n, d in events]
    assert decode_events(cut(raw, points)) == expected

@examples(700)
@given(value=JSON, size=st.sampled_from([1, 2, 3, 7, 64, CHUNK_CHARS]), points=POINTS, task_id=st.uuids().map(lambda u: u.hex))
def test_json_results_roundtrip_through_framing(value, size, points, task_id):
    payload = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    events = list(frame_result(task_id, result=payload, size=size))
    assert [e.event for e in events] == ["task_id"] + ["chunk"] * (len(events) - 2) + ["end"]
    assert all(len(e.data) == size for e in events[1:-1]) and 0 < len(events[-1].data) <= size
    asm = assemble(decode_events(cut(encode_events(events), points)))
    assert (asm.task_id, asm.result, asm.error) == (task_id, payload, None)

@examples(300)
@given(pattern=st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), min_size=1, max_size=9),
       length=st.integers(CHUNK_CHARS - 3, 3 * CHUNK_CHARS + 3), points=POINTS)
def test_long_results_slice_at_4096_characters(pattern, length, points):
    text = (pattern * length)[:length]
    events = list(result_events(text))
    assert [len(e.data) for e in events[:-1]] == [CHUNK_CHARS] * (len(events) - 1)
    assert 0 < len(events[-1].data) <= CHUNK_CHARS and "".join(e.data for e in events) == text
    assert assemble(decode_events(cut(encode_events(events), points))).result == text

def oracle(raw: bytes) -> tuple[list[ServerSentEvent], bool]:
    "Decode a whole stream by the WHATWG rules in the most direct way: (events, truncated inside an event)."
    lines = LINE_BREAK.split(raw.decode("utf-8", "replace").removeprefix("\ufeff"))
    events, name, data, seen = [], None, [], False
    for line in lines[:-1]:
        if line == "":
            if seen: events.append(ServerSentEvent(name or "message", "\n".join(data)))
            name, data, seen = None, [], False
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event": name, seen = value, True
            elif field == "data": data.append(value); seen = True
    tail = lines[-1]
    return events, seen or (tail != "" and not tail.startswith(":"))

TOKENS = st.sampled_from([b"event", b"data", b"id", b"retry", b":", b": ", b" ", b"  ", b"\r", b"\n", b"\r\n", b"x",
                          b"end", b"\xc3\xa9", b"\xf0\x9f\x98\x80", b"\xf0\x9f", b"\xff", b"\xef\xbb\xbf", b"\t", b"\x00"])

@examples(2000)
@given(raw=st.lists(TOKENS, max_size=60).map(b"".join), points=POINTS)
def test_incremental_decoder_matches_whole_text_oracle(raw, points):
    expected, truncated = oracle(raw)
    decoder = SSEDecoder()
    got = [event for piece in cut(raw, points) for event in decoder.feed(piece)]
    assert got == expected
    assert decoder.pending == truncated
    if truncated:
        with pytest.raises(SSEError): decoder.close()
    else: decoder.close()

# ---------------------------------------------------------------------------------------------------------------
# iter_sse / aiter_sse over a real uvicorn
# ---------------------------------------------------------------------------------------------------------------

AWKWARD_PAYLOAD = json.dumps({"ok": True, "output": {"blocks": [{"text": "é😀 \u2028 " * 3000, "detail": None, "type": "text"}],
                              "metadata": {"note": "  spaces  "}, "reward": 1.0, "finished": True}},
                             separators=(",", ":"), ensure_ascii=False)
AWKWARD_RAW = (encode_event(ServerSentEvent("task_id", "a" * 32)) + ping_comment()
               + encode_events(result_events(AWKWARD_PAYLOAD)))

def awkward_pieces(raw: bytes) -> list[bytes]:
    "Cut after every CR, inside forty 4-byte characters, and elsewhere every 1 to 29 bytes."
    edges, rng = set(), random.Random(7)
    for m in re.finditer(rb"\r", raw): edges.add(m.end())
    for m in list(re.finditer("😀".encode(), raw))[:40]: edges.add(m.start() + 2)
    pos = 0
    while pos < len(raw): pos += rng.randint(1, 29); edges.add(min(pos, len(raw)))
    edges = sorted(edges)
    return [raw[a:b] for a, b in zip([0] + edges, edges) if b > a]

GATE = threading.Event()   # set by a test once it has received the first event of /gated

async def awkward(request: Request):
    async def body():
        for i, piece in enumerate(awkward_pieces(AWKWARD_RAW)):
            yield piece
            if i % 100 == 0 or piece.endswith((b"\r", b"\xf0\x9f")):  # pause, so the piece travels on its own
                await anyio.sleep(0.002)
    return StreamingResponse(body(), headers=EVENT_STREAM_HEADERS)

async def gated(request: Request):
    async def body():
        yield encode_event(ServerSentEvent("task_id", "b" * 32))
        for _ in range(500):                     # at most 5 s: the client has to read the first event first
            if GATE.is_set(): break
            await anyio.sleep(0.01)
        yield encode_events(result_events("after the gate" if GATE.is_set() else "gate never opened"))
    return StreamingResponse(body(), headers=EVENT_STREAM_HEADERS)

async def truncated(request: Request):
    async def body():
        yield STREAMS["call_ok"][:-60]
    return StreamingResponse(body(), headers=EVENT_STREAM_HEADERS)

async def not_found(request: Request):
    return JSONResponse({"detail": "Active environment not found"}, status_code=404)

APP = Starlette(routes=[Route("/awkward", awkward, methods=["POST"]), Route("/gated", gated, methods=["POST"]),
                        Route("/truncated", truncated, methods=["POST"]), Route("/missing", not_found, methods=["POST"])])

@pytest.fixture(scope="module")
def local_server() -> Iterator[str]:
    "Base URL of APP on uvicorn, 127.0.0.1 and a free port, in a thread of this process."
    from conftest import free_port
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(APP, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try: yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)

def test_iter_sse_over_uvicorn_awkward_pieces(local_server):
    assert len(awkward_pieces(AWKWARD_RAW)) > 1000  # about 2 500
    with httpx.Client(base_url=local_server, timeout=30) as client:
        with connect_sse(client, "POST", "/awkward") as response:
            assert response.request.headers["accept"] == "text/event-stream"
            assert {k: response.headers.get(k) for k in EVENT_STREAM_HEADERS} == EVENT_STREAM_HEADERS
            events = list(iter_sse(response))
    assert [e.event for e in events] == ["task_id"] + ["chunk"] * (len(events) - 2) + ["end"] and len(events) > 3
    asm = assemble(events)
    assert (asm.task_id, asm.result) == ("a" * 32, AWKWARD_PAYLOAD)

@pytest.mark.anyio
async def test_aiter_sse_over_uvicorn_awkward_pieces(local_server):
    async with httpx.AsyncClient(base_url=local_server, timeout=30) as client:
        async with aconnect_sse(client, "POST", "/awkward") as response:
            asm = await aassemble(aiter_sse(response))
    assert (asm.task_id, asm.result, asm.error) == ("a" * 32, AWKWARD_PAYLOAD, None)

def test_iter_sse_yields_each_event_as_it_arrives(local_server):
    GATE.clear()
    with httpx.Client(base_url=local_server, timeout=30) as client, connect_sse(client, "POST", "/gated") as response:
        events = iter_sse(response)
        assert next(events) == ServerSentEvent("task_id", "b" * 32)   # the server is still waiting for GATE here
        GATE.set()
        assert list(events) == [ServerSentEvent("end", "after the gate")]

@pytest.mark.anyio
async def test_aiter_sse_yields_each_event_as_it_arrives(local_server):
    GATE.clear()
    async with httpx.AsyncClient(base_url=local_server, timeout=30) as client:
        async with aconnect_sse(client, "POST", "/gated") as response:
            events = aiter_sse(response)
            assert await events.__anext__() == ServerSentEvent("task_id", "b" * 32)
            GATE.set()
            assert [e async for e in events] == [ServerSentEvent("end", "after the gate")]

def test_truncated_body_raises_and_assembler_reports_incomplete(local_server):
    with httpx.Client(base_url=local_server, timeout=30) as client:
        asm, seen = ResultAssembler(), []
        with connect_sse(client, "POST", "/truncated") as response, pytest.raises(SSEError, match="ended inside an event"):
            for event in iter_sse(response):
                seen.append(event)
                asm.feed(event)
        assert [e.event for e in seen] == ["task_id"] and not asm.done and asm.task_id == seen[0].data

def test_non_event_stream_response_is_refused(local_server):
    with httpx.Client(base_url=local_server, timeout=30) as client, connect_sse(client, "POST", "/missing") as response:
        assert response.status_code == 404
        with pytest.raises(SSEError, match="got HTTP 404 with content-type 'application/json'"): next(iter_sse(response))

# ---------------------------------------------------------------------------------------------------------------
# Live against the reference server
# ---------------------------------------------------------------------------------------------------------------

CALLS = {  # fixture name → body of POST /capture/call
    "call_ok": {"name": "count", "input": {}},
    "call_9000": {"name": "big", "input": {"n": 9000}},
    "call_spaces": {"name": "echo", "input": {"text": SPACES_TEXT}},
    "call_error": {"name": "boom", "input": {}},
    "call_error_multiline": {"name": "boom_multiline", "input": {}},
    "call_unknown_task": {"name": "count", "input": {}, "task_id": "0" * 32},
}

def capture_streams(base_url: str, ping: bool = True) -> dict[str, bytes]:
    "The raw bodies of the fixture scenarios, captured live from the reference server at `base_url`."
    out, sid = {}, {"X-Session-ID": f"sse-capture-{time.monotonic_ns()}"}
    with httpx.Client(base_url=base_url, timeout=60) as client:
        with connect_sse(client, "POST", "/create_session", json={}) as r: out["create_session"] = r.read()
        client.post("/create", headers=sid, json={"split": "train", "index": 0}).raise_for_status()
        for name, body in CALLS.items():
            with connect_sse(client, "POST", "/capture/call", headers=sid, json=body) as r: out[name] = r.read()
        # re-attach: read up to the task_id event, drop the connection, POST again with the id
        slow = {"name": "slow", "input": {"seconds": 1.5}}
        with connect_sse(client, "POST", "/capture/call", headers=sid, json=slow) as r:
            task_id = next(iter_sse(r)).data
        with connect_sse(client, "POST", "/capture/call", headers=sid, json={**slow, "task_id": task_id}) as r:
            out["call_resume"] = r.read()
        if ping:
            with connect_sse(client, "POST", "/capture/call", headers=sid, json={"name": "slow", "input": {"seconds": 12.5}}) as r:
                out["call_ping"] = r.read()
        client.post("/delete", headers=sid)
    return out

def normalise(raw: bytes) -> bytes:
    "Bytes with task ids and ping comments blanked out, for comparing two captures."
    return re.sub(rb"(event: task_id\r\ndata: )[0-9a-f-]+", rb"\1<id>", PING.sub(b"<ping>", raw))

@pytest.fixture(scope="module")
def live_reference(reference_python) -> Iterator[str]:
    from conftest import serve_subprocess
    with serve_subprocess(reference_python, SSE_DIR/"reference_env.py") as (url, _): yield url

@pytest.mark.interop
@pytest.mark.slow
def test_reference_server_still_sends_the_fixtures(live_reference):
    live = capture_streams(live_reference)
    assert set(live) == set(STREAMS)
    for name, raw in live.items():
        assert normalise(raw) == normalise(STREAMS[name]), name
        assert reencode(raw) == raw, name
        assert outcome(assemble(decode_events(raw))) == EXPECTED[name][1], name
    assert PING.search(live["call_ping"]) and b"<ping>" in normalise(live["call_ping"])

@pytest.mark.interop
def test_reattach_to_a_running_tool_by_task_id(live_reference):
    sid = {"X-Session-ID": f"sse-reattach-{time.monotonic_ns()}"}
    slow = {"name": "slow", "input": {"seconds": 1.0}}
    with httpx.Client(base_url=live_reference, timeout=30) as client:
        client.post("/create", headers=sid, json={"split": "train", "index": 0}).raise_for_status()
        with connect_sse(client, "POST", "/capture/call", headers=sid, json=slow) as r:
            first = ResultAssembler()
            for event in iter_sse(r):
                first.feed(event)
                break                                     # the connection drops after the task id
        assert not first.done and first.task_id
        with connect_sse(client, "POST", "/capture/call", headers=sid, json={**slow, "task_id": first.task_id}) as r:
            second = assemble(iter_sse(r))
        client.post("/delete", headers=sid)
    assert (second.task_id, outcome(second)) == (first.task_id, ("text", "slept"))

@pytest.mark.interop
@pytest.mark.anyio
async def test_async_helpers_against_reference(live_reference):
    sid = {"X-Session-ID": f"sse-async-{time.monotonic_ns()}"}
    async with httpx.AsyncClient(base_url=live_reference, timeout=30) as client:
        async with aconnect_sse(client, "POST", "/create_session", json={}) as r:
            assert {k: r.headers.get(k) for k in EVENT_STREAM_HEADERS} == EVENT_STREAM_HEADERS
            session = await aassemble(aiter_sse(r))
        (await client.post("/create", headers=sid, json={"split": "train", "index": 0})).raise_for_status()
        async with aconnect_sse(client, "POST", "/capture/call", headers=sid, json=CALLS["call_9000"]) as r:
            big = await aassemble(aiter_sse(r))
        await client.post("/delete", headers=sid)
    assert re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", session.task_id) and session.result == ""
    assert outcome(big) == ("text", "x" * 9000)

if __name__ == "__main__" and sys.argv[1:] == ["capture"]:
    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import ensure_reference_venv, serve_subprocess
    with serve_subprocess(ensure_reference_venv(), SSE_DIR/"reference_env.py") as (url, _):
        for name, raw in capture_streams(url).items():
            (SSE_DIR/f"{name}.sse").write_bytes(raw)
            print(f"{name}.sse: {len(raw)} bytes")
