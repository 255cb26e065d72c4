"""The local (bubblewrap) sandbox backend for real: persistence, isolation and escape attempts, limits, files, network
policy, and leaks counted after every way a sandbox can end."""
from __future__ import annotations

import asyncio, fcntl, hashlib, os, select, shutil, signal, subprocess, sys, textwrap, time
from pathlib import Path

import pytest

from openreward import AsyncOpenReward, OpenReward
from openreward.errors import FileTransferError, PodTerminatedError, SandboxCommandError, SandboxError
from openreward.sandbox import (AsyncSandboxesAPI, SandboxesAPI, SandboxEgressRule, SandboxHostAlias,
                                SandboxNetworkPolicy, SandboxSidecarContainer)
from openreward.sandbox_local import LocalBackend

from conftest import subprocess_env
from sandbox_helpers import http_server, leftovers, needs_bwrap, processes_of, settings, state_dir

pytestmark = needs_bwrap

@pytest.fixture(scope="module")
def backend():
    root = state_dir()
    b = LocalBackend(root=root)
    yield b
    shutil.rmtree(root, ignore_errors=True)

def run(coro): return asyncio.run(coro)

def sandbox(backend, **kw) -> AsyncSandboxesAPI: return AsyncSandboxesAPI(settings=settings(**kw), backend=backend)

def assert_clean(backend, uids):
    assert leftovers(backend.root, uids) == {"processes": [], "cgroups": [], "dirs": []}

# -- persistence ------------------------------------------------------------------------------------------------------

def test_files_and_background_processes_persist_between_runs(backend):
    async def main():
        async with sandbox(backend) as sb:
            await sb.check_run("echo kept > /workspace/a.txt; echo tmp > /tmp/b.txt")
            await sb.check_run("nohup python3 -c 'import time; time.sleep(600)' >/dev/null 2>&1 &")
            out = await sb.check_run("cat a.txt /tmp/b.txt; pgrep -fc 'time.sleep'")
            uid = sb.info["uid"]
            assert processes_of(uid)  # the background job is really running, on the host, as the sandbox's uid
            return out, uid
    out, uid = run(main())
    assert out == "kept\ntmp\n1"
    assert_clean(backend, [uid])

def test_each_run_starts_in_the_workspace_with_a_fresh_shell(backend):
    async def main():
        async with sandbox(backend) as sb:
            await sb.run("cd /tmp; export X=1")
            return await sb.check_run("pwd; echo ${X:-unset}")
    assert run(main()) == "/workspace\nunset"

# -- isolation and escape attempts ------------------------------------------------------------------------------------

def test_cannot_read_host_secrets_or_the_servers_environment(backend, monkeypatch):
    monkeypatch.setenv("ORW_SERVER_SECRET", "do-not-leak-42")
    async def main():
        async with sandbox(backend, env={"VISIBLE": "yes"}) as sb:
            return [await sb.run(c) for c in ("cat /etc/shadow", "ls /root", "env", "cat /proc/1/environ | tr '\\0' '\\n'", "id -u")]
    shadow, root, env, env1, uid = run(main())
    assert shadow.return_code != 0 and "Permission denied" in shadow.output
    assert root.return_code != 0
    assert "do-not-leak-42" not in env.output + env1.output and "VISIBLE=yes" in env.output
    assert uid.output == "65534"

def test_cannot_see_another_sandboxs_workspace(backend):
    async def main():
        async with sandbox(backend) as a, sandbox(backend) as b:
            await a.check_run("echo secret-of-a > mine.txt")
            host_path = next(d for d in backend.root.iterdir() if d.name.endswith(a.sid)) / "ws" / "mine.txt"
            assert host_path.read_text() == "secret-of-a\n"
            seen = [await b.run(c) for c in ("ls -A /workspace", f"cat {host_path}", "find / -name mine.txt 2>/dev/null")]
            ps = await b.run("ps -e -o pid= | wc -l")
            return seen, ps
    (ls, cat, find), ps = run(main())
    assert ls.output == "" and cat.return_code != 0 and "No such file" in cat.output and find.output == ""
    assert int(ps.output) <= 4  # only its own namespace: the agent, bash, ps, wc

