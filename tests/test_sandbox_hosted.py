"""Our hosted sandbox client (`backend="hosted"`) against our sandbox service on real uvicorn, in a subprocess, its
sandboxes on the local backend: the API end to end, then faults: streams broken by a loopback proxy
(tests/fixtures/fault_proxy.py) before and after the task id, a stalled stream, the service killed or restarted
under an open sandbox."""
from __future__ import annotations

import asyncio, contextlib, hashlib, os, shutil, signal, subprocess, sys, time, uuid
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from openreward import AsyncOpenReward, OpenReward, SandboxNetworkPolicy, SandboxEgressRule
import openreward.sandbox_hosted as hosted
from openreward.errors import (AuthenticationError, FileTransferError, HeartbeatTimeoutError, SandboxError,
                               SessionTerminatedError, TransportError)
from openreward.sandbox import FILE_CHUNK_BYTES

from conftest import FIXTURES, free_port, serve_subprocess, stop_process, subprocess_env
from sandbox_helpers import needs_bwrap, settings, state_dir

sys.path.insert(0, str(FIXTURES))
from fault_proxy import FaultProxy  # noqa: E402

pytestmark = needs_bwrap
KEY = "sk-test-hosted"

def start_service(root: Path, port: int | None = None, **options) -> tuple[str, subprocess.Popen]:
    "Our sandbox service on uvicorn in a subprocess (stopped by the caller, by PID)."
    port = port or free_port()
    opts = {"ping_interval": 0.5, **options}
    code = (f"from openreward.sandbox_service import serve_sandbox_service as s; "
            f"s(port={port}, api_key={KEY!r}, log_level='warning', **{opts!r})")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            env=subprocess_env(OPENREWARD_SANDBOX_DIR=str(root)))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, f"the sandbox service exited with {proc.returncode}"
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200: return url, proc
        except httpx.TransportError: pass
        assert time.monotonic() < deadline, "the sandbox service did not come up"
        time.sleep(0.1)

@pytest.fixture(scope="module")
def service():
    root = state_dir()
    url, proc = start_service(root)
    yield url
    stop_process(proc)
    shutil.rmtree(root, ignore_errors=True)

def client(url: str, key: str = KEY) -> AsyncOpenReward:
    "Our async client, its sessions URL pointed at the service (as OPENREWARD_SESSION_URL would)."
    c = AsyncOpenReward(api_key=key)
    c.session_base_url = url
    return c

def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 300))

def stats(url: str) -> dict:
    return httpx.get(url + "/health?detail=1", headers={"X-API-Key": KEY}, timeout=10).json()

def ping_status(url: str, sid: str) -> int:
    return httpx.post(url + "/ping", headers={"X-API-Key": KEY, "X-Session-ID": sid}, timeout=10).status_code

def pinger_tasks() -> list[asyncio.Task]:
    return [t for t in asyncio.all_tasks() if "_ping_loop" in repr(t.get_coro())]

# ---------------------------------------------------------------------------------------------------------------
# The API, end to end
# ---------------------------------------------------------------------------------------------------------------

def test_create_run_and_stop(service):
    async def main():
        sb = client(service).sandbox(settings())
        assert type(sb.backend).__name__ == "HostedBackend" and sb.backend.base_url == service
        async with sb:
            r = await sb.run("echo out; echo err >&2; exit 3")
            cwd = (await sb.run("pwd")).output
            await sb.run("echo kept > state.txt")
            kept = await sb.check_run("cat state.txt")
            sid = sb.sid
            assert ping_status(service, sid) == 200
            assert len(pinger_tasks()) == 1
        assert pinger_tasks() == []  # the keepalive stopped with the sandbox
        return r, cwd, kept, sid
    r, cwd, kept, sid = run(main())
    assert (r.output, r.return_code, r.truncated, r.timed_out) == ("out\nerr", 3, False, False)
    assert kept == "kept" and cwd.startswith("/")
    assert ping_status(service, sid) == 410  # deleted on the service, not left to expire

