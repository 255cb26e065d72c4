"""The reference SDK's own client (openreward 0.1.167, in its own venv) drives a real server serving our examples.

`tests/fixtures/reference_client_interop.py` runs in the reference venv and prints what the client observed; the
tests below check it. The `reference` server is the control: the same assertions must hold against the
reference's own server, which proves the expectations (and the example environments) are right.
"""
import base64, json, struct, zlib

import pytest

from conftest import EXAMPLES_PY, FIXTURES, SERVE_EXAMPLES, run_reference_script, serve_subprocess

pytestmark = [pytest.mark.interop, pytest.mark.slow]

SERVERS = ["ours", "reference"]

COUNTER_TRAIN = [{"id": "t0", "start": 0, "target": 2}, {"id": "t1", "start": 5, "target": 7},
                 {"id": "t2", "start": 10, "target": 13}]
INCREMENT_SCHEMA = {"description": "Increment parameters.", "properties": {"amount": {
    "default": 1, "description": "How much to add", "title": "Amount", "type": "integer"}},
    "title": "IncParams", "type": "object"}

@pytest.fixture(scope="module", params=SERVERS)
def observed(request, reference_python) -> dict:
    "What the reference client saw, section by section, against the server named by the param."
    import sys
    python = reference_python if request.param == "reference" else sys.executable
    with serve_subprocess(python, SERVE_EXAMPLES, str(EXAMPLES_PY)) as (url, _):
        r = run_reference_script(reference_python, FIXTURES/"reference_client_interop.py", url, timeout=240)
    out = json.loads(r.stdout)
    out["server"] = request.param
    return out

def section(observed: dict, name: str) -> dict:
    res = observed[name]
    assert "error" not in res, f"[{observed['server']}] section {name} raised in the reference client:\n{res['error']}"
    return res

def test_catalogue(observed):
    c = section(observed, "catalogue")
    assert c["splits"] == ["train", "test"]
    assert c["tasks"] == COUNTER_TRAIN and c["task_env_names"] == ["counter"]
    assert (c["num_tasks"], c["num_test"]) == (3, 1)
    assert c["task_0"] == COUNTER_TRAIN[0] and c["task_last"] == COUNTER_TRAIN[-1]  # Python indexing: -1 is last
    assert c["range_neg"] == COUNTER_TRAIN[-2:] and c["range_all"] == COUNTER_TRAIN  # slice semantics, clamped
    assert c["tools"] == [{"name": "increment", "description": "Increment the counter.",
                           "input_schema": INCREMENT_SCHEMA}]
    assert c["bad_split"]["type"] == "SessionResponseError" and "400" in c["bad_split"]["message"]
    assert "Invalid split" in c["bad_split"]["message"]
    assert c["bad_index"]["type"] == "SessionResponseError" and "400" in c["bad_index"]["message"]

def test_catalogue_tool_formats(observed):
    f = section(observed, "catalogue")["formats"]
    params = {"description": "Increment parameters.", "type": "object",
              "properties": {"amount": {"default": 1, "description": "How much to add", "type": "integer"}}}
    assert f["openai"] == [{"type": "function", "name": "increment", "description": "Increment the counter.",
                            "parameters": params}]
    assert f["anthropic"] == [{"type": "custom", "name": "increment", "description": "Increment the counter.",
                               "input_schema": params}]
    assert f["openrouter"] == [{"type": "function", "function": {"name": "increment",
                                "description": "Increment the counter."}, "parameters": params}]
    g = f["google"][0]
    assert g["name"] == "increment" and g["parameters"]["properties"]["amount"]["type"] == "integer"

def test_variants(observed):
    v = section(observed, "variants")
    assert v["basicarithmetic"]["tasks"][0] == {"id": "0", "problem": "What is 7 + 3?", "answer": 10}
    assert len(v["bitwisearithmetic"]["tasks"]) == 3
    for name in ("basicarithmetic", "bitwisearithmetic", "workbench"):
        assert v[name]["splits"] == ["train"] and v[name]["task_env_names"] == [name]
    assert v["basicarithmetic"]["tools"] == v["bitwisearithmetic"]["tools"] == ["answer"]
    assert v["workbench"]["tools"] == ["crash", "draw", "echo", "wait"]  # alphabetical; the terminal tool apart
    assert v["bitwise_prompt"] == [{"text": "What is 5 XOR 3? (bitwise)", "detail": None, "type": "text"}]
    assert v["bitwise_answer"] == {"blocks": [{"text": "Correct!", "detail": None, "type": "text"}],
                                   "metadata": None, "reward": 1.0, "finished": True}
    assert (v["bitwise_wrong"]["reward"], v["bitwise_wrong"]["finished"]) == (0.0, True)

def test_sync_session(observed):
    s = section(observed, "sync_session")
    assert s["sid_is_str"]
    assert s["prompt"] == [{"text": "Count from 0 to 2.", "detail": None, "type": "text"}]
    assert s["messages"] == [{"role": "user", "blocks": s["prompt"]}]
    assert s["messages_openai"] == [{"role": "user", "content": "Count from 0 to 2."}]
    assert s["session_tools"] == ["increment"]
    assert s["step1"] == {"blocks": [{"text": "count=1", "detail": None, "type": "text"}],
                          "metadata": {"count": 1}, "reward": 0.0, "finished": False}
    assert s["step2"] == {"blocks": [{"text": "count=2", "detail": None, "type": "text"}],
                          "metadata": {"count": 2}, "reward": 1.0, "finished": True}
    assert s["by_index_prompt"] == "Count from 5 to 7."
    assert (s["by_index_jump"]["metadata"], s["by_index_jump"]["reward"]) == ({"count": 7}, 1.0)