def test_cannot_write_outside_the_workspace(backend):
    marker = Path("/usr/orw-escape-test")
    async def main():
        async with sandbox(backend) as sb:
            return [await sb.run(f"echo x > {p}") for p in (marker, "/etc/passwd", "/orw-root-file", "/proc/sys/kernel/hostname")]
    results = run(main())
    assert all(r.return_code != 0 for r in results), results
    assert not marker.exists() and not Path("/orw-root-file").exists()

def test_symlinks_out_of_the_workspace_are_refused_by_file_calls(backend, tmp_path):
    async def main():
        async with sandbox(backend) as sb:
            await sb.check_run("ln -s /etc/shadow shadow; ln -s /proc/1/environ env1")
            with pytest.raises(FileTransferError, match="symlink"): await sb.stat_file("/workspace/shadow")
            with pytest.raises(FileTransferError): await sb.download("/workspace/shadow")      # resolved, then unreadable
            with pytest.raises(FileTransferError): await sb.download_to("/workspace/shadow", tmp_path / "x")
            with pytest.raises(FileTransferError, match="Permission denied"): await sb.download("env1")  # the agent is not dumpable
    run(main())
    assert not (tmp_path / "x").exists()

def _pids_full(backend, sb, limit: float = 60.0) -> bool:
    "Wait (bounded) until the sandbox's pids cgroup has refused a fork and is full (or the bomb burnt out); False without one."
    box = next(b for b in backend.boxes if b.sid == sb.sid)
    d = box.cgroups.dirs.get("pids")
    if d is None: return False
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        hits, current = int((d / "pids.events").read_text().split()[1]), int((d / "pids.current").read_text())
        if hits and (current >= backend.pids_max * 7 // 8 or current < 10): return True  # full, or it burnt out
        time.sleep(0.05)
    raise AssertionError(f"the fork bomb never filled the pids limit ({current} of {backend.pids_max})")

def test_a_fork_bomb_is_contained_and_cleaned_up(backend):
    async def main():
        async with sandbox(backend) as sb:
            r = await sb.run("bomb() { bomb | bomb & }; bomb", timeout=5)
            full = _pids_full(backend, sb)  # the bomb runs on in the background until it has filled the sandbox
            alive = await sb.run("echo still here", timeout=30)  # the next command ends it first, then runs
            after = await sb.run("echo $(echo forked); ps -e -o pid= | wc -l", timeout=30)
            return r, full, alive, after, sb.info["uid"]
    r, full, alive, after, uid = run(main())
    assert alive.output == "still here"
    if full: assert after.output.split() == ["forked", "4"]  # the bomb's processes are gone: the agent, bash, ps, wc
    assert_clean(backend, [uid])

def test_a_memory_bomb_is_killed_and_the_sandbox_survives(backend):
    async def main():
        async with sandbox(backend) as sb:  # 0.5 GiB
            r = await sb.run("python3 -c 'x = bytearray(2 * 1024**3); print(len(x))'", timeout=60)
            after = await sb.run("echo alive")
            return r, after
    r, after = run(main())
    assert r.return_code != 0 and "2147483648" not in r.output
    assert after.output == "alive"

def test_the_deadline_kills_a_process_that_ignores_sigterm_and_its_group(backend):
    async def main():
        async with sandbox(backend) as sb:
            t = time.monotonic()
            r = await sb.run("trap '' TERM; (sleep 300 &); sleep 300 & python3 -c 'import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)'", timeout=1)
            took = time.monotonic() - t
            left = await sb.run("pgrep -c sleep; pgrep -fc signal.SIG_IGN")
            return r, took, left
    r, took, left = run(main())
    assert (r.return_code, r.timed_out) == (124, True) and took < 20
    assert left.output.split() == ["0", "0"]  # the whole group went, subshells and background jobs included

# -- output ------------------------------------------------------------------------------------------------------------

def test_truncation_is_by_bytes_and_never_splits_a_character(backend):
    async def main():
        async with sandbox(backend) as sb:
            return [await sb.run(c, max_bytes=m) for c, m in (("printf 'é%.0s' $(seq 100)", 9), ("echo abcdefghij", 10),
                                                              ("printf 'abcdefghij\\n\\n\\n   '", 10), ("seq 100000", None))]
    cut, exact, blank, big = run(main())
    assert (cut.output, cut.truncated) == ("éééé", True)
    assert (exact.output, exact.truncated) == ("abcdefghij", False)
    assert (blank.output, blank.truncated) == ("abcdefghij", False)
    assert big.output.endswith("99999\n100000") and not big.truncated

def test_stderr_is_merged_and_escapes_are_sanitised(backend):
    async def main():
        async with sandbox(backend) as sb:
            return (await sb.run("echo out; echo err >&2; printf '\\033[31mred\\033[0m\\n'"),
                    await sb.run("printf '\\033[31mred'", sanitise=False))
    merged, raw = run(main())
    assert merged.output == "out\nerr\nred" and raw.output == "\x1b[31mred"

def test_a_huge_command_runs_where_bash_c_would_fail_with_e2big(backend):
    payload = "x" * 3_000_000
    async def main():
        async with sandbox(backend) as sb:
            return await sb.check_run(f"echo '{payload}' | wc -c")
    assert run(main()) == str(len(payload) + 1)

# -- files ---------------------------------------------------------------------------------------------------------------

def test_files_round_trip_with_digests(backend, tmp_path):
    data = os.urandom(9_437_189)
    (tmp_path / "up.bin").write_bytes(data)
    (tmp_path / "empty").write_bytes(b"")
    async def main():
        async with sandbox(backend) as a, sandbox(backend) as b:
            up = await a.upload_from(tmp_path / "up.bin", "/workspace/in/up.bin")
            st = await a.stat_file("/workspace/in/up.bin", sha256=True)
            down = await a.download_to("/workspace/in/up.bin", tmp_path / "down.bin")
            cp = await a.copy_to(b, "/workspace/in/up.bin", "/tmp/copy.bin")
            on_b = await b.check_run("sha256sum /tmp/copy.bin | cut -d' ' -f1")
            await a.upload(tmp_path / "empty", "/workspace/empty")
            empty = await a.download("/workspace/empty")
            proc = await a.download("/proc/self/status")  # size 0 on stat, content on read
            rel = await a.download("in/../in/up.bin")
            return up, st, down, cp, on_b, empty, proc, rel
    up, st, down, cp, on_b, empty, proc, rel = run(main())
    digest = hashlib.sha256(data).hexdigest()
    assert up.sha256 == st["sha256"] == down.sha256 == cp.sha256 == on_b == digest and st["size"] == len(data)
    assert (tmp_path / "down.bin").read_bytes() == data and not list(tmp_path.glob("*.orpart"))
    assert empty == b"" and b"Name:" in proc and rel == data

def test_upload_keeps_the_references_limit_and_errors(backend, tmp_path):
    (tmp_path / "big").write_bytes(b"0" * (10 * 1024 * 1024 + 1))
    async def main():
        async with sandbox(backend) as sb:
            with pytest.raises(ValueError, match="File is too large: 10485761 bytes > 10485760 bytes"): await sb.upload(tmp_path / "big", "/tmp/x")
            with pytest.raises(FileNotFoundError, match="Local file not found"): await sb.upload(tmp_path / "nope", "/tmp/x")
            with pytest.raises(FileTransferError, match="no such file"): await sb.download("/workspace/nope")
            with pytest.raises(FileTransferError, match="not a regular file"): await sb.download("/workspace")
            with pytest.raises(FileTransferError): await sb.upload_from(tmp_path / "big", "/usr/x")  # read-only
            with pytest.raises(SandboxCommandError, match="Command failed: exit 3"): await sb.check_run("exit 3")
    run(main())

# -- lifecycle and leaks ---------------------------------------------------------------------------------------------

def test_nothing_is_left_after_stop_an_exception_or_a_cancellation(backend):
    uids = []
    async def after_exception():
        with pytest.raises(ZeroDivisionError):
            async with sandbox(backend) as sb:
                uids.append(sb.info["uid"])
                await sb.run("sleep 600 &")
                1 / 0
    async def after_cancel():
        async with sandbox(backend) as sb:
            uids.append(sb.info["uid"])
            task = asyncio.create_task(sb.run("sleep 600; echo never"))
            await asyncio.sleep(0.5)
            task.cancel()
            with pytest.raises(asyncio.CancelledError): await task
            left = await sb.run("pgrep -c sleep")
            assert left.output == "0", "the cancelled command's process group was killed"
    run(after_exception()); run(after_cancel())
    assert_clean(backend, uids)

# Cancelling start() at every moment of it: before the directories, while bwrap is being made (asyncio's own clean-up of
# a cancelled create_subprocess_exec hung here: it killed bwrap alone and waited for pipes bwrap's orphaned child held),
# during the agent's handshake, and after. Each point is probed several times; a hang fails the wait, not the CI job.
CANCEL_POINTS = [0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05]

def test_cancelling_start_at_any_point_leaves_nothing_and_never_hangs(backend):
    backend._prepare()
    leased, lease = [], backend.uids.lease if backend.uids is not None else None
    def spy():  # record every uid a start leases, to count its processes and its lock afterwards
        uid, fd = lease(); leased.append(uid); return uid, fd
    outcomes = []
    async def cancel_after(delay):
        sb = sandbox(backend)
        task = asyncio.create_task(sb.start())
        await asyncio.sleep(delay)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=60)
        assert done, f"start() cancelled after {delay * 1000:g} ms did not end within 60 s"
        if task.cancelled(): outcomes.append("cancelled")
        else:
            task.result()  # it had finished: a started sandbox, stopped the ordinary way
            outcomes.append("started")
            await sb.stop()
    async def main():
        for _ in range(3):
            for delay in CANCEL_POINTS: await cancel_after(delay)
    if lease is not None: backend.uids.lease = spy
    try: run(main())
    finally:
        if lease is not None: del backend.uids.lease
    assert outcomes.count("cancelled") >= len(CANCEL_POINTS), outcomes  # most of the points land inside start()
    assert_clean(backend, leased)
    assert [uid for uid in leased if uid_locked(backend, uid)] == [], "every uid lease was given back"

