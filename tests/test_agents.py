"""Agents and eval runs (#12) against a stub model server on 127.0.0.1 and the example environments on real uvicorn.

The stub speaks the OpenAI chat-completions and the Anthropic messages APIs. It plays the example environments by script
(arithmetic via `answer`, the counter via two parallel `increment` calls); the model name picks a behaviour:
`solver`, `malformed` (bad JSON and an unknown tool first, then the right call), `flaky` (429 with Retry-After first),
`slow` (answers after a delay), `held` (answers the first `held_free` requests, then holds each until the test sets
`release`), `down` (always 503).
"""
import asyncio, base64, json, re, struct, threading, time
from collections import Counter as Tally

import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from openreward.agents import (AnthropicMessages, Episode, OpenAIChat, ToolAgent, arun_eval, run_eval,
                               stored_episodes)
from openreward.demo import serve_in_thread, solve_arithmetic
from openreward.errors import ModelError
from openreward.examples import ENVIRONMENTS
from openreward.rollouts import RolloutAPI, list_rollouts
from openreward.server import Server

# -- the stub model ------------------------------------------------------------------------------------------------
def plan(prompt: str, tools: set[str], mode: str, first: bool) -> list[tuple[str, object]]:
    "The (tool name, arguments) the stub calls; arguments are a dict, or a raw string for malformed calls."
    if mode == "malformed" and first: return [("answer" if "answer" in tools else "increment", '{"answer": '), ("teleport", {})]
    if "answer" in tools: return [("answer", {"answer": solve_arithmetic(prompt)})]
    start, target = map(int, re.findall(r"-?\d+", prompt)[:2])
    return [("increment", {"amount": target - start - 1}), ("increment", {"amount": 1})]

class StubModel:
    "Both APIs over one Starlette app; `requests` tallies what each model name was sent."
    def __init__(self):
        self.requests, self.seen_429 = Tally(), set()
        self.bodies: list[dict] = []
        self.keep_bodies = True
        self.held_free, self.release = 0, threading.Event()  # `held`: answered at once, then held until released
        self.app = Starlette(routes=[Route("/health", lambda request: JSONResponse({"ok": True})),
                                     Route("/v1/chat/completions", self.openai, methods=["POST"]),
                                     Route("/v1/messages", self.anthropic, methods=["POST"])])

    async def gate(self, body: dict, key: str):
        mode = body["model"]
        self.requests[mode] += 1
        if self.keep_bodies: self.bodies.append(body)
        if mode == "down": return JSONResponse({"error": "down"}, status_code=503)
        if mode == "flaky" and key not in self.seen_429:
            self.seen_429.add(key)
            return JSONResponse({"error": "rate limited"}, status_code=429, headers={"retry-after": "0.05"})
        if mode == "slow": await asyncio.sleep(3)
        if mode == "held" and self.requests["held"] > self.held_free:
            deadline = time.monotonic() + 120  # bounded: a test that forgets to release cannot hold the server for good
            while not self.release.is_set() and time.monotonic() < deadline: await asyncio.sleep(0.02)
        return None

    async def openai(self, request):
        body = await request.json()
        msgs = body["messages"]
        if (r := await self.gate(body, msgs[0]["content"])) is not None: return r
        if msgs[-1]["role"] == "tool" and not any(m["content"].startswith("Error") for m in msgs if m["role"] == "tool"):
            return JSONResponse({"choices": [{"message": {"role": "assistant", "content": "Done."}, "finish_reason": "stop"}]})
        if body["model"] == "terminal":  # answer in plain text: the agent submits it through the terminal tool
            png = base64.b64decode(next(p for p in msgs[0]["content"] if p["type"] == "image_url")["image_url"]["url"].split(",")[1])
            width, height = struct.unpack(">II", png[16:24])
            return JSONResponse({"choices": [{"message": {"role": "assistant", "content": str(width * height)}, "finish_reason": "stop"}]})
        first = not any(m["role"] == "tool" for m in msgs)
        calls = [{"id": f"c{len(msgs)}_{i}", "type": "function",
                  "function": {"name": n, "arguments": a if isinstance(a, str) else json.dumps(a)}}
                 for i, (n, a) in enumerate(plan(msgs[0]["content"], {t["function"]["name"] for t in body.get("tools", [])}, body["model"], first))]
        return JSONResponse({"choices": [{"message": {"role": "assistant", "content": None, "tool_calls": calls}, "finish_reason": "tool_calls"}],
                             "usage": {"prompt_tokens": 7, "completion_tokens": 3}})

    async def anthropic(self, request):
        assert request.headers.get("anthropic-version") and request.headers.get("x-api-key") == "test-key"
        body = await request.json()
        msgs = body["messages"]
        prompt = msgs[0]["content"][0]["text"]
        if (r := await self.gate(body, prompt)) is not None: return r
        first = len(msgs) == 1
        tools = {t["name"] for t in body.get("tools", [])}
        content = [{"type": "tool_use", "id": f"t{len(msgs)}_{i}", "name": n, "input": a if isinstance(a, dict) else "not an object"}
                   for i, (n, a) in enumerate(plan(prompt, tools, body["model"], first))]
        return JSONResponse({"content": [{"type": "text", "text": "Let me work."}] + content, "stop_reason": "tool_use",
                             "usage": {"input_tokens": 11, "output_tokens": 5}})

