"""The widgets in plain Python (no kernel): built against our server on 127.0.0.1, driven the way a person drives them
(set form values, click), asserted on their traits and rendered HTML. Sync handles outside an event loop run their
calls right there; async handles run under `asyncio.run`, their calls as tasks. Every test checks that the server
ends with no session the widgets opened.
"""
from __future__ import annotations

import asyncio, contextlib

import pytest

from openreward import AsyncOpenReward, OpenReward
from openreward.client import RetryPolicy
from openreward.demo import serve_in_thread
from openreward.environments import Environment, Split, TextBlock, ToolOutput, tool
from openreward.examples import ENVIRONMENTS
from openreward.server import Server
from openreward.widgets import SessionStepper, TaskBrowser, ToolOutputView, browse, play

FAST = RetryPolicy(attempts=1, call_retries=0, create_retries=0)


class Big(Environment):
    "100,000 tasks in one split."
    @classmethod
    def list_splits(cls): return [Split(name="train", type="train")]
    @classmethod
    def list_tasks(cls, split): return [{"id": i, "word": f"w{i}"} for i in range(100_000)]
    def get_prompt(self): return [TextBlock(text=f"task {self.task_spec['id']}")]
    @tool
    def solve(self) -> ToolOutput:
        "Solve it."
        return ToolOutput(blocks=[TextBlock(text="ok")], reward=1.0, finished=True)


@pytest.fixture(scope="module")
def served():
    server = Server([*ENVIRONMENTS, Big])
    with serve_in_thread(server.app) as url:
        yield server, url


@pytest.fixture
def server(served):
    srv, _ = served
    yield srv
    assert not srv.sessions, f"sessions left open: {list(srv.sessions)}"


@pytest.fixture
def url(served): return served[1]


@pytest.fixture
def client():
    with OpenReward(retry=FAST) as c: yield c


def env(client, url, variant): return client.environments.get("examples", variant=variant, base_url=url)


def card_text(card) -> str: return "".join(getattr(c, "value", "") for c in card.children) if hasattr(card, "children") else card.value


# ---- sync client, no event loop: every call happens before the click returns ---------------------------------------

def test_counter_played_to_the_end(server, client, url):
    counter = env(client, url, "counter")
    s = play(counter.get_task("train", 1), counter)            # start 5, target 7
    assert (s.state, s.tool.options, s.form.value) == ("open", ("increment",), {"amount": 1})
    assert "Count from 5 to 7." in s.prompt.children[0].value
    s.form["amount"].box.value = "1.5"
    assert s.call_tool() is False and "not an integer" in s.status.value and not s.steps   # flagged, not sent
    s.form["amount"].box.value = "2"
    s.call.click()
    assert [st.reward for st in s.steps] == [1.0] and (s.total_reward, s.finished, s.state) == (1.0, True, "finished")
    assert "count=7" in card_text(s.history.children[0]) and "reward 1" in card_text(s.history.children[0])
    assert s.call.disabled and s.call_tool() is False          # latched
    assert "total reward</b> 1" in s.reward.value and "episode finished" in s.reward.value
    s.close()
    assert s.state == "closed"


def test_errors_are_shown_inline_and_the_widget_lives_on(server, client, url):
    wb = env(client, url, "workbench")
    s = SessionStepper(wb.get_task("train", 0), wb)
    s.call_tool("echo", {"text": 3})                            # refused by the server: the session stays
    assert s.steps[-1].error.startswith("refused (input_validation)") and s.state == "open"
    s.tool.value = "echo"
    s.form["text"].box.value = "hi"
    s.form["repeat"].box.value = "0"                            # below the minimum: flagged here
    assert s.call_tool() is False and "repeat: must be ≥ 1" in s.status.value
    s.form["repeat"].box.value = "3"
    s.call.click()
    assert s.steps[-1].output.blocks[0].text == "hihihi"
    s.call_tool("crash")                                       # the tool raises: the session is over
    assert s.state == "ended" and s.steps[-1].error.startswith("the tool failed: ")
    assert "kaboom" in card_text(s.history.children[-1])
    s.new_session()                                            # the stepper opened it, so it can start again
    assert (s.state, s.steps, s.total_reward) == ("open", [], 0.0)
    s.tool.value = "submit"
    s.form["answer"].box.value = "6"                            # 3 x 2 pixels
    s.call.click()
    assert (s.steps[-1].output.blocks[0].text, s.total_reward, s.state) == ("Correct!", 1.0, "finished")
    s.close()