def uid_locked(backend, uid) -> bool:
    fd = os.open(backend.uids.lock_dir / f"{uid}.lock", os.O_RDWR)
    try: fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError: return True
    finally: os.close(fd)
    return False

def test_restart_and_errors_of_the_lifecycle(backend):
    async def main():
        sb = sandbox(backend)
        with pytest.raises(RuntimeError, match="Sandbox not started"): await sb.run("true")
        await sb.start(); first = sb.sid
        await sb.start()  # a no-op while running: the reference leaked the first sandbox here
        assert sb.sid == first
        await sb.stop(); await sb.stop()
        with pytest.raises(RuntimeError, match="Session is closed"): await sb.run("true")
        await sb.start()
        assert sb.sid != first and (await sb.check_run("echo again")) == "again"
        await sb.stop()
        twice = sandbox(backend)
        await asyncio.gather(twice.start(), twice.start())  # concurrent starts: one sandbox
        assert len([d for d in backend.root.iterdir() if not d.name.startswith(".")]) == 1
        await twice.stop()
    run(main())

def test_a_sandbox_whose_processes_are_all_killed_reports_it(backend):
    async def main():
        async with sandbox(backend) as sb:
            r = await sb.run("kill -9 -1; echo survived")  # everything but pid 1, which cannot be signalled from inside
            assert (await sb.check_run("echo agent alive")) == "agent alive"
            os.kill(sb._box.agent_pid, signal.SIGKILL)  # now kill its pid 1 from outside, as the OOM killer might
            await asyncio.sleep(0.5)
            with pytest.raises(PodTerminatedError, match="the sandbox is gone"): await sb.run("true")
            return sb.info["uid"]
    uid = run(main())
    assert_clean(backend, [uid])

