"""Fuzz every endpoint of our ORS server with malformed requests: no 5xx, useful 4xx, and still healthy afterwards.

Hypothesis generates methods, paths, headers (X-Session-ID, X-Secrets, Content-Type) and bodies (not JSON, not an
object, wrong types, extra keys, huge numbers, deep nesting, unicode) and sends them to the server in-process
(httpx.ASGITransport, the app's lifespan running) and to a real uvicorn on 127.0.0.1. Bodies are also derived from
the server's own `/openapi.json`, valid and then broken. Every answer must be < 500; a JSON 4xx must carry a
`detail`; after the storm a normal episode must still run correctly.
"""
import base64, json, os, socket, string, sys

import anyio.from_thread
import httpx
import pytest
from hypothesis import HealthCheck, given, reject, settings, strategies as st

from conftest import EXAMPLES_PY, SERVE_EXAMPLES, asgi_lifespan, serve_subprocess

from openreward.environments import Server
from openreward.examples import ENVIRONMENTS

N = int(os.environ.get("ORW_FUZZ_EXAMPLES", "1500"))   # examples per in-process property
N_LIVE = max(N // 5, 100)                               # examples per property against real uvicorn
# CI runs the same examples every time (a fuzzer must not make CI flaky); ORW_FUZZ_RANDOM=1 explores new ones.
FUZZ = settings(deadline=None, suppress_health_check=list(HealthCheck), database=None,
                derandomize=not os.environ.get("ORW_FUZZ_RANDOM"))

ENVS = ["counter", "Counter", "COUNTER", "basicarithmetic", "bitwisearithmetic", "workbench", "nope", ""]
ROOT = ["health", "version", "list_environments", "create_session", "create", "ping", "delete", "delete_session",
        "openapi.json", "docs"]
PER_ENV = ["tools", "splits", "tasks", "num_tasks", "task", "task_range", "task_tools", "prompt", "messages",
           "call", "score_group"]
LIVE_SIDS = [f"fuzz-live-{i}" for i in range(4)]
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]
TOOLS = ["increment", "answer", "echo", "draw", "crash", "submit", "nope", ""]   # never `wait`: it may sleep 60 s

# ---------------------------------------------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------------------------------------------

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(min_value=10**30, max_value=10**400),
                      st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40))
json_value = st.recursive(json_leaf, lambda kids: st.one_of(st.lists(kids, max_size=4),
                          st.dictionaries(st.text(max_size=10), kids, max_size=4)), max_leaves=12)
wrong = st.one_of(json_value, st.just(-1), st.just(10**40), st.just(-(10**40)), st.just(""), st.just([]), st.just({}),
                  st.just(1.5), st.just(True), st.just("0"))

@st.composite
def known_shaped(draw) -> dict:
    "An object with the keys ORS bodies use, each holding something plausible or something wrong."
    keys = {"split": st.sampled_from(["train", "test", "nope", ""]), "index": st.integers(-5, 5),
            "start": st.integers(-5, 5), "stop": st.integers(-5, 5), "env_name": st.sampled_from(ENVS),
            "task_spec": st.one_of(st.just({"id": "f", "start": 0, "target": 3}), st.just({}), json_value),
            "toolset_name": st.sampled_from(["cli", "nope", ""]), "name": st.sampled_from(TOOLS),
            "input": st.one_of(st.just({}), st.just({"amount": 1}), st.just({"text": "x", "repeat": 3}),
                               st.just({"answer": "10"}), json_value),
            "task_id": st.one_of(st.text(max_size=40), st.just("0" * 32)), "candidates": json_value}
    chosen = draw(st.lists(st.sampled_from(sorted(keys)), max_size=5, unique=True))
    body = {k: draw(st.one_of(keys[k], wrong)) for k in chosen}
    if draw(st.booleans()): body.update(draw(st.dictionaries(st.text(max_size=8), json_value, max_size=2)))
    return body

def deep(n: int) -> bytes: return b"[" * n + b"]" * n