def test_output_longer_than_the_keepalive_interval_cap_and_timeout(service):
    async def main():
        async with client(service).sandbox(settings()) as sb:
            slow = await sb.run("for i in 1 2 3 4; do echo $i; sleep 0.6; done")  # 2.4 s, the service's keepalive is 0.5 s
            capped = await sb.run("head -c 100000 /dev/zero | tr '\\0' x", max_bytes=1000)
            exact = await sb.run("printf abcdefghij", max_bytes=10)
            whole = await sb.run("head -c 300000 /dev/zero | tr '\\0' y", max_bytes=None)
            t0 = time.monotonic()
            late = await sb.run("sleep 30", timeout=1)
            return slow, capped, exact, whole, late, time.monotonic() - t0
    slow, capped, exact, whole, late, took = run(main())
    assert slow.output == "1\n2\n3\n4"
    assert (capped.output, capped.truncated) == ("x" * 1000, True)
    assert (exact.output, exact.truncated) == ("abcdefghij", False)
    assert len(whole.output) == 300000 and not whole.truncated
    assert (late.return_code, late.timed_out) == (124, True) and took < 25

@pytest.mark.parametrize("size", [0, 1, FILE_CHUNK_BYTES, FILE_CHUNK_BYTES + 1, 64 * 2**20])
def test_streamed_files_of_every_size_with_checksums(service, tmp_path, size):
    data = os.urandom(size)
    src, back = tmp_path / "src", tmp_path / "back"
    src.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    async def main():
        c = client(service)
        async with c.sandbox(settings()) as a, c.sandbox(settings()) as b:
            up = await a.upload_from(src, "/tmp/dir/f.bin")
            st = await a.stat_file("/tmp/dir/f.bin", sha256=True)
            copied = await a.copy_to(b, "/tmp/dir/f.bin", "/tmp/copy.bin")
            down = await b.download_to("/tmp/copy.bin", back)
            small = await a.download("/tmp/dir/f.bin") if size <= 2**20 else None
            return up, st, copied, down, small
    up, st, copied, down, small = run(main())
    assert up.size == st["size"] == copied.size == down.size == size
    assert up.sha256 == st["sha256"] == copied.sha256 == down.sha256 == digest
    assert back.read_bytes() == data
    assert small is None or small == data

def test_small_files_errors_and_the_sync_client(service, tmp_path):
    (tmp_path / "hello.txt").write_text("hello\n")
    c = OpenReward(api_key=KEY)
    c.session_base_url = service
    with c.sandbox(settings()) as sb:
        sb.upload(tmp_path / "hello.txt", "/tmp/hello.txt")
        assert sb.download("/tmp/hello.txt") == b"hello\n"
        assert sb.run("cat /tmp/hello.txt").output == "hello"
        with pytest.raises(FileTransferError, match="/tmp/missing"):
            sb.stat_file("/tmp/missing")
        with pytest.raises(FileTransferError):
            sb.download("/tmp/missing")
        assert sb.run("true").return_code == 0  # a refused file call leaves the sandbox alive
        with pytest.raises(RuntimeError, match="Command failed"):
            sb.check_run("exit 1")

def test_a_program_that_exits_without_stop_deletes_its_sandbox(service, tmp_path):
    script = tmp_path / "forgetful.py"
    script.write_text("import sys\nfrom openreward import OpenReward, SandboxSettings\n"
                      "sb = OpenReward().sandbox(SandboxSettings(environment='a/b', image='python:3.11-slim', machine_size='0.5:0.5'))\n"
                      "sb.start()\nprint(sb.sid, sb.run('echo up').output)\n")  # no stop(): the exit hook must do it
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                       env=subprocess_env(OPENREWARD_API_KEY=KEY, OPENREWARD_SESSION_URL=service))
    assert r.returncode == 0, r.stderr[-3000:]
    sid, up = r.stdout.split()
    assert up == "up" and ping_status(service, sid) == 410

def test_the_sync_client_works_inside_a_running_event_loop(service):
    async def inside():  # as in a Jupyter cell: the sync API runs its calls on its own loop thread
        c = OpenReward(api_key=KEY)
        c.session_base_url = service
        with c.sandbox(settings()) as sb: return sb.run("echo from a loop").output
    assert run(inside()) == "from a loop"

