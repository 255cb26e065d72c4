"""Our client drives the REFERENCE server (openreward 0.1.167 in its own venv, real uvicorn) serving our examples,
and our own server the same way (`server` is parametrised over both; the same expectations hold for each).

Catalogue, sessions, tools, variants and errors, with the sync and the async client. Expected values are what the
reference's own client observes against the same server (see tests/test_interop_reference_client.py).
"""
import asyncio, base64

import pytest

from openreward import AsyncOpenReward, OpenReward
from openreward.api.environments.types import Task
from openreward.errors import SessionResponseError, SessionTerminatedError, ToolCallError, ToolFailed
from openreward.types import ImageBlock, TextBlock, ToolOutput

pytestmark = [pytest.mark.interop]

COUNTER_TRAIN = [{"id": "t0", "start": 0, "target": 2}, {"id": "t1", "start": 5, "target": 7},
                 {"id": "t2", "start": 10, "target": 13}]

@pytest.fixture(scope="module", params=["reference_server", "ours_server"])
def server(request):
    return request.getfixturevalue(request.param)

@pytest.fixture(scope="module")
def client():
    with OpenReward(api_key="") as c: yield c

def test_catalogue(server, client):
    env = client.environments.get("counter", base_url=server)
    assert env.list_splits() == ["train", "test"]
    tasks = env.list_tasks("train")
    assert [t.task_spec for t in tasks] == COUNTER_TRAIN
    assert tasks[0] == Task(server_name="counter", environment_name="counter", task_spec=COUNTER_TRAIN[0], namespace=None)
    assert (env.num_tasks("train"), env.num_tasks("test")) == (3, 1)
    assert env.get_task("train", -1).task_spec == COUNTER_TRAIN[-1]
    assert [t.task_spec for t in env.get_task_range("train", -2, 99)] == COUNTER_TRAIN[-2:]
    assert [t.task_spec for t in env.get_task_range("train")] == COUNTER_TRAIN
    [spec] = env.list_tools()
    assert (spec.name, spec.description, spec.input_schema["properties"]["amount"]["default"]) == ("increment", "Increment the counter.", 1)
    assert env.list_tools(format="openai") == [{"type": "function", "name": "increment", "description": "Increment the counter.",
        "parameters": {"description": "Increment parameters.", "type": "object",
                       "properties": {"amount": {"default": 1, "description": "How much to add", "type": "integer"}}}}]
    assert env.list_tools(format="anthropic")[0]["type"] == "custom"
    assert env.terminal_tool() is None and env.supports_score_group() is False

def test_catalogue_errors(server, client):
    env = client.environments.get("counter", base_url=server)
    with pytest.raises(SessionResponseError, match="Invalid split") as e: env.list_tasks("nope")
    assert e.value.status == 400 and e.value.message == "Invalid split"
    with pytest.raises(SessionResponseError, match="Invalid index"): env.get_task("train", 99)

def test_counter_session(server, client):
    env = client.environments.get("counter", base_url=server)
    task = env.list_tasks("train")[0]
    with env.session(task) as s:
        assert s.task == task and s.sid
        assert s.get_prompt() == [TextBlock(text="Count from 0 to 2.")]
        assert s.get_messages(format="openai") == [{"role": "user", "content": "Count from 0 to 2."}]
        assert [t.name for t in s.list_tools()] == ["increment"]
        out = s.call_tool("increment", {"amount": 1})
        assert out == ToolOutput(blocks=[TextBlock(text="count=1")], metadata={"count": 1}, reward=0.0, finished=False)
        with pytest.raises(ToolCallError) as e: s.call_tool("nope")
        assert e.value.reason == "not_found" and "'nope' is not a valid tool" in e.value.detail
        with pytest.raises(ToolCallError) as e: s.call_tool("increment", {"amount": "many"})
        assert e.value.reason == "input_validation"
        with pytest.raises(ToolCallError) as e: s.call_tool("increment", ["not", "a", "dict"])
        assert e.value.reason == "bad_input_shape"
        last = s.call_tool("increment")
        assert (last.reward, last.finished) == (1.0, True)
        with pytest.raises(ToolCallError) as e: s.call_tool("increment")
        assert e.value.reason == "episode_finished"

def test_env_get_prompt_and_split_index(server, client):
    "Environment.get_prompt(task) works (broken in the reference client); sessions open by split and index."
    env = client.environments.get("counter", base_url=server)
    assert env.get_prompt(env.get_task("train", 1)) == [TextBlock(text="Count from 5 to 7.")]
    with env.session(split="test", index=0) as s:
        assert s.task is None and s.get_prompt()[0].text == "Count from 0 to 5."

def test_variants(server, client):
    rewards = {}
    for variant, answers in [("basicarithmetic", ["10", "7"]), ("bitwisearithmetic", ["1", "7", "6"])]:
        env = client.environments.get("ArithmeticEnv", variant=variant, base_url=server)
        tasks = env.list_tasks("train")
        assert {t.environment_name for t in tasks} == {variant}
        for task, answer in zip(tasks, answers):
            with env.session(task) as s:
                rewards.setdefault(variant, []).append(s.call_tool("answer", {"answer": answer}).reward)
    assert rewards == {"basicarithmetic": [1.0, 1.0], "bitwisearithmetic": [1.0, 1.0, 1.0]}
    # the default environment (no variant) is the first one served: counter
    assert client.environments.get("anything", base_url=server).list_tasks("test")[0].environment_name == "counter"

def test_workbench_images_big_results_and_failures(server, client):
    env = client.environments.get("workbench", variant="workbench", base_url=server)
    with env.session(split="train", index=1) as s:
        text, image = s.get_prompt()
        assert isinstance(image, ImageBlock) and base64.b64decode(image.data)[:4] == b"\x89PNG"
        # 25 000 characters, many 4096-character chunks, leading spaces at chunk boundaries kept
        big = s.call_tool("echo", {"text": "  ab  ", "repeat": 5000}).blocks[0].text
        assert big == "  ab  " * 5000
        drawn = s.call_tool("draw", {"width": 3, "height": 1}).blocks[0]
        assert isinstance(drawn, ImageBlock) and drawn.detail == {"width": 3, "height": 1}
        with pytest.raises(ToolFailed, match="kaboom: the crash tool always fails") as e: s.call_tool("crash")
        assert any(s.sid in n for n in e.value.__notes__)
        with pytest.raises(SessionTerminatedError): s.call_tool("echo", {"text": "x"})

def test_async_client_parallel(server):
    async def main():
        async with AsyncOpenReward() as client:
            env = client.environments.get("counter", base_url=server)
            tasks = await env.list_tasks("train")
            async def run(task):
                async with env.session(task) as s:
                    total = 0.0
                    for _ in range(10):
                        out = await s.call_tool("increment", {"amount": 1})
                        total += out.reward or 0.0
                        if out.finished: return total
            return await asyncio.gather(*[run(t) for t in tasks])
    assert asyncio.run(main()) == [1.0, 1.0, 1.0]
