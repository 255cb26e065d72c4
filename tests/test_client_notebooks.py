"""The client where notebooks put it: the sync client inside a running event loop, `import openreward` leaving a
plain process's asyncio alone, and in a real Jupyter kernel: top-level await, the sync client, and a program ending
in `asyncio.run(main())` pasted unchanged into a cell."""
import asyncio, subprocess, sys, textwrap

import pytest

from conftest import subprocess_env
from openreward import OpenReward
from openreward.api.environments.types import Task

TASK = Task(server_name="fake", environment_name="fake", task_spec={"id": "t0"}, namespace=None)

def test_sync_client_inside_running_loop(fake):
    "What Jupyter does: sync calls from code that runs inside an event loop (here `async def` under asyncio.run)."
    async def cell():
        asyncio.get_running_loop()  # we are inside a running loop
        env = OpenReward(ping_interval=0.05).environments.get("fake", base_url=fake.url)
        with env.session(TASK) as s:
            await asyncio.sleep(0.2)  # the loop keeps running while the pinger thread pings
            out = s.call_tool("count")
            return s.sid, s.get_prompt()[0].text, out.blocks[0].text
    sid, prompt, text = asyncio.run(cell())
    assert (prompt, text) == ("Say hello.", "count #1")
    assert fake.paths(sid).count("/ping") >= 2 and fake.paths(sid)[-2:] == ["/delete", "/delete_session"]

def test_import_leaves_plain_process_unpatched():
    code = textwrap.dedent("""
        import asyncio, sys
        import openreward, openreward.client
        from openreward import AsyncOpenReward
        AsyncOpenReward()
        async def main():
            AsyncOpenReward()                      # a loop is running, but this is no kernel
            return openreward.client.nest_asyncio_in_notebooks()
        assert asyncio.run(main()) is False
        assert asyncio.run.__module__ == "asyncio.runners", asyncio.run.__module__
        assert not hasattr(asyncio, "_nest_patched")
        assert "nest_asyncio" not in sys.modules and "nest_asyncio2" not in sys.modules
        print("unpatched")
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env(), timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "unpatched"

def test_in_a_jupyter_kernel(fake):
    "A real kernel (nbclient): top-level await, the sync client, and an unchanged `asyncio.run(main())` program."
    nbformat = pytest.importorskip("nbformat")
    from nbclient import NotebookClient
    cells = [
        f"URL = {fake.url!r}",
        textwrap.dedent("""
            from openreward import AsyncOpenReward, OpenReward
            from openreward.api.environments.types import Task
            TASK = Task(server_name="fake", environment_name="fake", task_spec={"id": "t0"}, namespace=None)
            env = AsyncOpenReward().environments.get("fake", base_url=URL)
            async with env.session(TASK) as s:           # top-level await
                top_level = (await s.call_tool("count")).blocks[0].text
            top_level"""),
        textwrap.dedent("""
            with OpenReward().environments.get("fake", base_url=URL).session(TASK) as s:   # sync, loop running
                sync_result = s.call_tool("count").blocks[0].text
            sync_result"""),
        textwrap.dedent("""
            import asyncio
            client = AsyncOpenReward()

            async def main():
                env = client.environments.get("fake", base_url=URL)
                async with env.session(TASK) as session:
                    result = await session.call_tool("count", {})
                return result.blocks[0].text

            seed_result = asyncio.run(main())             # pasted unchanged from a script
            seed_result"""),
        "import sys; (asyncio.run.__module__ != 'asyncio.runners', 'nest_asyncio2' in sys.modules or 'nest_asyncio' in sys.modules)",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(nb, timeout=60, kernel_name="python3").execute()
    outs = [c.outputs[0]["data"]["text/plain"] if c.outputs else None for c in nb.cells]
    assert outs[1].startswith("'count #") and outs[2].startswith("'count #") and outs[3].startswith("'count #")
    assert outs[4] == "(True, True)"
