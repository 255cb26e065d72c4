"""The Docker sandbox backend against a real dockerd the tests start (no iptables, no bridge, own directories and
socket), with an image imported from Debian's busybox-static: the same semantics as the local backend, and no container
left behind."""
from __future__ import annotations

import asyncio, hashlib, os, subprocess, sys, textwrap, time
from pathlib import Path

import httpx
import pytest

from openreward.errors import FileTransferError, SandboxError
from openreward.sandbox import (AsyncSandboxesAPI, SandboxEgressRule, SandboxHostAlias, SandboxNetworkPolicy,
                                SandboxSidecarContainer, SandboxesAPI)
from openreward.sandbox_docker import DockerBackend

from conftest import subprocess_env
from sandbox_helpers import IMAGE, http_server, own_dockerd, settings

pytestmark = pytest.mark.slow

@pytest.fixture(scope="module")
def dockerd():
    with own_dockerd() as sock: yield sock

@pytest.fixture
def backend(dockerd): return DockerBackend(socket_path=dockerd)

def containers(sock: str) -> list[dict]:
    with httpx.Client(transport=httpx.HTTPTransport(uds=sock), base_url="http://docker/v1.41") as c:
        return c.get("/containers/json", params={"all": "1"}).json()

def sandbox(backend, **kw): return AsyncSandboxesAPI(settings=settings(image=IMAGE, **kw), backend=backend)
def run(coro): return asyncio.run(coro)

def test_persistent_limited_and_gone_after_stop(backend, dockerd):
    async def main():
        async with sandbox(backend) as sb:
            await sb.check_run("echo kept > /tmp/a; sleep 601 >/dev/null 2>&1 &")
            persisted = await sb.check_run("cat /tmp/a; ps -o args | grep -c '^sleep 601'")
            limits = await sb.check_run("cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max")
            err = await sb.run("echo out; echo err >&2; exit 3")
            timed = await sb.run("trap '' TERM; sleep 300", timeout=1)
            cut = await sb.run("printf 'é%.0s' $(seq 100)", max_bytes=9)
            huge = await sb.check_run(f"echo '{'x' * 3_000_000}' | wc -c")
            return persisted, limits, err, timed, cut, huge, sb.info
    persisted, limits, err, timed, cut, huge, info = run(main())
    assert persisted.split() == ["kept", "1"]
    assert limits.split() == [str(512 * 1024 ** 2), "512"]
    assert (err.output, err.return_code) == ("out\nerr", 3)
    assert (timed.return_code, timed.timed_out) == (124, True)
    assert (cut.output, cut.truncated) == ("éééé", True) and huge.strip() == "3000001"
    assert info["backend"] == "docker" and containers(dockerd) == []

def test_files_with_digests_and_refusals(backend, tmp_path):
    data = os.urandom(9_437_189)
    (tmp_path / "up.bin").write_bytes(data)
    async def main():
        async with sandbox(backend) as a, sandbox(backend) as b:
            up = await a.upload_from(tmp_path / "up.bin", "/workspace/in/up.bin")
            st = await a.stat_file("/workspace/in/up.bin", sha256=True)
            down = await a.download_to("/workspace/in/up.bin", tmp_path / "down.bin")
            cp = await a.copy_to(b, "/workspace/in/up.bin", "/tmp/copy.bin")
            on_b = await b.check_run("sha256sum /tmp/copy.bin | cut -d' ' -f1")
            proc = await a.download("/proc/self/status")
            await a.check_run("ln -s /etc/passwd /workspace/link")
            with pytest.raises(FileTransferError, match="symlink"): await a.stat_file("/workspace/link")
            with pytest.raises(FileTransferError, match="no such file"): await a.download("/workspace/nope")
            return up, st, down, cp, on_b, proc
    up, st, down, cp, on_b, proc = run(main())
    digest = hashlib.sha256(data).hexdigest()
    assert up.sha256 == st["sha256"] == down.sha256 == cp.sha256 == on_b == digest
    assert (tmp_path / "down.bin").read_bytes() == data and b"Name:" in proc

def test_block_network_and_the_policy_proxy_inside_the_container(backend):
    with http_server("api") as api:
        aliases = [SandboxHostAlias(ip="127.0.0.1", hostnames=["api.test", "other.test"])]
        policy = SandboxNetworkPolicy(rules=[SandboxEgressRule(action="allow", host="api.test", path="/ok/*")])
        async def main():
            async with sandbox(backend, block_network=True) as sb:
                blocked = await sb.run(f"wget -q -T 3 -O - http://127.0.0.1:{api}/ok/x 2>&1; cat /proc/net/dev | tail -n +3 | cut -d: -f1")
            async with sandbox(backend, network=policy, host_aliases=aliases) as sb:
                ok = await sb.run(f"wget -q -O - http://api.test:{api}/ok/x")
                denied = await sb.run(f"wget -q -O - http://api.test:{api}/no 2>&1; wget -q -O - http://other.test:{api}/ok/x 2>&1")
                await sb.set_network(SandboxNetworkPolicy(rules=[SandboxEgressRule(action="allow", host="other.test")]))
                live = await sb.run(f"wget -q -O - http://other.test:{api}/now")
            return blocked, ok, denied, live
        blocked, ok, denied, live = run(main())
    assert blocked.output.split()[-1] == "lo" and "api GET" not in blocked.output
    assert ok.output == "api GET /ok/x" and denied.output.count("403") == 2 and live.output == "api GET /now"