def test_images_render_inline(server, client, url):
    wb = env(client, url, "workbench")
    s = play(wb.get_task("train", 0), wb)
    assert [type(c).__name__ for c in s.prompt.children] == ["HTML", "Image"]
    assert s.prompt.children[1].value[:8] == b"\x89PNG\r\n\x1a\n"
    s.tool.value = "draw"
    s.form["color"][0].box.value = "0"
    s.call.click()
    img = s.history.children[-1].children[-1]
    assert type(img).__name__ == "Image" and img.layout.width == "48px"   # 2x2 scaled up
    assert s.steps[-1].input == {"width": 2, "height": 2, "color": [0, 0, 0]}
    s.close()


def test_a_dropped_connection_is_an_inline_error(client):
    with serve_in_thread(Server(ENVIRONMENTS).app) as gone:
        counter = client.environments.get("examples", base_url=gone)
        s = play(counter.get_task("train", 0), counter)
        assert s.state == "open"
    s.call.click()                                             # the server has stopped
    assert s.state == "ended" and s.steps[-1].error.startswith("connection lost")
    s.close()                                                  # closing a session whose server is gone still works
    assert s.state == "closed"


def test_an_outside_session_stays_open(server, client, url):
    counter = env(client, url, "counter")
    with counter.session(counter.get_task("train", 0)) as session:
        s = play(session)
        assert not s.owned
        s.call.click()
        s.close()
        assert len(server.sessions) == 1                       # still the caller's
        assert session.call_tool("increment", {"amount": 1}).reward == 1.0
        with pytest.raises(ValueError, match="did not open"): s.new_session()


def test_session_from_split_and_index(server, client, url):
    counter = env(client, url, "counter")
    s = SessionStepper(None, counter, split="test", index=0)
    assert "Count from 0 to 5." in s.prompt.children[0].value
    s.close()
    with pytest.raises(TypeError, match="needs the environment handle"): SessionStepper(counter.get_task("train", 0))
    with pytest.raises(TypeError, match="needs a session or a task"): SessionStepper(42)


def test_browser_pages_a_huge_split_without_listing_it(server, client, url):
    big = env(client, url, "big")
    calls = []
    real = big.get_task_range
    big.get_task_range = lambda *a: (calls.append(a), real(*a))[1]
    big.list_tasks = lambda *a: pytest.fail("the browser listed every task")
    b = browse(big, page_size=5)
    assert (b.total, b.where.value.strip(), len(b.list.options)) == (100_000, "tasks 1–5 of 100,000", 5)
    assert b.prev.disabled and not b.next.disabled
    b.next.click()
    b.goto.value = 54_321
    assert b.rows[0][0] == 54_320 and b.list.options[1][0].startswith('54321: {"id": 54321')
    assert "&quot;w54320&quot;" in b.spec.value                           # the selected task's spec, as a tree
    b.list.value = 2
    assert "&quot;w54322&quot;" in b.spec.value
    b.goto.value = 10**9                                        # past the end: the last page
    assert b.rows[-1][0] == 99_999 and b.next.disabled
    assert calls == [("train", 0, 5), ("train", 5, 10), ("train", 54320, 54325), ("train", 99995, 100000)]
    b.close()


def test_browser_filter_variant_and_open_session(server, client, url):
    counter = env(client, url, "counter")
    b = browse(counter)
    assert b.variant.value == "counter" and "workbench" in b.variant.options
    assert b.split.options == (("train (train)", "train"), ("test (test)", "test"))
    b.filter.value = '"target": 7'
    assert [i for i, _ in b.rows] == [1] and "1 match in tasks 1–3 of 3" in b.where.value
    b.filter.value = ""
    assert [i for i, _ in b.rows] == [0, 1, 2]
    b.split.value = "test"
    assert [t.task_spec["id"] for _, t in b.rows] == ["e0"]
    b.variant.value = "workbench"                                # the same server, another environment
    assert b.env.variant == "workbench" and [t.task_spec["id"] for _, t in b.rows] == ["w0", "w1", "w2"]
    b.list.value = 2
    st = b.open_session()
    assert st.task.task_spec["id"] == "w2" and b.session_box.children == (st,) and len(server.sessions) == 1
    st2 = b.open_session()                                       # replaces (and closes) the previous one
    assert st.state == "closed" and len(server.sessions) == 1
    b.close()
    assert st2.state == "closed"


def test_tool_output_view():
    long = "\n".join(f"row {i}" for i in range(100))
    v = ToolOutputView(ToolOutput(blocks=[TextBlock(text=long)], metadata={"a": {"b": [1, 2]}}, reward=None))
    html = v.children[0].value
    assert "no reward" in html and "show all (100 lines" in html and "row 99" in html and "<details" in html
    assert "finished" not in html
    assert '"b"' not in html and ">b<" in html                 # metadata keys in the tree
    v = ToolOutputView(ToolOutput(blocks=[TextBlock(text="<script>alert(1)</script>")], reward=2.0, finished=True))
    assert "&lt;script&gt;" in v.children[0].value and "<script>" not in v.children[0].value
    assert "reward 2" in v.children[0].value and "finished" in v.children[0].value