@pytest.fixture(scope="module")
def stub():
    s = StubModel()
    with serve_in_thread(s.app) as url:
        s.url = url
        yield s

@pytest.fixture(scope="module")
def env_server():
    server = Server(ENVIRONMENTS)
    with serve_in_thread(server.app) as url:
        server.url = url
        yield server

VARIANTS = ["counter", "basicarithmetic", "bitwisearithmetic"]
EPISODES = {"counter": 4, "basicarithmetic": 2, "bitwisearithmetic": 3}  # tasks per variant over all splits

def openai(stub, model="solver", **kw): return OpenAIChat(model, base_url=stub.url + "/v1", api_key="test-key", max_retry_wait=0.2, **kw)
def anthropic(stub, model="solver", **kw): return AnthropicMessages(model, base_url=stub.url, api_key="test-key", max_retry_wait=0.2, **kw)

# -- tests ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [openai, anthropic])
def test_full_eval_solves_what_the_script_solves(stub, env_server, tmp_path, make):
    res = run_eval(env_server.url, ToolAgent(make(stub, temperature=0.0)), variants=VARIANTS, repeats=2, concurrency=5,
                   store=tmp_path/"r.db", run_name="full", progress=False)
    rows = {(r["variant"], r["split"]): r for r in res.to_json()}
    test_keys = {("counter", "train"), ("counter", "test"), ("basicarithmetic", "train"), ("bitwisearithmetic", "train")}
    assert set(rows) == test_keys
    assert sum(r["episodes"] for r in rows.values()) == 2 * sum(EPISODES.values()) == len(res.episodes)
    for r in rows.values():
        assert (r["mean_reward"], r["pass_at_1"], r["pass_at_k"], r["k"], r["errors"]) == (1.0, 1.0, 1.0, 2, 0)
        assert r["mean_turns"] == 1.0 and r["tokens"] > 0
    assert all(e.stop == "finished" and e.finished for e in res.episodes)
    counter = next(e for e in res.episodes if e.variant == "counter")
    assert counter.tool_calls == 2 and len([b for b in counter.trajectory[1].blocks if b.type == "tool_call"]) == 2  # parallel
    stored = list_rollouts("full", store=str(tmp_path/"r.db"))
    assert len(stored) == len(res.episodes) and all(s.finished and s.total_reward == 1.0 for s in stored)
    lr = RolloutAPI(store=tmp_path/"r.db", upload=False).get_rollout(counter.rollout_id)
    assert lr.run_info["model_name"] == "solver" and lr.run_info["run_type"] == "eval"
    assert lr.rollout_info["harness"] == "openreward.agents" and lr.metadata["repeat"] in (0, 1)