def test_tool_call_errors(observed):
    s = section(observed, "sync_session")
    assert s["not_found"]["type"] == "ToolCallError" and s["not_found"]["reason"] == "not_found"
    assert "nope" in s["not_found"]["detail"]
    assert s["bad_input"]["type"] == "ToolCallError" and s["bad_input"]["reason"] == "input_validation"
    assert "amount" in s["bad_input"]["detail"]
    assert s["bad_shape"]["reason"] == "bad_input_shape"  # the client refuses before sending anything
    assert s["after_finish"]["type"] == "ToolCallError" and s["after_finish"]["reason"] == "episode_finished"
    assert "increment" in s["after_finish"]["detail"]
    assert s["unknown_after_finish"]["reason"] == "not_found"  # unknown names stay not_found after the latch

def test_workbench_results(observed):
    w = section(observed, "workbench")
    assert w["prompt_types"] == ["text", "image"] and w["prompt_png_sig"] == "89504e470d0a1a0a"
    assert w["echo_len"] == 10_000 and w["echo_ok"]  # > 4096 characters: several SSE chunks, rejoined
    assert w["echo_unicode_ok"]                       # multi-line, CRLF and astral characters survive the framing
    img = w["image"]
    assert (img["type"], img["mimeType"], img["detail"]) == ("image", "image/png", {"width": 4, "height": 3})
    png = bytes.fromhex(img["png"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24]) == (4, 3)
    idat_len = struct.unpack(">I", png[33:37])[0]
    assert zlib.decompress(png[41:41+idat_len]) == (b"\x00" + bytes([1, 2, 3]) * 4) * 3
    assert w["wait"]["metadata"] == {"seconds": 0.5} and 0.45 < w["wait_elapsed"] < 5
    assert w["submit"] == {"blocks": [{"text": "Correct!", "detail": None, "type": "text"}], "metadata": None,
                           "reward": 1.0, "finished": True}

def test_terminal_tool(observed):
    w = section(observed, "workbench")
    spec = {"name": "submit", "arg": "answer", "description": "Submit the pixel count; ends the episode."}
    assert w["terminal"] == w["session_terminal"] == spec
    assert w["final_message_ends"] is True
    assert "submit" not in w["session_tools"]
    assert (w["terminal_call"]["reward"], w["terminal_call"]["finished"]) == (1.0, True)  # task w1 is 4x4
    assert w["after_terminal"]["reason"] == "episode_finished"

def test_raising_tool(observed):
    w = section(observed, "workbench")
    assert w["crash"]["type"] == "ToolFailed" and "kaboom: the crash tool always fails" in w["crash"]["message"]
    assert w["after_crash"]["type"] == "SessionTerminatedError"  # the client treats ToolFailed as end of rollout

def test_fifty_parallel_async_sessions(observed):
    a = section(observed, "async_sessions")
    res = a["results"]
    assert len(res) == 50 and len({r["sid"] for r in res}) == 50
    for i, r in enumerate(res):
        t = COUNTER_TRAIN[i % 3]
        assert r["prompt"] == f"Count from {t['start']} to {t['target']}."
        assert (r["steps"], r["reward"], r["late"]) == (t["target"] - t["start"], 1.0, "episode_finished")
    assert a["elapsed"] < 60

def test_slow_async_tools_overlap(observed):
    a = section(observed, "async_sessions")
    # ten 1 s waits in ten sessions run concurrently: far less than the 10 s they would take in sequence
    assert all(0.95 < t < 5 for t in a["slow_each"]) and a["slow_total"] < 5

ENVS = ["counter", "basicarithmetic", "bitwisearithmetic", "workbench"]

def exchange(url: str, method: str, path: str, **kw) -> tuple[int, object]:
    import httpx
    r = httpx.request(method, url + path, timeout=30, follow_redirects=True, **kw)
    return r.status_code, (r.json() if r.headers.get("content-type", "").startswith("application/json") else r.text)

def test_same_answers_as_the_reference_server(reference_server, ours_server):
    "The same examples served by both servers: every catalogue answer and every prompt is identical on the wire."
    requests = [("GET", "/list_environments", {})]
    for env in ENVS + ["Counter"]:   # env segments are case-insensitive and echoed as sent
        requests += [("GET", f"/{env}/tools", {}), ("GET", f"/{env}/splits", {}),
                     ("POST", f"/{env}/tasks", {"json": {"split": "train"}}),
                     ("POST", f"/{env}/num_tasks", {"json": {"split": "train"}}),
                     ("POST", f"/{env}/task", {"json": {"split": "train", "index": -1}}),
                     ("POST", f"/{env}/task_range", {"json": {"split": "train", "start": -2, "stop": 99}}),
                     ("POST", f"/{env}/tasks", {"json": {"split": "nope"}}),
                     ("POST", f"/{env}/task", {"json": {"split": "train", "index": 99}})]
    requests += [("GET", "/tools", {}), ("POST", "/tasks", {"json": {"split": "test"}})]   # default env by redirect
    for method, path, kw in requests:
        assert exchange(ours_server, method, path, **kw) == exchange(reference_server, method, path, **kw), path
    for env in ENVS:
        sid = {"X-Session-ID": f"parity-{env}"}
        answers = []
        for url in (ours_server, reference_server):
            assert exchange(url, "POST", "/create", headers=sid, json={"env_name": env, "split": "train", "index": 0}) \
                == (200, {"sid": sid["X-Session-ID"]})
            answers.append([exchange(url, "GET", f"/{env}/{p}", headers=sid) for p in ("prompt", "messages", "task_tools")])
            assert exchange(url, "POST", "/delete", headers=sid) == (200, {"sid": sid["X-Session-ID"]})
        assert answers[0] == answers[1], env