# ---- async client, under asyncio.run: calls are tasks, the loop is never blocked ----------------------------------

def test_async_stepper_never_blocks_the_loop(server, url):
    async def main():
        async with AsyncOpenReward(retry=FAST) as ac:
            wb = ac.environments.get("examples", variant="workbench", base_url=url)
            s = play(await wb.get_task("train", 0), wb)
            assert s.state == "opening" and s.busy is False or s.runner.busy   # returned before the session opened
            await s.wait()
            assert s.state == "open"
            s.tool.value = "wait"
            s.form["seconds"].box.value = "0.3"
            ticks = 0
            s.call.click()
            assert s.busy and s.call.disabled and "calling wait" in s.status.value
            while s.busy:                                           # the loop keeps turning during the call
                ticks += 1
                await asyncio.sleep(0.01)
            assert ticks >= 10 and s.steps[-1].output.blocks[0].text == "waited 0.3 s"
            assert not s.call.disabled
            await s.aclose()
    asyncio.run(main())


def test_async_browser_and_sync_handles_inside_a_loop(server, client, url):
    async def main():
        async with AsyncOpenReward(retry=FAST) as ac:
            b = await browse(ac.environments.get("examples", variant="big", base_url=url)).wait()
            assert b.total == 100_000 and len(b.rows) == 10
            b.open_session()
            await b.wait()
            b.stepper.call.click()
            await b.wait()
            assert b.stepper.finished
            b.close()
            await b.wait()
        # a sync handle inside a running loop: its calls go to a worker thread
        counter = env(client, url, "counter")
        s = play(counter.get_task("train", 0), counter)
        assert s.state == "opening"
        await s.wait()
        s.call.click(); s2 = s.call_tool()
        assert s2 is False                                           # one call at a time
        await s.wait()
        assert len(s.steps) == 1
        await s.aclose()
    asyncio.run(main())


def test_async_handle_without_a_loop_says_what_to_do(url):
    ac = AsyncOpenReward()
    with pytest.raises(RuntimeError, match="needs a running event loop"):
        TaskBrowser(ac.environments.get("examples", base_url=url))


# ---- the reference server -------------------------------------------------------------------------------------------

@pytest.mark.interop
@pytest.mark.slow
def test_widgets_against_the_reference_server(reference_server, client):
    counter = client.environments.get("examples", variant="counter", base_url=reference_server)
    b = browse(counter)
    assert b.total == 3 and "workbench" in b.variant.options
    st = b.open_session()
    st.call.click(); st.call.click()
    assert (st.total_reward, st.finished) == (1.0, True)
    b.close()
    assert st.state == "closed"


# ---- the trajectory viewer, over the rollouts store -----------------------------------------------------------------

def test_trajectory_viewer_over_a_stored_rollout(tmp_path, monkeypatch):
    from openreward.rollouts import RolloutAPI, ToolCall, ToolResult, UserMessage
    from openreward.widgets import TrajectoryViewer, replay
    db = tmp_path/"rollouts.sqlite3"
    monkeypatch.setenv("OPENREWARD_ROLLOUTS_DB", str(db))
    with RolloutAPI(store=db, upload=False) as api:
        r = api.create("run", rollout_name="counter t0", rollout_id="r-1")
        r.log(UserMessage("Count from 0 to 2."))
        for i in (1, 2):
            r.log(ToolCall("increment", '{"amount": 1}', f"c{i}"))
            r.log(ToolResult(f"count={i}", f"c{i}"), reward=float(i == 2), is_finished=i == 2)
        api.flush()
        v = replay("r-1")                                      # by id, from the default store
        assert (v.step, v.slider.max, len(v.messages)) == (5, 5, 5)
        assert "total reward 1" in v.header.value and "finished" in v.header.value
        assert v.transcript.value.count('class="openreward-message"') == 5 and "count=2" in v.transcript.value
        v.slider.value = 3
        assert v.transcript.value.count('class="openreward-message"') == 3 and "count=2" not in v.transcript.value
        assert "step 3 of 5 · reward so far 0" in v.transcript.value
        assert v.plot.value.count("<circle") == 2                # two rewards logged (0 and 1)
        assert TrajectoryViewer(r).messages == v.messages         # a live Rollout is read back
        assert TrajectoryViewer(api.get_rollout("r-1")).step == 5
    empty = TrajectoryViewer(type("R", (), {"messages": []})())
    assert empty.slider.disabled and "no messages" in empty.transcript.value
    with pytest.raises(TypeError, match="not a rollout"): TrajectoryViewer(3.5)
