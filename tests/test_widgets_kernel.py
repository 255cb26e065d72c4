"""The widgets through the Jupyter kernel protocol, without a browser: a real ipykernel runs the cells, and this test
plays the front end, sending the comm messages JupyterLab sends when a person types into a box and clicks a button
(`update` with the new value; `custom` with `{"event": "click"}`), and reading the `update`s the widgets send back.

Also: the widget notebooks' stored state holds only the widgets their outputs show (.ci/prune_widget_state.py).
"""
from __future__ import annotations

import json, queue, sys, time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
WIDGET_NBS = sorted((REPO/"nbs").glob("10*.ipynb"))  # none when the tests run against an installed wheel


def load_pruner():
    "The pruning script of .ci/ (a checkout's, not a wheel's)."
    sys.path.insert(0, str(REPO/".ci"))
    try: import prune_widget_state as m
    finally: sys.path.pop(0)
    return m

SETUP = """
from openreward import OpenReward
from openreward.client import RetryPolicy
from openreward.demo import serve_in_thread
from openreward.examples import ENVIRONMENTS
from openreward.server import Server
from openreward.widgets import play
server = Server(ENVIRONMENTS)
_serving = serve_in_thread(server.app)
url = _serving.__enter__()
client = OpenReward(retry=RetryPolicy(attempts=1, call_retries=0, create_retries=0))
counter = client.environments.get("examples", variant="counter", base_url=url)
s = play(counter.get_task("train", 0), counter)   # a sync cell: the session opens on a worker thread
s
"""


class Kernel:
    "A real ipykernel (this venv's Python) and a client that plays the front end."
    def __init__(self):
        from jupyter_client import KernelManager
        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(extra_arguments=["--HistoryManager.enabled=False"])
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)
        self.iopub: list[dict] = []

    def _drain(self, until, timeout: float = 30.0) -> dict:
        "Read iopub messages (kept in `self.iopub`) until `until(msg)`; return that message."
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try: msg = self.kc.get_iopub_msg(timeout=0.5)
            except queue.Empty: continue
            self.iopub.append(msg)
            if until(msg): return msg
        raise AssertionError(f"no such message within {timeout} s; last: {[m['msg_type'] for m in self.iopub[-10:]]}")

    def run(self, code: str) -> str:
        "Execute `code`, wait until the kernel is idle again; return its stdout (fail on an error)."
        mid = self.kc.execute(code)
        start = len(self.iopub)
        self._drain(lambda m: m["parent_header"].get("msg_id") == mid and m["msg_type"] == "status"
                    and m["content"]["execution_state"] == "idle")
        mine = [m for m in self.iopub[start:] if m["parent_header"].get("msg_id") == mid]
        errors = [m["content"] for m in mine if m["msg_type"] == "error"]
        assert not errors, "\n".join(errors[0]["traceback"])
        return "".join(m["content"]["text"] for m in mine if m["msg_type"] == "stream" and m["content"]["name"] == "stdout")

    def comm(self, comm_id: str, data: dict) -> None:
        "Send a comm message to a widget, as a front end does."
        self.kc.shell_channel.send(self.kc.session.msg("comm_msg", {"comm_id": comm_id, "data": data}))

    def updates(self, comm_id: str, since: int = 0) -> list[dict]:
        "The state updates the kernel sent for model `comm_id`."
        return [m["content"]["data"]["state"] for m in self.iopub[since:]
                if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == comm_id
                and m["content"]["data"].get("method") == "update"]

    def wait_update(self, comm_id: str, pred, since: int, timeout: float = 30.0) -> dict:
        for state in self.updates(comm_id, since):
            if pred(state): return state
        msg = self._drain(lambda m: m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == comm_id
                          and m["content"]["data"].get("method") == "update" and pred(m["content"]["data"]["state"]),
                          timeout)
        return msg["content"]["data"]["state"]

    def close(self):
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


@pytest.fixture
def kernel():
    pytest.importorskip("ipykernel", reason="the kernel test needs ipykernel (a dev requirement)")
    pytest.importorskip("jupyter_client", reason="the kernel test needs jupyter_client (a dev requirement)")
    k = Kernel()
    try: yield k
    finally: k.close()


def test_stepper_driven_by_comm_messages(kernel):
    kernel.run(SETUP)
    opened = {m["content"]["comm_id"]: m["content"]["data"]["state"] for m in kernel.iopub if m["msg_type"] == "comm_open"}
    assert any(s.get("_model_name") == "VBoxModel" for s in opened.values())
    ids = json.loads(kernel.run("await s.wait()\nimport json\n"
                                "print(json.dumps([s.form['amount'].box.model_id, s.call.model_id, s.reward.model_id, "
                                "s.history.model_id, s.state, len(server.sessions)]))"))
    amount, call, reward, history, state, sessions = ids
    assert (state, sessions) == ("open", 1)
    mark = len(kernel.iopub)
    # what JupyterLab sends when a person types 2 into the amount box and clicks Call
    kernel.comm(amount, {"method": "update", "state": {"value": "2"}, "buffer_paths": []})
    kernel.comm(call, {"method": "custom", "content": {"event": "click"}})
    done = kernel.wait_update(reward, lambda st: "episode finished" in st.get("value", ""), mark)
    assert "total reward</b> 1" in done["value"] and "1 call" in done["value"]
    assert kernel.wait_update(call, lambda st: st.get("disabled") is True, mark)
    assert any(len(st.get("children", ())) == 1 for st in kernel.updates(history, mark))   # one step card
    out = kernel.run("print(s.steps[0].input, s.steps[0].output.blocks[0].text, s.total_reward)")
    assert out.strip() == "{'amount': 2} count=2 1.0"
    # invalid input typed in the front end is flagged, and nothing is sent
    kernel.run("s.new_session()\nawait s.wait()")
    mark = len(kernel.iopub)
    kernel.comm(amount, {"method": "update", "state": {"value": "two"}, "buffer_paths": []})
    kernel.comm(call, {"method": "custom", "content": {"event": "click"}})
    status = kernel.run("print(s.status.model_id)").strip()
    flagged = kernel.wait_update(status, lambda st: "not an integer" in st.get("value", ""), mark)
    assert "fix the input first" in flagged["value"]
    assert kernel.run("print(len(s.steps), s.state)").strip() == "0 open"
    # closing the widget closes the session it opened
    assert kernel.run("s.close()\nawait s.wait()\nprint(len(server.sessions))").strip() == "0"
    kernel.run("_serving.__exit__(None, None, None)")


@pytest.mark.skipif(not WIDGET_NBS, reason="no notebooks here (the tests run against an installed wheel)")
@pytest.mark.parametrize("nb", WIDGET_NBS, ids=lambda p: p.name)
def test_stored_widget_state_holds_only_what_is_shown(nb):
    pruner = load_pruner()
    data = json.loads(nb.read_text())
    state = data["metadata"]["widgets"][pruner.KEY]["state"]
    assert pruner.shown(data), f"{nb.name} shows no widget"
    assert all(m in state for m in pruner.shown(data)), f"{nb.name}: a displayed widget has no stored state"
    extra = pruner.prune(data)
    assert extra == 0, (f"{nb.name} stores {extra} widget models no output shows: run "
                        f"`python .ci/prune_widget_state.py nbs/{nb.name}` after executing it")
    assert all(m.startswith("openreward-") for m in state), "model ids are numbered, so the stored state is deterministic"