def test_sampling_settings_and_tools_reach_the_model(stub, env_server, tmp_path):
    stub.bodies.clear()
    run_eval(env_server.url, ToolAgent(openai(stub, temperature=0.3, top_p=0.9)), variants=["basicarithmetic"], tasks=[0],
             store=tmp_path/"r.db", progress=False)
    body = stub.bodies[0]
    assert (body["temperature"], body["top_p"]) == (0.3, 0.9)
    assert body["tools"][0]["function"]["name"] == "answer" and body["tools"][0]["type"] == "function"

@pytest.mark.parametrize("make", [openai, anthropic])
def test_malformed_calls_become_error_results_not_crashes(stub, env_server, tmp_path, make):
    res = run_eval(env_server.url, ToolAgent(make(stub, "malformed")), variants=["basicarithmetic"], tasks=[0],
                   store=tmp_path/"r.db", progress=False)
    ep, = res.episodes
    assert (ep.error, ep.reward, ep.turns, ep.stop) == (None, 1.0, 2, "finished")
    errors = [b for m in ep.trajectory for b in m.blocks if b.type == "tool_result" and b.is_error]
    assert len(errors) == 2 and "unknown tool 'teleport'" in errors[1].blocks[0].text
    assert ("not valid JSON" in errors[0].blocks[0].text) or ("JSON object" in errors[0].blocks[0].text)

def test_429_is_retried_after_retry_after(stub, env_server, tmp_path):
    before = stub.requests["flaky"]
    res = run_eval(env_server.url, ToolAgent(openai(stub, "flaky")), variants=["counter"], split="test", store=tmp_path/"r.db", progress=False)
    assert res.episodes[0].reward == 1.0 and res.episodes[0].error is None
    assert stub.requests["flaky"] - before == 2  # one 429, one answer

def test_failures_are_counted_per_cause_and_scored_zero(stub, env_server, tmp_path):
    down = run_eval(env_server.url, ToolAgent(openai(stub, "down", max_retries=2)), variants=["counter"], split="train",
                    store=tmp_path/"r.db", progress=False)
    r, = down.to_json()
    assert (r["episodes"], r["mean_reward"], r["errors"], r["errors_by_cause"]) == (3, 0.0, 3, {"model": 3})
    assert all("503" in e.error for e in down.episodes)
    slow = run_eval(env_server.url, ToolAgent(openai(stub, "slow")), variants=["counter"], split="test", episode_timeout=0.5,
                    store=tmp_path/"r.db", progress=False)
    assert slow.to_json()[0]["errors_by_cause"] == {"timeout": 1}
    async def clumsy(session):
        await session.call_tool("no_such_tool", {})
    env = run_eval(env_server.url, clumsy, variants=["counter"], split="test", store=tmp_path/"r.db", progress=False)
    assert env.to_json()[0]["errors_by_cause"] == {"environment": 1}, env.episodes[0].error

def test_a_plain_user_agent_plugs_in_and_is_scored(env_server, tmp_path):
    async def agent(session):  # the seed's interface: no return value needed
        prompt = (await session.get_prompt())[0].text
        await session.call_tool("answer", {"answer": solve_arithmetic(prompt)})
    res = run_eval(env_server.url, agent, variants=["basicarithmetic"], store=tmp_path/"r.db", progress=False)
    assert [(e.reward, e.tool_calls, e.finished, e.stop) for e in res.episodes] == [(1.0, 1, True, "finished")] * 2

def test_resume_skips_exactly_the_stored_episodes(stub, env_server, tmp_path):
    store = tmp_path/"r.db"
    first = run_eval(env_server.url, ToolAgent(openai(stub)), variants=["counter"], tasks=[0, 1], split="train", repeats=2,
                     store=store, run_name="res", progress=False)
    assert len(first.episodes) == 4
    played = []
    async def agent(session):
        played.append(1)
        prompt = (await session.get_prompt())[0].text
        start, target = map(int, re.findall(r"-?\d+", prompt)[:2])
        await session.call_tool("increment", {"amount": target - start})
    again = run_eval(env_server.url, agent, variants=["counter"], split="train", repeats=2, store=store, resume="res", progress=False)
    assert (again.resumed, len(played), len(again.episodes), again.run_name) == (4, 2, 6, "res")  # task 2's two repeats only
    assert again.to_json()[0]["mean_reward"] == 1.0
    assert len(stored_episodes(RolloutAPI(store=store, upload=False), "res")) == 6

