"""`orwd serve --workers N` on real nginx and real uvicorn workers: sticky sessions, session-less spread, re-attach,
expiry and teardown exactly once, SIGTERM, and a worker killed mid-run (openreward.scale, #17).

Each test starts its own supervisor (`orwd serve tests/fixtures/scale_env.py:app --workers 2`) as a subprocess
and stops it by PID; the fixture's tools answer with the pid of the worker that ran them.
"""
from __future__ import annotations

import contextlib, dataclasses, json, os, shutil, signal, subprocess, sys, tempfile, threading, time, uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest

from conftest import FIXTURES, free_port, subprocess_env

pytestmark = pytest.mark.skipif(shutil.which("nginx") is None and not os.path.exists("/usr/sbin/nginx"),
                                reason="nginx is not installed (apt-get install nginx-light)")

TARGET = f"{FIXTURES/'scale_env.py'}:app"
ORWD = [sys.executable, "-c", "import sys; from openreward.cli import main; sys.exit(main())"]

def children(pid: int) -> list[int]:
    "Every descendant of `pid` (from /proc), depth first."
    kids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit(): continue
        try: ppid = int((d/"stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError): continue
        if ppid == pid: kids.append(int(d.name))
    return [k for c in kids for k in (c, *children(c))]

def alive(pid: int) -> bool:
    try: state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError: return False
    return state != "Z"

def cmdline(pid: int) -> str:
    try: return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError: return ""

class Workers:
    "A supervisor subprocess: `orwd serve TARGET --workers N --port P`, its teardown log and its processes."
    def __init__(self, tmp: Path, workers: int = 2, **env: str):
        self.port, self.tmp, self.n = free_port(), tmp, workers
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp/"teardown.log"
        self.err = open(tmp/"stderr", "w+b")
        self.proc = subprocess.Popen([*ORWD, "serve", TARGET, "--workers", str(workers), "--port", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=self.err, stdin=subprocess.DEVNULL,
                                     env=subprocess_env(SCALE_TEARDOWN_LOG=str(self.log), **env))
        deadline = time.monotonic() + 90
        while True:
            if self.proc.poll() is not None: raise RuntimeError(f"supervisor exited {self.proc.returncode}:\n{self.stderr()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200 and len(self.worker_pids()) == workers: break
            if time.monotonic() > deadline: raise RuntimeError(f"supervisor did not come up:\n{self.stderr()}")
            time.sleep(0.1)

    def worker_pids(self) -> set[int]:
        "The supervisor's children that are servers (its other child is nginx)."
        return {p for p in children(self.proc.pid) if "serve" in cmdline(p) and "--uds" in cmdline(p) and alive(p)}

    def stderr(self) -> str:
        self.err.flush(); self.err.seek(0)
        return self.err.read().decode(errors="replace")[-4000:]

    def teardowns(self) -> list[tuple[str, int]]:
        if not self.log.exists(): return []
        return [(a, int(b)) for a, b in (line.split() for line in self.log.read_text().splitlines() if line.strip())]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try: self.proc.wait(60)
            except subprocess.TimeoutExpired:
                for p in children(self.proc.pid): os.kill(p, signal.SIGKILL)
                self.proc.kill(); self.proc.wait(10)
        self.err.close()
        return self.proc.returncode

@pytest.fixture
def workers(tmp_path):
    w = Workers(tmp_path, SCALE_TTL="900", SCALE_REAP="0.5")
    yield w
    w.stop()

def create(c: httpx.Client, sid: str) -> httpx.Response:
    return c.post("/create", json={"task_spec": {"id": sid}}, headers={"X-Session-ID": sid})

def call(c: httpx.Client, sid: str, name: str = "pid", input: dict | None = None, **extra) -> httpx.Response:
    return c.post("/probe/call", json={"name": name, "input": input or {}, **extra}, headers={"X-Session-ID": sid})

def result(r: httpx.Response) -> dict:
    "The final JSON of a /call event stream."
    assert r.status_code == 200, (r.status_code, r.text)
    events = [e for e in r.text.replace("\r\n", "\n").split("\n\n") if e.strip()]
    last = dict(line.split(": ", 1) for line in events[-1].split("\n") if ": " in line)
    assert last.get("event") == "end", r.text
    return json.loads(last["data"])

def served_by(r: httpx.Response) -> int: return result(r)["output"]["metadata"]["pid"]

def test_sessions_stick_to_one_worker_and_sessionless_requests_spread(workers):
    pids = workers.worker_pids()
    with httpx.Client(base_url=workers.url, timeout=30) as c:
        sids = [f"stick-{i}" for i in range(24)]
        for sid in sids: assert create(c, sid).status_code == 200
        seen = {sid: {served_by(call(c, sid)) for _ in range(4)} for sid in sids}
        assert all(len(s) == 1 for s in seen.values()), seen           # every call of a session: one worker
        assert set().union(*seen.values()) == pids                      # and the sessions use every worker
        assert c.get("/probe/prompt", headers={"X-Session-ID": sids[0]}).json()[0]["text"] == "task stick-0"
        for sid in sids: assert c.post("/delete", headers={"X-Session-ID": sid}).status_code == 200
        # no session header: round-robin over the workers, each answering the catalogue
        answered = Counter(c.get("/probe/tools").headers["x-ors-worker"] for _ in range(20))
        assert set(answered) == {"0", "1"} and min(answered.values()) >= 5, answered
        minted = {c.post("/create_session").headers["x-ors-worker"] for _ in range(10)}
        assert minted == {"0", "1"}
    assert sorted(t for t, _ in workers.teardowns()) == sorted(sids)    # each deleted session torn down once

def test_our_client_through_nginx(workers):
    "The client's own sequence (/create_session, then /create with the minted id, pings, calls) works across workers."
    from openreward import OpenReward
    env = OpenReward(ping_interval=60).environments.get("probe", base_url=workers.url)
    tasks = env.list_tasks("train")
    assert [t.task_spec["id"] for t in tasks] == ["t0", "t1", "t2"]
    served = set()
    for i in range(10):
        with env.session(dataclasses.replace(tasks[0], task_spec={"id": f"client-{i}"})) as s:
            a, b = (s.call_tool("pid").metadata["pid"] for _ in range(2))
            assert a == b
            served.add(a)
    assert served == workers.worker_pids()
    assert sorted(t for t, _ in workers.teardowns()) == sorted(f"client-{i}" for i in range(10))

def test_reattach_by_task_id_through_nginx(workers):
    with httpx.Client(base_url=workers.url, timeout=30) as c:
        sids = [f"reattach-{i}" for i in range(6)]
        for sid in sids: create(c, sid)
        task_ids = {}
        for sid in sids:  # start a call, read only its task id, drop the connection
            with c.stream("POST", "/probe/call", json={"name": "sleep", "input": {"seconds": 1.5}},
                          headers={"X-Session-ID": sid}) as r:
                assert r.status_code == 200
                for line in r.iter_lines():
                    if line.startswith("data: "): task_ids[sid] = line[6:]; break
        for sid in sids:
            r = call(c, sid, "sleep", {"seconds": 1.5}, task_id=task_ids[sid])
            assert served_by(r) in workers.worker_pids()
            assert r.text.count("event: task_id") == 1 and task_ids[sid] in r.text
        # a task id is known only to the worker that ran it: asked for under a session of the other worker, it is not
        first = served_by(call(c, sids[0]))
        for i in range(64):  # a session that lives on the other worker (each lands on either with even odds)
            other = f"reattach-other-{i}"
            create(c, other)
            if served_by(call(c, other)) != first: break
        else: raise AssertionError("64 sessions all on one worker")
        r = call(c, other, "sleep", {"seconds": 0}, task_id=task_ids[sids[0]])
        assert "unknown task_id" in r.text, r.text

def test_expiry_and_teardown_exactly_once_across_workers(tmp_path):
    w = Workers(tmp_path, SCALE_TTL="2", SCALE_REAP="0.3")
    try:
        pids = w.worker_pids()
        with httpx.Client(base_url=w.url, timeout=30) as c:
            sids = [f"expire-{i}" for i in range(16)]
            for sid in sids: assert create(c, sid).status_code == 200
            home = {sid: served_by(call(c, sid)) for sid in sids}
            deleted = sids[:8]
            for sid in deleted:
                for _ in range(2): assert c.post("/delete", headers={"X-Session-ID": sid}).status_code == 200  # twice: idempotent
            deadline = time.monotonic() + 60
            while len(w.teardowns()) < len(sids) and time.monotonic() < deadline: time.sleep(0.2)
            time.sleep(1.0)  # a second teardown, if there were one, would have had time to show
            for sid in sids[8:]: assert c.post("/ping", headers={"X-Session-ID": sid}).status_code == 404
        downs = w.teardowns()
        assert Counter(t for t, _ in downs) == Counter(sids), downs     # every session exactly once
        assert {t: p for t, p in downs} == home                          # by the worker that held it
        assert set(home.values()) == pids
    finally:
        assert w.stop() == 0

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])  # SIGINT: Ctrl-C, which reaches the supervisor alone
def test_a_stop_signal_stops_every_worker_and_their_sessions(tmp_path, sig):
    w = Workers(tmp_path)
    procs = children(w.proc.pid)
    assert len(procs) >= 4  # two workers, nginx's master and at least one nginx worker
    with httpx.Client(base_url=w.url, timeout=30) as c:
        sids = [f"term-{i}" for i in range(12)]
        for sid in sids: create(c, sid)
        home = {sid: served_by(call(c, sid)) for sid in sids}
    assert set(home.values()) == w.worker_pids()
    w.proc.send_signal(sig)
    assert w.stop() == 0
    downs = w.teardowns()
    assert Counter(t for t, _ in downs) == Counter(sids), downs         # each worker tore its own sessions down
    assert {t: p for t, p in downs} == home
    assert [p for p in procs if alive(p)] == []                         # nothing left behind
    leftovers = [p for p in map(int, filter(str.isdigit, os.listdir("/proc"))) if "orwd-workers-" in cmdline(p)]
    assert leftovers == []
    assert not [d for d in Path(tempfile.gettempdir()).glob("orwd-workers-*") if str(w.proc.pid) in d.name]

def test_supervisor_reports_a_target_that_cannot_load(tmp_path):
    bad = tmp_path/"broken.py"
    bad.write_text("raise RuntimeError('boom at import')\n")
    r = subprocess.run([*ORWD, "serve", str(bad), "--workers", "2", "--port", str(free_port())], capture_output=True,
                       text=True, timeout=120, env=subprocess_env())
    assert r.returncode != 0 and "boom at import" in r.stderr and "Traceback" not in r.stderr

def test_worker_killed_mid_run_only_its_sessions_fail(workers):
    pids = workers.worker_pids()
    with httpx.Client(base_url=workers.url, timeout=30) as c:
        sids = [f"kill-{i}" for i in range(16)]
        for sid in sids: create(c, sid)
        home = {sid: served_by(call(c, sid)) for sid in sids}
    victim = min(pids)
    outcomes: dict[str, list] = {sid: [] for sid in sids}
    stop = threading.Event()

    def run(sid: str) -> None:
        with httpx.Client(base_url=workers.url, timeout=30) as c:
            while not stop.is_set():
                try:
                    r = call(c, sid)
                    outcomes[sid].append(("ok", served_by(r)) if r.status_code == 200 else
                                         (r.status_code, r.json().get("detail")))
                except httpx.TransportError as e: outcomes[sid].append(("transport", type(e).__name__))
                time.sleep(0.01)

    threads = [threading.Thread(target=run, args=(sid,)) for sid in sids]
    for t in threads: t.start()
    time.sleep(1.5)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while len(workers.worker_pids() - {victim}) < 2 and time.monotonic() < deadline: time.sleep(0.1)
    lost = [sid for sid in sids if home[sid] == victim]
    while time.monotonic() < deadline and not all(outcomes[sid] and outcomes[sid][-1][0] == 404 for sid in lost):
        time.sleep(0.1)  # until the replacement listens (seconds on a loaded machine) and answers each lost session
    time.sleep(0.5)
    stop.set()
    for t in threads: t.join(60)
    assert not any(t.is_alive() for t in threads)
    replacement = workers.worker_pids() - pids
    assert len(replacement) == 1, workers.stderr()                        # the dead worker was started again
    assert "its sessions are lost; restarting it" in workers.stderr()
    for sid in sids:
        got = outcomes[sid]
        if home[sid] != victim:
            assert got and all(o == ("ok", home[sid]) for o in got), (sid, [o for o in got if o[0] != "ok"][:3])
        else:
            errors = [o for o in got if o[0] != "ok"]
            assert errors and got[-1] == (404, "Active environment not found"), (sid, got[-3:])
            assert all(o in ((404, "Active environment not found"), ("transport", "RemoteProtocolError")) or
                       (o[0] == 502 and "sessions it held are lost" in o[1]) for o in errors), errors
            assert all(o == ("ok", victim) for o in got if o[0] == "ok")  # never served by another worker

def test_a_worker_that_keeps_dying_stops_the_supervisor(tmp_path):
    "Restarts are bounded: a worker that dies more than max_restarts times within the window ends the supervisor."
    from openreward.scale import Supervisor, orwd_serve_command
    doomed = tmp_path/"doomed.py"
    doomed.write_text(  # a worker that exits 1.5 s after it starts listening on its socket
        "import os, sys, threading, time\n"
        "def die():\n"
        "    path = sys.argv[sys.argv.index('--uds') + 1]\n"
        "    for _ in range(1200):\n"
        "        if os.path.exists(path): break\n"
        "        time.sleep(0.05)\n"
        "    time.sleep(1.5); os._exit(3)\n"
        "threading.Thread(target=die, daemon=True).start()\n"
        "from openreward.examples import Counter\n"
        "ENVIRONMENTS = [Counter]\n")
    messages = []
    sup = Supervisor(orwd_serve_command(str(doomed)), workers=1, port=free_port(), max_restarts=2, restart_window=120,
                     env=subprocess_env(), log=messages.append).start()
    pids = [sup.workers[0].pid]
    sup._thread.join(120)
    assert not sup._thread.is_alive()
    assert "worker 0 exited 3 times within 120 s (last: exit code 3); giving up" == sup.failure
    assert sum("restarting it" in m for m in messages) == 2
    assert not sup.dir.exists() and not sup.workers[0].alive() and sup.nginx.poll() is not None
    assert not any(alive(p) for p in pids)

def test_a_stop_while_starting_is_a_clean_stop(tmp_path):
    "SIGTERM while the workers start: they are stopped, nothing is left, and the command exits 0 (it was asked to)."
    proc = subprocess.Popen([*ORWD, "serve", TARGET, "--workers", "2", "--port", str(free_port())], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=subprocess_env(), text=True)
    deadline = time.monotonic() + 60
    while not any("--uds" in cmdline(p) for p in children(proc.pid)) and time.monotonic() < deadline: time.sleep(0.02)
    procs = children(proc.pid)
    assert procs, "no worker was started"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and not [p for p in procs if alive(p)]