def test_settings_the_local_backend_cannot_honour_are_refused(backend):
    async def main():
        for kw in ({"sidecars": [SandboxSidecarContainer(name="redis", image="redis")]},
                   {"network": SandboxNetworkPolicy(presets=["no-such-preset"])},
                   {"bucket_config": {"mount_path": "/data", "only_dir": "not-there"}}):
            with pytest.raises(SandboxError): await sandbox(backend, **kw).start()
    run(main())
    assert_clean(backend, [])

def test_the_sync_shell(backend, tmp_path):
    (tmp_path / "f").write_text("hello")
    with SandboxesAPI(settings=settings(), backend=backend) as a, SandboxesAPI(settings=settings(), backend=backend) as b:
        a.upload(tmp_path / "f", "f")
        assert a.check_run("cat f") == "hello" and a.download("/workspace/f") == b"hello"
        assert a.copy_to(b, "/workspace/f", "/workspace/g").size == 5 and b.check_run("cat g") == "hello"
        uids = [a.info["uid"], b.info["uid"]]
    assert_clean(backend, uids)

def test_ctrl_c_in_a_sync_program_kills_the_command_and_stops_the_sandbox(backend, tmp_path):
    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        from openreward import OpenReward, SandboxSettings
        from openreward.sandbox_local import LocalBackend
        s = SandboxSettings(environment="a/b", image="x", machine_size="0.5:0.5")
        with OpenReward(api_key="").sandbox(s, backend=LocalBackend(root={str(backend.root)!r})) as sb:
            print(sb.info["uid"], flush=True)
            sb.run("echo running; sleep 600")
    """))
    for wait in (0.05, 1.0):  # Ctrl-C as the command starts, and while it runs
        proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=subprocess_env())
        try:
            ready, _, _ = select.select([proc.stdout], [], [], 60)
            assert ready, "the program did not start its sandbox within 60 s"
            uid = int(proc.stdout.readline())
            time.sleep(wait)
            assert processes_of(uid)
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None: proc.kill(); proc.wait(10)
        assert "KeyboardInterrupt" in err and proc.returncode != 0, err[-2000:]
        assert_clean(backend, [uid])

def test_sigkill_of_the_owner_ends_its_sandboxes_and_the_next_backend_sweeps_the_rest(tmp_path):
    root = state_dir()
    script = tmp_path / "owner.py"
    script.write_text(textwrap.dedent(f"""
        import asyncio
        from openreward.sandbox import AsyncSandboxesAPI, SandboxSettings
        from openreward.sandbox_local import LocalBackend
        async def main():
            sb = AsyncSandboxesAPI(settings=SandboxSettings(environment="a/b", image="x", machine_size="0.5:0.5"),
                                   backend=LocalBackend(root={str(root)!r}))
            await sb.start()
            await sb.run("nohup sleep 600 >/dev/null 2>&1 &")
            print(sb.info["uid"], flush=True)
            await asyncio.sleep(600)
        asyncio.run(main())
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=subprocess_env())
    try:
        uid = int(proc.stdout.readline())
        assert processes_of(uid)
        proc.kill(); proc.wait(10)
        deadline = time.monotonic() + 10
        while processes_of(uid) and time.monotonic() < deadline: time.sleep(0.05)
        assert processes_of(uid) == []  # --die-with-parent: the kernel ended the sandbox with its owner
        assert leftovers(root, [])["dirs"], "a SIGKILLed owner cannot remove its state directory"
        LocalBackend(root=root)._prepare()  # the next backend to start sweeps a dead owner's leftovers
        assert leftovers(root, [uid]) == {"processes": [], "cgroups": [], "dirs": []}
    finally:
        if proc.poll() is None: proc.kill()
        shutil.rmtree(root, ignore_errors=True)

