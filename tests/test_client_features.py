"""Client features the example environments do not exercise, against our server in-process (httpx.ASGITransport,
the client's `transport=` seam): group scoring, terminal tools, conversations with rich blocks, secrets reaching the
environment, provider formats of a session's tools, and a second `asyncio.run` with one client."""
import asyncio

import httpx
import pytest
from pydantic import BaseModel

from openreward import AsyncOpenReward, GroupCandidate, Message
from openreward.api.environments.types import Task
from openreward.environments import Environment, Server, Split, TextBlock, ToolOutput, terminal, tool
from openreward.errors import ScoreGroupFailed, ScoreGroupUnsupported, ToolCallError
from openreward.types import ReasoningBlock, ToolCallBlock, ToolResultBlock

class Say(BaseModel):
    answer: str

class Judge(Environment):
    "Scores groups of answers by length; a terminal tool grades the final message."
    def __init__(self, task_spec: dict = {}, secrets: dict[str, str] = {}):
        super().__init__(task_spec)
        self.secrets = dict(secrets)
    @classmethod
    def list_splits(cls): return [Split(name="train", type="train")]
    @classmethod
    def list_tasks(cls, split): return [{"id": "j0", "target": "42"}]
    def get_messages(self):
        return [Message(role="system", blocks=[TextBlock(text="Be brief.")]),
                Message(role="user", blocks=[TextBlock(text="What is six times seven?")]),
                Message(role="assistant", blocks=[ReasoningBlock(text="Use the tool."), ToolCallBlock(id="c1", name="mul", input={"a": 6, "b": 7})]),
                Message(role="user", blocks=[ToolResultBlock(tool_call_id="c1", blocks=[TextBlock(text="42")])])]
    @tool
    def secret_names(self) -> ToolOutput:
        "Which secrets arrived."
        return ToolOutput(blocks=[TextBlock(text=",".join(sorted(self.secrets)))], metadata={"openai": self.secrets.get("OPENAI_API_KEY")})
    @terminal
    @tool
    def final(self, params: Say) -> ToolOutput:
        "Grade the final answer."
        return ToolOutput(blocks=[TextBlock(text="graded")], reward=float(params.answer.strip() == self.task_spec["target"]), finished=True)
    async def score_group(self, candidates):
        if len(candidates) == 3: raise RuntimeError("three is a crowd")
        return [float(len(c.messages[-1].blocks[0].text)) for c in candidates]

class Plain(Environment):
    @classmethod
    def list_splits(cls): return ["train"]
    @classmethod
    def list_tasks(cls, split): return [{"id": "p0"}]
    def get_prompt(self): return [TextBlock(text="plain")]
    @tool
    def noop(self) -> ToolOutput:
        "Nothing."
        return ToolOutput(blocks=[])

@pytest.fixture
def client():
    return AsyncOpenReward(transport=httpx.ASGITransport(app=Server([Judge, Plain]).app), ping_interval=3600)

def env(client, variant="judge"):
    return client.environments.get("acme/judge", variant=variant, base_url="http://ors.test")

def run(coro): return asyncio.run(coro)

def test_score_group(client):
    async def main():
        e = env(client)
        assert await e.supports_score_group() is True
        async with e.session(split="train", index=0) as s:
            assert await s.supports_score_group() is True
            a = [Message(role="assistant", blocks=[TextBlock(text="42")])]
            b = [Message(role="assistant", blocks=[TextBlock(text="forty-two")])]
            scores = await s.score_group([a, GroupCandidate(messages=b, metadata={"rollout": 7})])
            with pytest.raises(ScoreGroupFailed, match="three is a crowd"): await s.score_group([a, a, b])
            assert (await s.call_tool("secret_names")).blocks  # the session is still alive after a failed scoring
        async with env(client, "plain").session(split="train", index=0) as s:
            assert await s.supports_score_group() is False
            with pytest.raises(ScoreGroupUnsupported): await s.score_group([a])
        return scores
    scores = run(main())
    assert [(x.reward, x.metadata) for x in scores] == [(2.0, None), (9.0, None)]

def test_terminal_tool_and_messages(client):
    async def main():
        e = env(client)
        term = await e.terminal_tool()
        assert (term.name, term.arg) == ("final", "answer") and await e.is_assistant_message_final()
        assert [t.name for t in await e.list_tools()] == ["secret_names"]  # the terminal tool is not listed
        async with e.session(split="train", index=0) as s:
            msgs = await s.get_messages()
            openai = await s.get_messages(format="openai")
            anthropic = await s.get_messages(format="anthropic")
            prompt = await s.get_prompt()  # flattened by the server from the messages
            out = await s.call_terminal_tool(" 42 ")
        async with env(client, "plain").session(split="train", index=0) as s:
            with pytest.raises(ToolCallError, match="has no @terminal tool"): await s.call_terminal_tool("x")
            plain_msgs = await s.get_messages(format="openai")
        return msgs, openai, anthropic, prompt, out, plain_msgs
    msgs, openai, anthropic, prompt, out, plain_msgs = run(main())
    assert [m.role for m in msgs] == ["system", "user", "assistant", "user"] and isinstance(msgs[2].blocks[1], ToolCallBlock)
    assert openai[2]["tool_calls"][0]["function"] == {"name": "mul", "arguments": '{"a": 6, "b": 7}'}
    assert openai[3] == {"role": "tool", "tool_call_id": "c1", "content": "42"}
    assert anthropic["system"] == "Be brief." and anthropic["messages"][1]["content"][0]["type"] == "thinking"
    assert prompt[0].text == "[system]"
    assert (out.reward, out.finished) == (1.0, True)
    assert plain_msgs == [{"role": "user", "content": "plain"}]

def test_secrets_reach_the_environment(client):
    async def main():
        async with env(client).session(split="train", index=0, secrets={"OPENAI_API_KEY": "sk-o", "DB": ("pw", ["db.test"])}) as s:
            return await s.call_tool("secret_names")
    out = run(main())
    assert out.blocks[0].text == "DB,OPENAI_API_KEY,OPENREWARD_API_KEY,api_key" and out.metadata == {"openai": "sk-o"}
    with pytest.raises(ValueError, match="not a well-known provider key"):
        env(client).session(split="train", index=0, secrets={"DB": "pw"})
    with pytest.raises(ValueError, match="Unknown toolset"):
        env(client).session(split="train", index=0, toolset="vim")

def test_one_client_two_event_loops(client):
    "The reference's aiohttp sessions are bound to the first loop; ours re-opens its pools on a new one."
    async def once():
        async with env(client).session(split="train", index=0) as s:
            return (await s.call_tool("secret_names")).blocks[0].text
    assert run(once()) == run(once())
