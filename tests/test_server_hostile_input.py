"""Hostile input the fuzzer (tests/test_server_fuzz.py) once turned into 500s, pinned down deterministically.

- bodies with non-finite numbers (`1e310`, `NaN`, `Infinity`), integers of more than 4300 digits, or nesting far
  deeper than the stack allows, in any body, in a tool's `input` and base64-encoded in `X-Secrets`: a 400 whose
  `detail` names the limit;
- a body that fails validation and holds a lone surrogate (`"\\ud800"`): the 422 echoing it, escaped;
- a tool whose error message quotes a lone surrogate: the stream still ends with an `error` event;
- finished call results are forgotten after `result_ttl` on a server no call reaches any more (the reaper purges).
"""
import asyncio, json

import httpx
import pytest
from hypothesis import example, given, settings

from test_server_fuzz import (FUZZ, LIVE_SIDS, PER_ENV, b64, check, deep, encode_headers, inproc, requests,
                              unsendable_is_rejected)
from test_server_leaks import serving
from conftest import asgi_lifespan
from pydantic import BaseModel

from openreward.environments import Environment, Server, TextBlock, ToolOutput, tool

@settings(FUZZ, max_examples=1)
@given(req=requests())
@example(req=("POST", "/create", {"X-Session-ID": "fuzz-live-0"}, b"1e310"))
@example(req=("POST", "/counter/tasks", {}, b'{"split": NaN}'))
@example(req=("POST", "/counter/task", {}, b'{"split": "train", "index": ' + b"9" * 5000 + b"}"))
@example(req=("POST", "/counter/call", {"X-Session-ID": "fuzz-live-0"}, deep(100_000)))
def test_inprocess_regressions(inproc, req):
    method, path, headers, body = req
    r = unsendable_is_rejected(lambda: inproc(method, path, headers=encode_headers(headers), content=body))
    check(method, path, r)

EDGE_BODIES = [
    b"", b"{", b"null", b"[]", b'"x"', b"1e310", b"-1e310", b"NaN", b"Infinity", b"\xff\xfe{}", b"{}", deep(900),
    deep(100_000), b'{"a":' * 50_000, b'{"split":"train","index":' + b"9" * 5000 + b"}",
    b'{"split":"train","index":1e310}', b'{"split":"train","start":-1e310}', b'{"split":1e999}',
    b'{"split":"train","index":1.5}', b'{"split":"\\ud800"}', b'{"task_spec":{"a":1e999}}', b'{"task_spec":{"a":NaN}}',
    b'{"task_spec":{"\\ud800":1}}', b'{"name":"increment","input":{"amount":1e999}}',
    b'{"name":"increment","input":{"amount":' + b"9" * 5000 + b"}}", b'{"name":"echo","input":{"text":"\\ud800"}}',
    b'{"name":"\\ud800","input":{}}', b'{"name":"increment","input":' + deep(5000) + b"}",
    b'{"name":"increment","input":{},"task_id":1e999}', b'{"candidates":[{"messages":[],"metadata":{"x":1e999}}]}',
    b'{"env_name":"\\u0000"}', b'{"split":"train","index":0,"env_name":"workbench"}', b'{"toolset_name":"cli","task_spec":{}}']
EDGE_SECRETS = [None, "%%%", b64(b"1e310"), b64(b'{"K":{"value":1e999}}'), b64(deep(100_000)), b64(b'{"K":"\\ud800"}'),
                b64(b"\xff"), b64(b'{"K":{"value":"v","allowed_domains":"x"}}')]
EDGE_PATHS = ["/create", "/ping", "/delete", "/delete_session", "/create_session"] + [
    f"/{env}/{p}" for env in ("counter", "workbench") for p in PER_ENV]
GETS = {"tools", "splits", "task_tools", "prompt", "messages"}

def test_inprocess_edge_body_matrix(inproc):
    "Every endpoint against every edge-case body (and /create, /create_session against every bad X-Secrets)."
    failures = []
    for path in EDGE_PATHS:
        method = "GET" if path.rsplit("/", 1)[1] in GETS else "POST"
        for body in EDGE_BODIES:
            for secrets in (EDGE_SECRETS if path in ("/create", "/create_session") else [None]):
                sid = "fuzz-matrix" if path == "/create" else LIVE_SIDS[1] if "workbench" in path else LIVE_SIDS[0]
                headers = {"X-Session-ID": sid} | ({"X-Secrets": secrets} if secrets else {})
                r = inproc(method, path, headers=headers, content=body)
                if path == "/create" and r.status_code == 200: inproc("POST", "/delete", headers={"X-Session-ID": sid})
                try: check(method, path, r)
                except AssertionError as e:
                    failures.append(f"{method} {path} body={body[:40]!r} secrets={secrets and secrets[:16]!r}: {str(e).splitlines()[0]}"[:300])
    assert not failures, f"{len(failures)} of the edge requests failed:\n" + "\n".join(failures[:40])

LIMITS = [(b'{"split": NaN}', "NaN is not a JSON number"),
          (b'{"split": "train", "index": -1e310}', "the number -1e310 is beyond the range of a 64-bit float"),
          (b'{"split": "train", "index": ' + b"9" * 5000 + b"}", "an integer literal has more than 4300 digits"),
          (b'{"split": ' + deep(100_000) + b"}", "nested deeper than 128 levels"),
          (b'{"split": ' + deep(129) + b"}", "nested deeper than 128 levels")]

@pytest.mark.parametrize("body,limit", LIMITS, ids=["nan", "overflow", "digits", "deep", "129-deep"])
def test_limits_are_named_in_a_400(inproc, body, limit):
    r = inproc("POST", "/counter/task", content=body)
    assert r.status_code == 400, r.text
    assert r.json()["detail"].startswith("There was an error parsing the body: " + limit), r.text