@pytest.mark.slow
def test_a_hundred_sandboxes_open_at_once(backend):
    async def main():
        boxes = [sandbox(backend, machine_size="0.5:0.5") for _ in range(100)]
        await asyncio.gather(*(b.start() for b in boxes))
        try:
            outs = await asyncio.gather(*(b.check_run("echo $((6*7))") for b in boxes))
            return outs, [b.info["uid"] for b in boxes]
        finally: await asyncio.gather(*(b.stop() for b in boxes))
    outs, uids = run(main())
    assert outs == ["42"] * 100 and len(set(uids)) == 100
    assert_clean(backend, uids)

# -- network -------------------------------------------------------------------------------------------------------------

FETCH = "python3 -c 'import sys, urllib.request as u\ntry: print(u.urlopen(sys.argv[1], timeout=10).read().decode())\nexcept Exception as e: print(\"ERR\", getattr(e, \"code\", \"\"), getattr(e, \"read\", lambda: b\"\")().decode()[:80] or e)' "

def test_block_network_means_no_network_at_all(backend):
    with http_server("host") as port:
        async def main():
            async with sandbox(backend, block_network=True) as sb:
                return (await sb.run(f"{FETCH} http://127.0.0.1:{port}/"), await sb.run("cat /proc/net/dev | tail -n +3 | cut -d: -f1"),
                        await sb.run(f"env | grep -ci proxy"))
        direct, ifaces, proxies = run(main())
    assert direct.output.startswith("ERR") and ifaces.output.split() == ["lo"] and proxies.output == "0"

