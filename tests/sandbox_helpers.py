"""Shared helpers of the sandbox tests: a private state directory per test, and counting what sandboxes leave behind."""
from __future__ import annotations

import contextlib, http.server, os, shutil, subprocess, tempfile, threading, time
from pathlib import Path

import pytest

from openreward.sandbox import SandboxSettings
from openreward.sandbox_local import CGROUP_ROOT, LocalBackend, _CONTROLLERS, _own_cgroup

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")

def settings(**kw) -> SandboxSettings:
    return SandboxSettings(**({"environment": "tests/sandbox", "image": "python:3.11-slim", "machine_size": "0.5:0.5"} | kw))

def state_dir() -> Path:
    "A sandbox state directory the sandbox uids can traverse (pytest's tmp_path is 0700 all the way up)."
    d = Path(tempfile.mkdtemp(prefix="orw-sbx-", dir="/tmp"))
    os.chmod(d, 0o711)
    return d

def processes_of(uid: int) -> list[int]:
    "Live processes owned by host uid `uid`."
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if p.stat().st_uid == uid: out.append(int(p.name))
            except OSError: pass
    return out

def cgroup_dirs(name_part: str = "") -> list[Path]:
    "Sandbox cgroup directories (under this process's cgroups) whose name contains `name_part`."
    found = []
    for ctl in _CONTROLLERS:
        own = _own_cgroup(ctl)
        if own is None: continue
        base = CGROUP_ROOT / ctl / own.lstrip("/")
        if base.is_dir(): found += [d for d in base.iterdir() if d.is_dir() and d.name.startswith("openreward-") and name_part in d.name]
    return found

def leftovers(root: Path, uids: list[int]) -> dict[str, list]:
    "Everything sandboxes of `root` (and the given uids) still hold: empty lists when nothing leaked."
    return {"processes": [p for u in uids for p in processes_of(u)],
            "cgroups": [d for d in cgroup_dirs() if any(e.name in d.name for e in root.iterdir() if not e.name.startswith("."))]
                       if root.exists() else [],
            "dirs": sorted(e.name for e in root.iterdir() if not e.name.startswith(".")) if root.exists() else []}

def all_cgroups_of(root_names: list[str]) -> list[Path]:
    return [d for d in cgroup_dirs() if any(n in d.name for n in root_names)]

class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self): self._answer()
    def do_POST(self): self._answer()
    def _answer(self):
        body = f"{self.server.name} {self.command} {self.path}".encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass

@contextlib.contextmanager
def http_server(name: str):
    "A tiny HTTP server on 127.0.0.1 that answers `<name> <method> <path>`; yields its port."
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.name = name
    t = threading.Thread(target=srv.serve_forever, daemon=True); t.start()
    try: yield srv.server_address[1]
    finally: srv.shutdown(); srv.server_close()

def busybox_rootfs(d: Path) -> Path:
    "A root filesystem made of Debian's busybox-static, `bash` running busybox's shell (an image for the Docker tests)."
    (d / "bin").mkdir(parents=True); (d / "tmp").mkdir(); (d / "etc").mkdir(); (d / "workspace").mkdir()
    os.chmod(d / "tmp", 0o1777)
    shutil.copy("/bin/busybox", d / "bin" / "busybox")
    for applet in subprocess.run(["/bin/busybox", "--list"], capture_output=True, text=True).stdout.split():
        if applet not in ("busybox", "bash"): os.symlink("busybox", d / "bin" / applet)
    (d / "bin" / "bash").write_text('#!/bin/sh\nexec /bin/sh "$@"\n'); os.chmod(d / "bin" / "bash", 0o755)
    (d / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n")
    return d

IMAGE = "orw-busybox:test"

@contextlib.contextmanager
def own_dockerd():
    "Start a private dockerd (no iptables, no forwarding, no bridge; its own directories and socket), import the busybox\
 image; yield the socket path; stop the daemon by its PID."
    if shutil.which("dockerd") is None or not Path("/bin/busybox").exists(): pytest.skip("docker.io and busybox-static are needed")
    d = Path(tempfile.mkdtemp(prefix="orwdk-", dir="/tmp"))
    sock = d / "docker.sock"
    log = open(d / "dockerd.log", "wb")
    proc = subprocess.Popen(["dockerd", "--data-root", str(d / "data"), "--exec-root", str(d / "exec"), "-H", f"unix://{sock}",
                             "--pidfile", str(d / "docker.pid"), "--iptables=false", "--ip-forward=false", "--bridge=none"],
                            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:
        import httpx
        client = httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), base_url="http://docker/v1.41", timeout=60)
        deadline = time.monotonic() + 60
        while True:
            try:
                if client.get("/_ping").status_code == 200: break
            except httpx.TransportError: pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("dockerd did not start:\n" + (d / "dockerd.log").read_text()[-3000:])
            time.sleep(0.1)
        import io, tarfile
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t: t.add(busybox_rootfs(d / "rootfs"), arcname=".")
        r = client.post("/images/create", params={"fromSrc": "-", "repo": IMAGE.split(":")[0], "tag": IMAGE.split(":")[1],
                                                  "changes": "ENV PATH=/bin"}, content=buf.getvalue())
        assert r.status_code == 200, r.text
        client.close()
        yield str(sock)
    finally:
        proc.terminate()
        try: proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill(); proc.wait(10)
        log.close()
        subprocess.run(["umount", "-R", str(d / "exec")], capture_output=True)
        subprocess.run(["umount", "-R", str(d / "data")], capture_output=True)
        shutil.rmtree(d, ignore_errors=True)