raw_body = st.one_of(
    st.just(b""), st.binary(max_size=200), st.text(max_size=200).map(str.encode),
    json_value.map(lambda v: json.dumps(v).encode()),
    known_shaped().map(lambda v: json.dumps(v).encode()),
    st.sampled_from([b"{", b"null", b"[]", b'"x"', b"1e999", b"NaN", b'{"split": NaN}', b"\xff\xfe{}",
                     b'{"split":"train","split":"test"}', deep(100_000), b'{"a":' * 50_000,
                     json.dumps({"split": "train", "index": 10**4000}).encode(),
                     b'{"name":"echo","input":{"text":"\\ud800","repeat":2}}']))

header_text = st.one_of(st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=60),
                        st.sampled_from(["", " ", "  fuzz-live-0  ", "fuzz-live-1", "../../etc", "\t", "a" * 5000]))

def b64(data: bytes) -> str: return base64.b64encode(data).decode()

secrets_header = st.one_of(
    header_text, st.binary(max_size=60).map(b64), json_value.map(lambda v: b64(json.dumps(v).encode())),
    st.just(b64(b'{"K": {"value": "v", "allowed_domains": []}}')), st.just(b64(b'{"K": "flat"}')),
    st.just(b64(b'{"K": {"value": 3}}')), st.just(b64(deep(100_000))), st.just("%%%not base64%%%"))