def test_cancelling_a_run_leaves_no_session_open(stub, env_server, tmp_path):
    async def main():
        task = asyncio.ensure_future(arun_eval(env_server.url, ToolAgent(openai(stub, "slow")), variants=VARIANTS, concurrency=4,
                                               store=tmp_path/"r.db", progress=False))
        before, deadline = stub.requests["slow"], time.monotonic() + 60
        while stub.requests["slow"] - before < 4 and time.monotonic() < deadline: await asyncio.sleep(0.02)
        assert len(env_server.sessions) == 4, "four episodes should be waiting on the model"
        task.cancel()
        with pytest.raises(asyncio.CancelledError): await task
    asyncio.run(main())
    deadline = time.monotonic() + 60
    while env_server.sessions and time.monotonic() < deadline: time.sleep(0.05)
    assert not env_server.sessions

def test_async_form_and_sync_form_inside_a_running_loop(stub, env_server, tmp_path):
    async def main():
        res = await arun_eval(env_server.url, ToolAgent(anthropic(stub)), variants=["counter"], split="test", store=tmp_path/"r.db", progress=False)
        nested = run_eval(env_server.url, ToolAgent(openai(stub)), variants=["counter"], split="test", store=tmp_path/"r.db", progress=False)
        return res, nested
    res, nested = asyncio.run(main())
    assert res.episodes[0].reward == nested.episodes[0].reward == 1.0

def test_bad_env_argument_is_a_clear_error(tmp_path):
    with pytest.raises(TypeError, match="env must be"): run_eval(42, ToolAgent(OpenAIChat("m", base_url="http://127.0.0.1:9")), store=tmp_path/"r.db")

def test_unreachable_model_is_a_model_error():
    p = OpenAIChat("m", base_url="http://127.0.0.1:9/v1", api_key="k", max_retries=1, max_retry_wait=0.01)
    with pytest.raises(ModelError, match="unreachable after 2 attempts"): asyncio.run(p.complete([], []))

# -- orwd eval ------------------------------------------------------------------------------------------------------
def _orwd(*args, **env):
    import os, subprocess, sys
    from pathlib import Path
    exe = str(Path(sys.executable).with_name("orwd"))
    e = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_"))} | env
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=120, env=e)

def test_orwd_eval_json_and_resume(stub, env_server, tmp_path):
    store = str(tmp_path/"r.db")
    common = [env_server.url, "--model", "solver", "--base-url", stub.url + "/v1", "--variant", "counter", "--store", store]
    p = _orwd("eval", *common, "--split", "train", "--repeats", "2", "--run-name", "cli", "-o", "json", OPENAI_API_KEY="test-key")
    assert p.returncode == 0, p.stderr
    row, = json.loads(p.stdout)
    assert {k: row[k] for k in ("variant", "split", "episodes", "mean_reward", "errors", "pass_at_k")} == {
        "variant": "counter", "split": "train", "episodes": 6, "mean_reward": 1.0, "errors": 0, "pass_at_k": 1.0}
    before = stub.requests["solver"]
    p = _orwd("eval", *common, "--split", "train", "--repeats", "2", "--resume", "cli", OPENAI_API_KEY="test-key")
    assert p.returncode == 0, p.stderr
    assert "mean reward" in p.stdout and "run cli: 6 episodes (6 resumed)" in p.stdout
    assert stub.requests["solver"] == before  # nothing ran again
    p = _orwd("eval", *common, "--provider", "anthropic", "--base-url", stub.url, "--split", "test", "-o", "json", ANTHROPIC_API_KEY="test-key")
    assert p.returncode == 0 and json.loads(p.stdout)[0]["mean_reward"] == 1.0, p.stderr
    p = _orwd("eval", *common, "--tasks", "x")
    assert p.returncode == 1 and "--tasks must be" in p.stderr