def test_set_network(service):
    policy = SandboxNetworkPolicy(rules=[SandboxEgressRule(action="allow", host="example.com")])
    async def main():
        c = client(service)
        async with c.sandbox(settings(network=policy)) as sb:
            await sb.set_network(SandboxNetworkPolicy(rules=[SandboxEgressRule(action="deny", host="example.com")]))
        async with c.sandbox(settings(block_network=True)) as sb:
            with pytest.raises(SandboxError):
                await sb.set_network(policy)
            assert (await sb.run("echo still here")).output == "still here"
    run(main())

def test_a_wrong_key_is_an_authentication_error(service):
    async def main():
        sb = client(service, "sk-wrong").sandbox(settings())
        with pytest.raises(AuthenticationError):
            await sb.start()
        assert sb.sid is None and pinger_tasks() == []
    run(main())

def test_capacity_429_with_retry_after_is_ridden_out(tmp_path):
    root = state_dir()
    url, proc = start_service(root, max_sandboxes=1, retry_after=2.0)
    try:
        async def main():
            c = client(url)
            first = c.sandbox(settings())
            await first.start()
            second = c.sandbox(settings())
            starting = asyncio.ensure_future(second.start())
            await asyncio.sleep(1.0)
            assert not starting.done()  # refused with 429 meanwhile, and waiting (2 s, as Retry-After says)
            await first.stop()
            await asyncio.wait_for(starting, 60)
            out = (await second.run("echo second")).output
            await second.stop()
            return out
        assert run(main()) == "second"
        assert stats(url)["sandboxes"] == 0
    finally:
        stop_process(proc)
        shutil.rmtree(root, ignore_errors=True)

# ---------------------------------------------------------------------------------------------------------------
# Faults
# ---------------------------------------------------------------------------------------------------------------

@pytest.fixture
def proxy(service):
    p = FaultProxy(int(service.rsplit(":", 1)[1]))
    yield p
    p.close()

def test_a_stream_dropped_after_its_task_id_is_resumed_and_the_command_runs_once(proxy):
    async def main():
        async with client(proxy.url).sandbox(settings()) as sb:
            proxy.arm("drop_after_task_id")
            first = await sb.run("echo ran >> count; sleep 1; wc -l < count")
            again = await sb.run("wc -l < count")
            return first, again
    first, again = run(main())
    assert proxy.broken == 1 and proxy.runs == 3  # the broken POST, its re-attach, the check
    assert (first.output, again.output) == ("1", "1")

def test_a_stream_dropped_before_its_task_id_is_not_run_again(proxy):
    async def main():
        async with client(proxy.url).sandbox(settings()) as sb:
            proxy.arm("drop_before_task_id")
            with pytest.raises(TransportError, match="may have run"):
                await sb.run("echo ran >> count")
            runs_then = proxy.runs
            for _ in range(100):  # the command goes on without its caller: wait (bounded) until it has written
                if (count := (await sb.run("cat count 2>/dev/null | wc -l")).output) != "0": break
                await asyncio.sleep(0.1)
            return runs_then, count
    runs_then, count = run(main())
    assert proxy.broken == 1 and runs_then == 1  # one POST of it: no silent second run
    assert count == "1"  # it did run, once; the client said it could not know

def test_a_stalled_stream_is_retried_a_bounded_number_of_times(proxy, monkeypatch):
    monkeypatch.setattr(hosted, "HEARTBEAT", 1.0)
    monkeypatch.setattr(hosted, "HOSTED_POLICY", replace(hosted.HOSTED_POLICY, stream_backoff=0.05))
    async def main():
        async with client(proxy.url).sandbox(settings()) as sb:
            proxy.arm("stall_after_task_id", times=100)
            t0 = time.monotonic()
            with pytest.raises(HeartbeatTimeoutError):
                await sb.run("sleep 600", timeout=None)
            return time.monotonic() - t0
    took = run(main())
    assert proxy.runs == 1 + hosted.RUN_RETRIES  # every re-POST got a 2xx and then silence: still bounded
    assert took < 60