@st.composite
def requests(draw) -> tuple[str, str, dict[str, str], bytes]:
    method = draw(st.one_of(st.sampled_from(METHODS), st.sampled_from(["FOO", "get"])))
    env = draw(st.sampled_from(ENVS))
    path = draw(st.one_of(
        st.sampled_from(ROOT).map(lambda p: "/" + p),
        st.sampled_from(PER_ENV).map(lambda p: (f"/{env}/{p}" if env else f"/{p}")),
        st.lists(st.text(string.ascii_letters + string.digits + "-_.~%", max_size=12), min_size=1, max_size=4)
          .map(lambda parts: "/" + "/".join(parts)),
        st.sampled_from(["/", "//", "/counter/", "/counter/call/extra", "/%00", "/counter/%2e%2e/tools",
                         "/tools?split=train", "/health?x=" + "y" * 3000])))
    headers = {}
    if draw(st.booleans()): headers["X-Session-ID"] = draw(st.one_of(st.sampled_from(LIVE_SIDS), header_text))
    if draw(st.integers(0, 3)) == 0: headers["X-Secrets"] = draw(secrets_header)
    if draw(st.booleans()): headers["Content-Type"] = draw(st.sampled_from(
        ["application/json", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data", "", "json"]))
    for h in draw(st.lists(st.sampled_from(["X-Deployment", "X-API-Key", "Accept", "X-User-ID"]), max_size=2)):
        headers[h] = draw(header_text)
    return method, path, headers, draw(raw_body)

# ---------------------------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------------------------

def check(method: str, path: str, r: httpx.Response) -> None:
    "No 5xx; a JSON 4xx says what was wrong in `detail`."
    assert r.status_code < 500, f"{method} {path} -> {r.status_code}: {r.text[:500]}"
    if 400 <= r.status_code < 500 and method != "HEAD" and r.headers.get("content-type", "").startswith("application/json"):
        assert "detail" in r.json(), f"{method} {path} -> {r.status_code} without detail: {r.text[:300]}"

def encode_headers(headers: dict[str, str], wire: bool = False) -> list[tuple[bytes, bytes]]:
    "Headers as bytes; `wire=True` keeps only what a real HTTP client can send (h11 refuses the rest itself)."
    if wire: headers = {k: "".join(ch for ch in v if ch == "\t" or " " <= ch != "\x7f").strip(" \t")
                        for k, v in headers.items()}
    return [(k.encode(), v.encode("latin-1")) for k, v in headers.items()]

def unsendable_is_rejected(send):
    "Send; a request httpx itself refuses to build (invalid URL or header) is not an example."
    try: return send()
    except (httpx.InvalidURL, httpx.LocalProtocolError): reject()

def play_episode(request) -> None:
    "A normal counter episode, through whatever `request(method, path, **kw)` sends: must be exactly right."
    sid = "fuzz-after"
    request("POST", "/delete", headers={"X-Session-ID": sid})
    r = request("POST", "/create", headers={"X-Session-ID": sid},
                json={"env_name": "counter", "task_spec": {"id": "a", "start": 0, "target": 2}})
    assert r.status_code == 200 and r.json() == {"sid": sid}, r.text
    r = request("GET", "/counter/prompt", headers={"X-Session-ID": sid})
    assert r.json() == [{"text": "Count from 0 to 2.", "detail": None, "type": "text"}]
    for n in (1, 2):
        r = request("POST", "/counter/call", headers={"X-Session-ID": sid}, json={"name": "increment", "input": {}})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        end = r.text.split("event: end\r\ndata: ", 1)[1].split("\r\n", 1)[0]
        assert json.loads(end)["output"]["metadata"] == {"count": n}
        assert json.loads(end)["output"]["finished"] is (n == 2)
    assert request("POST", "/delete", headers={"X-Session-ID": sid}).json() == {"sid": sid}
    assert request("POST", "/ping", headers={"X-Session-ID": sid}).status_code == 404

# ---------------------------------------------------------------------------------------------------------------
# In-process: the ASGI app with its lifespan, driven from a blocking portal so hypothesis stays synchronous
# ---------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def inproc():
    "`request(method, path, **httpx kwargs) -> Response` against a fresh in-process server with live sessions."
    app = Server(ENVIRONMENTS).app
    with anyio.from_thread.start_blocking_portal() as portal:
        with portal.wrap_async_context_manager(asgi_lifespan(app)):
            # an exception escaping the app becomes the 500 uvicorn would send, so the checks see it
            client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                                       base_url="http://fuzz")
            def request(method, path, **kw): return portal.call(lambda: client.request(method, "http://fuzz" + path, **kw))
            for sid in LIVE_SIDS:
                env = ["counter", "workbench", "basicarithmetic", "counter"][LIVE_SIDS.index(sid)]
                body = {"env_name": env, "split": "train", "index": 0}
                assert request("POST", "/create", headers={"X-Session-ID": sid}, json=body).status_code == 200
            yield request
            portal.call(client.aclose)

@settings(FUZZ, max_examples=N)
@given(req=requests())
def test_inprocess_malformed_requests(inproc, req):
    method, path, headers, body = req
    r = unsendable_is_rejected(lambda: inproc(method, path, headers=encode_headers(headers), content=body))
    check(method, path, r)

def schema_instance(draw, schema: dict, defs: dict, depth: int = 0):
    "A value for a JSON schema (the subset pydantic emits), drawn with hypothesis."
    if "$ref" in schema: return schema_instance(draw, defs[schema["$ref"].rsplit("/", 1)[1]], defs, depth + 1)
    for key in ("anyOf", "oneOf"):
        if key in schema: return schema_instance(draw, draw(st.sampled_from(schema[key])), defs, depth + 1)
    if "allOf" in schema: return schema_instance(draw, schema["allOf"][0], defs, depth + 1)
    if "enum" in schema: return draw(st.sampled_from(schema["enum"]))
    if "const" in schema: return schema["const"]
    t = schema.get("type")
    if isinstance(t, list): t = draw(st.sampled_from(t))
    if depth > 6 or t is None: return draw(json_value)
    if t == "object":
        props = schema.get("properties", {})
        keys = [k for k in props if k in schema.get("required", []) or draw(st.booleans())]
        return {k: schema_instance(draw, props[k], defs, depth + 1) for k in keys}
    if t == "array": return [schema_instance(draw, schema.get("items", {}), defs, depth + 1) for _ in range(draw(st.integers(0, 3)))]
    return draw({"string": st.text(max_size=20), "integer": st.integers(-10, 10), "number": st.floats(-10, 10),
                 "boolean": st.booleans(), "null": st.none()}.get(t, json_value))

@pytest.fixture(scope="module")
def openapi_operations(inproc) -> list[tuple[str, str, dict, dict]]:
    "(method, path, request body schema, components) for every operation our `/openapi.json` documents."
    r = inproc("GET", "/openapi.json")
    assert r.status_code == 200, "the server documents itself at /openapi.json"
    doc = r.json()
    defs = {**doc.get("components", {}).get("schemas", {})}
    ops = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method.upper() not in METHODS: continue
            content = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            ops.append((method.upper(), path, content.get("schema", {}), defs))
    assert len(ops) >= 15, f"only {len(ops)} operations documented"
    return ops

@settings(FUZZ, max_examples=N)
@given(data=st.data())
def test_inprocess_openapi_bodies(inproc, openapi_operations, data):
    method, path, schema, defs = data.draw(st.sampled_from(openapi_operations))
    env = data.draw(st.sampled_from(["counter", "workbench", "bitwisearithmetic", "nope"]))
    path = path.replace("{env}", env).replace("{env_name}", env)
    body = schema_instance(data.draw, schema, defs) if schema else None
    if isinstance(body, dict) and data.draw(st.booleans()):       # then break it: drop, retype or add a key
        how = data.draw(st.sampled_from(["drop", "retype", "extra"]))
        if how == "drop" and body: body.pop(data.draw(st.sampled_from(sorted(body))))
        elif how == "retype" and body: body[data.draw(st.sampled_from(sorted(body)))] = data.draw(wrong)
        else: body[data.draw(st.text(min_size=1, max_size=8))] = data.draw(json_value)
    if isinstance(body, dict) and body.get("name") == "wait": body["name"] = "echo"
    headers = {"X-Session-ID": data.draw(st.sampled_from(LIVE_SIDS + ["fuzz-unknown"]))}
    r = inproc(method, path, headers=headers, json=body)
    check(method, path, r)

def test_inprocess_still_serves_after_fuzzing(inproc):
    "Runs after the properties above (same module-scoped server): a normal episode is exactly right."
    play_episode(inproc)
    assert inproc("GET", "/health").json() == {"status": "ok"}

# ---------------------------------------------------------------------------------------------------------------
# Real uvicorn: the same malformed requests over TCP, plus raw bytes no HTTP client would send
# ---------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def live():
    with serve_subprocess(sys.executable, SERVE_EXAMPLES, str(EXAMPLES_PY)) as (url, proc):
        with httpx.Client(base_url=url, timeout=30) as client:
            for i, sid in enumerate(LIVE_SIDS):
                body = {"env_name": ["counter", "workbench", "basicarithmetic", "counter"][i], "split": "train", "index": 0}
                assert client.post("/create", headers={"X-Session-ID": sid}, json=body).status_code == 200
            yield url, client, proc

@settings(FUZZ, max_examples=N_LIVE)
@given(req=requests())
def test_live_malformed_requests(live, req):
    url, client, proc = live
    method, path, headers, body = req
    wire = encode_headers(headers, wire=True)
    try: r = unsendable_is_rejected(lambda: client.request(method, url + path, headers=wire, content=body))
    except httpx.TransportError:
        # uvicorn drops a connection whose head exceeds its limit (h11: 16 KiB); anything smaller must be answered
        if sum(len(k) + len(v) for k, v in wire) + len(path) < 16 * 1024: raise
        assert client.get(url + "/health").status_code == 200
    else: check(method, path, r)
    assert proc.poll() is None

RAW = [b"GARBAGE\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"POST /create HTTP/1.1\r\nHost: x\r\nContent-Length: 99999\r\n\r\n{",
       b"POST /counter/tasks HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
       b"POST /counter/tasks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n",
       b"GET /health HTTP/1.1\r\nHost: x\r\nX-Session-ID: \x00\x01\r\n\r\n",
       b"GET /health HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 100_000 + b"\r\n\r\n",
       b"POST /counter/call HTTP/1.1\r\nHost: x\r\nX-Session-ID: fuzz-live-0\r\nContent-Length: 20\r\n\r\n{\"name\":\"increment\""]

@pytest.mark.parametrize("raw", RAW, ids=range(len(RAW)))
def test_live_raw_bytes(live, raw):
    url, client, proc = live
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(raw)
        s.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := s.recv(65536): answer += chunk
    if answer: assert not answer.startswith(b"HTTP/1.1 5"), answer[:300]
    assert proc.poll() is None
    assert client.get("/health").status_code == 200

def test_live_still_serves_after_fuzzing(live):
    url, client, proc = live
    play_episode(client.request)