def test_open_egress_is_http_only_and_never_the_hosts_loopback(backend):
    with http_server("host") as port:
        async def main():
            async with sandbox(backend) as sb:
                via_proxy = await sb.run(f"curl -s -x http://127.0.0.1:3128 http://127.0.0.1:{port}/; curl -s http://10.1.2.3/")
                direct = await sb.run(f"curl -s --noproxy '*' --max-time 3 http://127.0.0.1:{port}/ || echo refused")
                raw = await sb.run("python3 -c \"import socket; s=socket.create_connection(('127.0.0.1', 3128)); s.sendall(b'SSH-2.0-x\\r\\n\\r\\n'); print(s.recv(200).decode())\"")
                return via_proxy, direct, raw
        via_proxy, direct, raw = run(main())
    assert "private address" in via_proxy.output and "host GET" not in via_proxy.output
    assert direct.output == "refused"
    assert "400" in raw.output and "only HTTP and HTTPS" in raw.output

def test_network_policy_with_host_aliases_and_live_changes(backend):
    with http_server("api") as api, http_server("other") as other:
        aliases = [SandboxHostAlias(ip="127.0.0.1", hostnames=["api.test", "files.api.test", "other.test"])]
        policy = SandboxNetworkPolicy(rules=[SandboxEgressRule(action="deny", host="api.test", path="/admin/*"),
                                             SandboxEgressRule(action="allow", host="api.test", methods=["GET"]),
                                             SandboxEgressRule(action="allow", host="*.api.test", path="/pub/*")])
        async def main():
            async with sandbox(backend, host_aliases=aliases, network=policy) as sb:
                hosts = await sb.check_run("grep api.test /etc/hosts")
                got = {name: (await sb.run(f"{FETCH} {url}")).output for name, url in [
                    ("allowed", f"http://api.test:{api}/v1/items"), ("denied_path", f"http://api.test:{api}/admin/users"),
                    ("subdomain", f"http://files.api.test:{other}/pub/a.txt"), ("subdomain_other_path", f"http://files.api.test:{other}/priv/a"),
                    ("default_deny", f"http://other.test:{other}/"), ("dotdot", f"http://api.test:{api}/v1/../admin/users")]}
                post = await sb.run(f"curl -s -X POST http://api.test:{api}/v1/items")
                await sb.set_network(SandboxNetworkPolicy(rules=[SandboxEgressRule(action="allow", host="other.test")]))
                after = (await sb.run(f"{FETCH} http://other.test:{other}/now")).output, (await sb.run(f"{FETCH} http://api.test:{api}/v1/items")).output
                await sb.set_network(SandboxNetworkPolicy(enforce=False))
                audit = (await sb.run(f"{FETCH} http://api.test:{api}/audited")).output
                return hosts, got, post, after, audit
        hosts, got, post, after, audit = run(main())
    assert "127.0.0.1" in hosts
    assert got["allowed"] == "api GET /v1/items" and got["subdomain"] == "other GET /pub/a.txt"
    for k in ("denied_path", "subdomain_other_path", "default_deny", "dotdot"):
        assert got[k].startswith("ERR 403 blocked by sandbox network policy"), (k, got[k])
    assert "blocked by sandbox network policy" in post.output
    assert after == ("other GET /now", after[1]) and after[1].startswith("ERR 403")
    assert audit == "api GET /audited"

def test_set_network_on_a_blocked_sandbox_is_refused(backend):
    async def main():
        async with sandbox(backend, block_network=True) as sb:
            with pytest.raises(SandboxError, match="block_network=True"): await sb.set_network(SandboxNetworkPolicy())
    run(main())