def test_sidecars_share_the_network_namespace(backend, dockerd):
    car = SandboxSidecarContainer(name="web", image=IMAGE, command=["httpd", "-f", "-p", "127.0.0.1:8080", "-h", "/etc"])
    async def main():
        async with sandbox(backend, block_network=True, sidecars=[car]) as sb:
            for _ in range(50):
                r = await sb.run("wget -q -O - http://127.0.0.1:8080/passwd")
                if r.return_code == 0: break
                await asyncio.sleep(0.1)
            return r, len(containers(dockerd))
    r, during = run(main())
    assert "root:x:0:0" in r.output and during == 2 and containers(dockerd) == []

def test_missing_image_and_unknown_settings_are_clear_errors(backend, dockerd):
    async def main():
        with pytest.raises(SandboxError, match="never pulls"): await AsyncSandboxesAPI(settings=settings(image="python:3.11-slim"), backend=backend).start()
        with pytest.raises(SandboxError, match="unknown network presets"):
            await sandbox(backend, network=SandboxNetworkPolicy(presets=["nope"])).start()
    run(main())
    assert containers(dockerd) == []

def test_no_container_is_left_after_an_exception_a_cancellation_or_many_at_once(backend, dockerd):
    async def main():
        with pytest.raises(ZeroDivisionError):
            async with sandbox(backend) as sb:
                1 / 0
        async with sandbox(backend) as sb:
            task = asyncio.create_task(sb.run("sleep 600"))
            await asyncio.sleep(1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError): await task
            assert (await sb.run("ps -o args | grep -c '^sleep 600'")).output == "0"
        boxes = [sandbox(backend) for _ in range(8)]
        await asyncio.gather(*(b.start() for b in boxes))
        outs = await asyncio.gather(*(b.check_run("echo ok") for b in boxes))
        await asyncio.gather(*(b.stop() for b in boxes))
        return outs
    assert run(main()) == ["ok"] * 8
    assert containers(dockerd) == []

def test_the_sync_shell_and_a_sigkilled_owners_containers_are_swept(dockerd, tmp_path):
    with SandboxesAPI(settings=settings(image=IMAGE), backend=DockerBackend(socket_path=dockerd)) as sb:
        assert sb.check_run("echo sync") == "sync"
    script = tmp_path / "owner.py"
    script.write_text(textwrap.dedent(f"""
        import asyncio
        from openreward.sandbox import AsyncSandboxesAPI, SandboxSettings
        from openreward.sandbox_docker import DockerBackend
        async def main():
            sb = AsyncSandboxesAPI(settings=SandboxSettings(environment="a/b", image={IMAGE!r}, machine_size="0.5:0.5"),
                                   backend=DockerBackend(socket_path={dockerd!r}))
            await sb.start()
            print("up", flush=True)
            await asyncio.sleep(600)
        asyncio.run(main())
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=subprocess_env())
    try:
        assert proc.stdout.readline().strip() == "up" and len(containers(dockerd)) == 1
        proc.kill(); proc.wait(10)
        assert len(containers(dockerd)) == 1  # Docker has no --die-with-parent
        assert len(run(DockerBackend(socket_path=dockerd).sweep())) == 1
        assert containers(dockerd) == []
    finally:
        if proc.poll() is None: proc.kill()

def test_sigterm_of_an_owner_removes_its_containers(dockerd, tmp_path):
    script = tmp_path / "owner.py"
    script.write_text(textwrap.dedent(f"""
        import asyncio, signal, sys
        from openreward.sandbox import AsyncSandboxesAPI, SandboxSettings
        from openreward.sandbox_docker import DockerBackend
        signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))  # what uvicorn and most servers do: exit normally
        async def main():
            sb = AsyncSandboxesAPI(settings=SandboxSettings(environment="a/b", image={IMAGE!r}, machine_size="0.5:0.5"),
                                   backend=DockerBackend(socket_path={dockerd!r}))
            await sb.start()
            print("up", flush=True)
            await asyncio.sleep(600)
        asyncio.run(main())
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=subprocess_env())
    try:
        assert proc.stdout.readline().strip() == "up" and len(containers(dockerd)) == 1
        proc.terminate(); proc.wait(30)
        assert containers(dockerd) == []  # the exit hook removed it
    finally:
        if proc.poll() is None: proc.kill()