def session(inproc, env: str) -> dict[str, str]:
    "Headers of a fresh session on `env`'s first training task (the shared live sessions may have been deleted)."
    sid = {"X-Session-ID": f"hostile-{env}"}
    inproc("POST", "/delete", headers=sid)
    assert inproc("POST", "/create", headers=sid, json={"env_name": env, "split": "train", "index": 0}).status_code == 200
    return sid

def test_limits_hold_in_tool_input_and_secrets(inproc):
    sid = session(inproc, "counter")
    r = inproc("POST", "/counter/call", headers=sid,
               content=b'{"name":"increment","input":{"amount":' + deep(3000) + b"}}")
    assert r.status_code == 400 and "nested deeper than 128 levels" in r.json()["detail"], r.text
    r = inproc("POST", "/counter/call", headers=sid,
               content=b'{"name":"increment","input":{"amount":Infinity}}')
    assert r.status_code == 400 and "Infinity is not a JSON number" in r.json()["detail"], r.text
    r = inproc("POST", "/create", headers={"X-Session-ID": "hostile-secrets", "X-Secrets": b64(deep(100_000))},
               json={"env_name": "counter", "split": "train", "index": 0})
    assert r.status_code == 400 and "X-Secrets header is not base64 of a JSON object" in r.json()["detail"] \
        and "nested deeper than 128 levels" in r.json()["detail"], r.text
    assert inproc("POST", "/ping", headers={"X-Session-ID": "hostile-secrets"}).status_code == 404  # no session made

def test_nesting_within_the_limit_is_accepted(inproc):
    "128 levels pass the parser: the tool's own validation answers (a result event, not a 400)."
    sid = session(inproc, "counter")
    # the body's object, `input`'s object and 126 arrays: 128 levels
    r = inproc("POST", "/counter/call", headers=sid,
               content=b'{"name":"increment","input":{"amount":' + b"[" * 126 + b"]" * 126 + b"}}")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream"), r.text
    assert '"reason":"input_validation"' in r.text, r.text

def test_lone_surrogate_is_echoed_escaped_in_the_422(inproc):
    r = inproc("POST", "/counter/task", content=b'{"split": ["\\ud800", "\\u00e9"]}')
    assert r.status_code == 422, r.text
    assert r.content.isascii(), r.content  # escaped: a lone surrogate cannot be written as UTF-8
    (err,) = [e for e in r.json()["detail"] if e["loc"] == ["body", "split"]]
    assert err["input"] == ["\ud800", "é"], err  # the client reads back exactly what it sent
    r = inproc("POST", "/counter/task", content=b'{"split": ["\\u00e9"]}')   # no surrogate: FastAPI's UTF-8 bytes
    assert r.status_code == 422 and "é".encode() in r.content, r.content

def test_output_holding_a_lone_surrogate_ends_the_stream_with_an_error(inproc):
    "The echo tool's output cannot be serialised; the stream ends with an `error` event, not a broken connection."
    r = inproc("POST", "/workbench/call", headers=session(inproc, "workbench"),
               content=b'{"name":"echo","input":{"text":"\\ud800"}}')
    assert r.status_code == 200 and "event: error" in r.text, r.text

class TextParams(BaseModel):
    text: str

class Quoter(Environment):
    "Quotes what it is given in its exceptions, as careless user code does."
    def __init__(self, task_spec: dict = {}, secrets: dict[str, str] = {}):
        super().__init__(task_spec)
        if "refuse" in task_spec: raise ValueError(f"cannot start on {task_spec['refuse']}")

    @classmethod
    def list_splits(cls): return ["train"]

    @classmethod
    def list_tasks(cls, split: str): return [{}]

    def get_prompt(self): return [TextBlock(text="go")]

    @tool
    def quote(self, params: TextParams) -> ToolOutput:
        "Raise, quoting the text."
        raise ValueError(f"cannot use {params.text}")

@pytest.mark.anyio
async def test_user_errors_quoting_a_lone_surrogate_are_answered():
    server = Server([Quoter])
    async with asgi_lifespan(server.app):
        transport = httpx.ASGITransport(app=server.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://hostile") as c:
            r = await c.post("/create", headers={"X-Session-ID": "q0"}, content=b'{"task_spec":{"refuse":"\\ud800"}}')
            assert r.status_code == 500 and r.json() == {"detail": "ValueError: cannot start on \ud800"}, r.text
            sid = {"X-Session-ID": "q1"}
            assert (await c.post("/create", headers=sid, json={"task_spec": {}})).status_code == 200
            r = await c.post("/quoter/call", headers=sid, content=b'{"name":"quote","input":{"text":"\\ud800"}}')
            assert r.status_code == 200 and "event: error\r\ndata: cannot use \\ud800\r\n" in r.text, r.text

@pytest.mark.anyio
async def test_results_expire_without_further_traffic():
    "Finished results are forgotten after `result_ttl` even if no other call ever comes."
    async with serving(result_ttl=0.5, reap_interval=0.05) as (server, c):
        sid = {"X-Session-ID": "r"}
        await c.post("/create", headers=sid, json={"env_name": "tracked", "task_spec": {}})
        for _ in range(20): r = await c.post("/tracked/call", headers=sid, json={"name": "poke", "input": {}})
        last = r.text.split("event: task_id\r\ndata: ", 1)[1].split("\r\n", 1)[0]
        assert last in server.calls.calls, "the result just finished is kept for re-attach"
        await c.post("/delete", headers=sid)
        await asyncio.sleep(1.5)  # result_ttl and many reap intervals, with no request at all
        assert server.calls.calls == {}, f"{len(server.calls.calls)} results outlived result_ttl on an idle server"