# -- the client's entry points -----------------------------------------------------------------------------------------

def test_client_sandbox_methods_pass_keys_and_secrets(backend):
    async def main():
        client = AsyncOpenReward(api_key="k-123")
        async with client.sandbox(settings(env={"A": "1"}), secrets={"HF_TOKEN": "hf"}, backend=backend) as sb:
            return await sb.check_run("echo $A $HF_TOKEN $OPENREWARD_API_KEY $api_key")
    assert run(main()) == "1 hf k-123 k-123"
    with pytest.raises(ValueError, match="not a well-known provider key"):
        OpenReward(api_key="").sandbox(settings(), secrets={"DB": "pw"}, backend=backend)

# -- images ---------------------------------------------------------------------------------------------------------------

def test_an_image_with_a_local_root_filesystem_is_honoured(backend):
    from sandbox_helpers import busybox_rootfs
    rootfs = busybox_rootfs(state_dir() / "busybox")
    for d in (rootfs.parent, rootfs): os.chmod(d, 0o755)
    local = LocalBackend(root=backend.root, images={"orw-busybox:test": rootfs})
    async def main():
        async with AsyncSandboxesAPI(settings=settings(image="orw-busybox:test"), backend=local) as sb:
            shell = await sb.run("ls /usr 2>&1; command -v python3 || echo no python; echo hi > note; cat note; ls -l /bin/sh")
            files = await sb.download("/workspace/note")
            timed = await sb.run("sleep 30", timeout=1)
            return shell, files, timed, sb.info
    shell, files, timed, info = run(main())
    assert "No such file" in shell.output and "no python" in shell.output and "hi" in shell.output and "busybox" in shell.output
    assert files == b"hi\n" and timed.timed_out and str(rootfs) in info["image"]
    shutil.rmtree(rootfs.parent, ignore_errors=True)

def test_warm_boxes_are_handed_out_configured_for_their_settings():
    root = state_dir()
    b = LocalBackend(root=root, warm=2)
    uids = []
    async def main():
        async def pool_ready():
            deadline = time.monotonic() + 60
            while len(b._pool) < 2 and time.monotonic() < deadline: await asyncio.sleep(0.02)
            assert len(b._pool) == 2
        first = sandbox(b)
        await first.start()  # cold (the pool was empty), and it starts filling the pool
        uids.append(first.info["uid"]); assert "started" not in first.info
        await pool_ready()
        pooled = set(b._pool)
        s = sandbox(b, machine_size="1:2", env={"GREETING": "hi"},
                    host_aliases=[SandboxHostAlias(ip="10.1.2.3", hostnames=["db.test"])])
        await s.start()
        uids.append(s.info["uid"])
        assert s._box in pooled and s.info["started"] == "warm (launched ahead)"
        assert (s.info["cpus"], s.info["memory_gib"]) == (1.0, 2.0)
        mem = (s._box.cgroups.dirs["memory"] / "memory.limit_in_bytes").read_text().strip()
        quota = (s._box.cgroups.dirs["cpu"] / "cpu.cfs_quota_us").read_text().strip()
        assert (int(mem), int(quota)) == (2 * 1024 ** 3, 100000)
        out = await s.check_run("echo $GREETING; grep db.test /etc/hosts; echo $HTTP_PROXY; id -u")
        assert out.split("\n") == ["hi", "10.1.2.3\tdb.test", "http://127.0.0.1:3128", "65534"], out
        await pool_ready()
        ready = set(b._pool)
        bucket = sandbox(b, bucket_config={"mount_path": "/data", "only_dir": "not-there"})
        with pytest.raises(SandboxError): await bucket.start()  # a bucket is mounted at launch: never a warm box
        assert set(b._pool) == ready
        uids.extend(x.uid for x in b._pool)
        await s.stop(); await first.stop()
        await b.aclose()
        assert b._pool == [] and not b.boxes
    try:
        run(main())
        assert leftovers(root, uids) == {"processes": [], "cgroups": [], "dirs": []}
    finally: shutil.rmtree(root, ignore_errors=True)