def test_a_run_has_an_overall_deadline(proxy, monkeypatch):
    monkeypatch.setattr(hosted, "RUN_MARGIN", 1.0)
    async def main():
        async with client(proxy.url).sandbox(settings()) as sb:
            proxy.arm("stall_after_task_id")  # keepalive comments swallowed too: a stream that says nothing
            t0 = time.monotonic()
            with pytest.raises(SandboxError, match="gave no result within 3 s"):
                await sb.run("sleep 600", timeout=2)
            took = time.monotonic() - t0
            assert (await sb.run("echo alive")).output == "alive"
            return took
    assert run(main()) < 15
    assert proxy.runs == 2  # the stalled one (not re-posted within its deadline), then the check

def test_a_killed_service_is_noticed_in_seconds_and_leaves_nothing(tmp_path):
    root = state_dir()
    url, proc = start_service(root)
    marker = f"{600 + uuid.uuid4().int % 1000}.{uuid.uuid4().int % 10**6}"
    try:
        async def main():
            sb = client(url).sandbox(settings())
            await sb.start()
            await sb.run(f"nohup sleep {marker} >/dev/null 2>&1 &")
            running = asyncio.ensure_future(sb.run("sleep 120", timeout=None))
            await asyncio.sleep(0.5)
            proc.kill()  # SIGKILL: no goodbye
            t0 = time.monotonic()
            with pytest.raises(SessionTerminatedError):
                await asyncio.wait_for(running, 60)
            took = time.monotonic() - t0
            with pytest.raises(SessionTerminatedError):
                await sb.run("true")
            await sb.stop()
            assert pinger_tasks() == []  # nothing left running on the client either
            return took
        took = run(main())
        assert took < 20, took
        def alive() -> list[str]:
            found = []
            for p in Path("/proc").iterdir():
                try:
                    if p.name.isdigit() and marker.encode() in (p / "cmdline").read_bytes(): found.append(p.name)
                except OSError: pass
            return found
        deadline = time.monotonic() + 20
        while alive() and time.monotonic() < deadline: time.sleep(0.1)
        assert alive() == []  # the sandbox's processes died with the service
    finally:
        stop_process(proc)
        shutil.rmtree(root, ignore_errors=True)

def test_a_restarted_service_fails_the_open_sandbox_with_session_terminated(tmp_path):
    root = state_dir()
    port = free_port()
    url, proc = start_service(root, port)
    try:
        async def main():
            nonlocal proc
            sb = client(url).sandbox(settings())
            await sb.start()
            assert (await sb.run("echo before")).output == "before"
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
            proc = start_service(root, port)[1]
            t0 = time.monotonic()
            with pytest.raises(SessionTerminatedError):
                await sb.run("echo after")
            took = time.monotonic() - t0
            await sb.stop()
            assert pinger_tasks() == []
            return took
        assert run(main()) < 20
        assert stats(url)["sandboxes"] == 0
    finally:
        stop_process(proc)
        shutil.rmtree(root, ignore_errors=True)

# ---------------------------------------------------------------------------------------------------------------
# The seed's sandbox environment, its sandboxes on the service
# ---------------------------------------------------------------------------------------------------------------

def test_the_seed_environment_runs_its_sandboxes_on_the_service(service, tmp_path):
    log = tmp_path / "events"
    env = {"OPENREWARD_SESSION_URL": service, "ORW_EVENTS": str(log)}
    with serve_subprocess(sys.executable, FIXTURES / "seed_sandbox_env.py", env=env) as (url, _):
        async def main():
            environment = AsyncOpenReward(api_key=KEY).environments.get("myenvironment", base_url=url)
            task = (await environment.list_tasks("train"))[0]
            async def one(i):
                async with environment.session(task) as s:
                    await s.call_tool("bash", {"command": f"echo {i} > mine"})
                    return (await s.call_tool("bash", {"command": "cat mine; ls | wc -l"})).metadata["output"]
            return await asyncio.gather(*(one(i) for i in range(3)))
        assert run(main()) == [f"{i}\n1" for i in range(3)]
        deadline = time.monotonic() + 30
        while log.read_text().count("stopped") < 3 and time.monotonic() < deadline: time.sleep(0.1)
    lines = [line.split() for line in log.read_text().splitlines()]
    assert sorted(l[0] for l in lines) == ["sandbox"] * 3 + ["stopped"] * 3
    assert all(ping_status(service, l[1]) == 410 for l in lines if l[0] == "sandbox")  # each deleted on the service
    assert stats(service)["sandboxes"] == 0