# -- the reference server -------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_the_same_eval_runs_against_the_reference_server(stub, reference_server, tmp_path):
    res = run_eval(reference_server, ToolAgent(openai(stub)), variants=VARIANTS, concurrency=4, store=tmp_path/"r.db", progress=False)
    rows = res.to_json()
    assert sum(r["episodes"] for r in rows) == sum(EPISODES.values())
    assert all((r["mean_reward"], r["errors"]) == (1.0, 0) for r in rows), rows

def test_ctrl_c_on_orwd_eval_stops_cleanly_with_no_session_left(stub, env_server, tmp_path):
    # The model answers one request, then holds every other until released: one episode is finished and stored, three
    # are open mid-call when SIGINT lands, however fast or slow the machine is.
    import os, signal, subprocess, sys
    from pathlib import Path
    exe = str(Path(sys.executable).with_name("orwd"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_"))} | {"OPENAI_API_KEY": "test-key"}
    stub.requests["held"], stub.held_free = 0, 1
    stub.release.clear()
    p = subprocess.Popen([exe, "eval", env_server.url, "--model", "held", "--base-url", stub.url + "/v1", "--variant", "counter",
                          "--concurrency", "3", "--run-name", "interrupted", "--store", str(tmp_path/"r.db")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while (stub.requests["held"] < 4 or len(env_server.sessions) < 3) and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert p.poll() is None, "the eval ended before the interrupt: the model holds its answers, so it cannot have"
        assert stub.requests["held"] == 4 and len(env_server.sessions) == 3, (stub.requests["held"], len(env_server.sessions))
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        stub.release.set()
        if p.poll() is None: p.kill(); p.wait(10)
    assert p.returncode == 130 and "Interrupted" in err and "Traceback" not in err, err
    deadline = time.monotonic() + 60
    while env_server.sessions and time.monotonic() < deadline: time.sleep(0.05)
    assert not env_server.sessions, "every session was deleted"
    stored = list_rollouts("interrupted", store=str(tmp_path/"r.db"))
    assert len(stored) == 1 and stored[0].finished and stored[0].total_reward == 1.0, stored  # the finished episode was kept

def test_orwd_eval_timeout_bounds_each_model_request(stub, env_server, tmp_path):
    import os, subprocess, sys
    from pathlib import Path
    exe = str(Path(sys.executable).with_name("orwd"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_"))} | {"OPENAI_API_KEY": "test-key"}
    def orwd_eval(*extra):
        r = subprocess.run([exe, "eval", env_server.url, "--model", "slow", "--base-url", stub.url + "/v1", "--variant", "basicarithmetic",
                            "--tasks", "0", "--split", "train", "--store", str(tmp_path/"r.db"), "-o", "json", *extra],
                           capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)[0]
    before = stub.requests["slow"]
    bounded = orwd_eval("--timeout", "0.5")  # the stub answers after 3 s: every attempt times out
    assert (bounded["episodes"], bounded["errors"], bounded["mean_reward"]) == (1, 1, 0.0), bounded
    assert bounded["errors_by_cause"] == {"model": 1}, bounded
    assert stub.requests["slow"] - before == 5  # the first attempt and 4 retries, each cut at 0.5 s
    assert orwd_eval("--timeout", "10")["mean_reward"] == 1.0  # a bound above the stub's 3 s lets the answer through
    r = subprocess.run([exe, "eval", env_server.url, "--model", "slow", "--timeout", "0"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode != 0 and "--timeout must be a positive number" in r.stderr, r.stderr

def test_a_text_answer_goes_through_the_terminal_tool(stub, env_server, tmp_path):
    res = run_eval(env_server.url, ToolAgent(openai(stub, "terminal")), variants=["workbench"], store=tmp_path/"r.db", progress=False)
    assert res.episodes and all((e.reward, e.finished, e.stop, e.turns) == (1.0, True, "finished", 1) for e in res.episodes), res.episodes
