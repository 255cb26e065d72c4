"""TEST DOUBLE of the sandbox API (`AsyncSandboxesAPI`'s public coroutines) over a temp directory and subprocess.

NOT a sandbox and never shipped: no isolation at all. It exists so the toolsets' behaviour can be tested before
the real local (bubblewrap) backend lands, with the semantics the spec gives the real one: each `run` is a fresh
`/bin/bash` reading its script from stdin (never `bash -c`, so no E2BIG) started in the workspace; stderr merged;
output rstripped and cut at `max_bytes` characters (`truncated`); the whole process group killed at the deadline
(return code 124, `timed_out`). Relative paths resolve against the workspace, like the image's working directory.
"""
from __future__ import annotations

import asyncio, hashlib, os, shutil, signal, tempfile
from dataclasses import dataclass
from pathlib import Path


class RunResult:
    "What `run` answers: output, return code, and whether it was cut or killed."
    def __init__(self, output: str, return_code: int, truncated: bool = False, timed_out: bool = False, sanitised: bool = True):
        self.output, self.return_code, self.truncated, self.timed_out, self.sanitised = output, return_code, truncated, timed_out, sanitised
    def __iter__(self): return iter((self.output, self.return_code))
    def __repr__(self): return f"RunResult(return_code={self.return_code}, truncated={self.truncated}, timed_out={self.timed_out}, output={self.output[:50]!r})"


@dataclass(frozen=True)
class FileTransferResult:
    size: int
    sha256: str


class FileTransferError(RuntimeError):
    "A transfer that could not be done (missing file, not a regular file)."


class SandboxDouble:
    "Stand-in for `AsyncSandboxesAPI` in tests: same coroutines, a temp directory as its workspace, NO isolation."
    def __init__(self, workspace: str | os.PathLike | None = None):
        self._own = workspace is None
        self.workspace = Path(workspace) if workspace else None
        self.sid: str | None = None

    async def start(self) -> None:
        if self.workspace is None: self.workspace = Path(tempfile.mkdtemp(prefix="orw-double-"))
        self.workspace.mkdir(parents=True, exist_ok=True)
        self.sid = f"double-{os.getpid()}-{id(self):x}"

    async def stop(self) -> None:
        if self._own and self.workspace is not None: shutil.rmtree(self.workspace, ignore_errors=True)

    async def __aenter__(self): await self.start(); return self
    async def __aexit__(self, *exc): await self.stop()

    def _need(self) -> None:
        if self.sid is None: raise RuntimeError("Sandbox not started. Call start() or use as context manager.")

    def _path(self, p: str) -> Path:
        return Path(p) if p.startswith("/") else self.workspace/p

    async def run(self, cmd: str, timeout: float | None = 300, max_bytes: int | None = 50_000, sanitise: bool = True) -> RunResult:
        self._need()
        proc = await asyncio.create_subprocess_exec("/bin/bash", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.STDOUT, cwd=self.workspace, start_new_session=True)
        timed_out = False
        try:
            out, _ = await asyncio.wait_for(proc.communicate(cmd.encode()), timeout)
        except asyncio.TimeoutError:
            timed_out = True
            try: os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError: pass
            out = b""
            try: out = await asyncio.wait_for(proc.stdout.read(), 5)
            except Exception: pass
            await proc.wait()
        text = out.decode("utf-8", "replace").rstrip()
        truncated = max_bytes is not None and len(text) > max_bytes
        if truncated: text = text[:max_bytes]
        return RunResult(text, 124 if timed_out else proc.returncode, truncated, timed_out)

    async def check_run(self, cmd: str, timeout: float | None = 300, max_bytes: int | None = 50_000, sanitise: bool = True) -> str:
        r = await self.run(cmd, timeout, max_bytes, sanitise)
        if r.return_code != 0: raise RuntimeError(f"Command failed: {cmd}\n{r.output}")
        return r.output

    def _regular(self, container_path: str) -> Path:
        p = self._path(container_path)
        if not p.exists(): raise FileTransferError(f"Cannot download {container_path}: no such file")
        if not p.is_file(): raise FileTransferError(f"Cannot download {container_path}: not a regular file")
        return p

    async def download(self, container_path: str, max_size: int | None = 268435456) -> bytes:
        self._need()
        p = self._regular(container_path)
        if max_size is not None and p.stat().st_size > max_size:
            raise FileTransferError(f"{container_path} is {p.stat().st_size} bytes, over the {max_size}-byte download limit")
        return p.read_bytes()

    async def upload_from(self, local_path: str, container_path: str) -> FileTransferResult:
        self._need()
        data = Path(local_path).read_bytes()
        dst = self._path(container_path)
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(data)
        return FileTransferResult(len(data), hashlib.sha256(data).hexdigest())

    async def upload(self, local_path: str, container_path: str) -> None:
        await self.upload_from(local_path, container_path)

    async def stat_file(self, container_path: str, sha256: bool = False) -> dict:
        self._need()
        p = self._regular(container_path)
        out = {"size": p.stat().st_size}
        if sha256: out["sha256"] = hashlib.sha256(p.read_bytes()).hexdigest()
        return out


# The sandbox the toolset tests run on: the real local backend once this checkout has one, else the double above.
try:
    from openreward.sandbox import AsyncSandboxesAPI as _Real  # noqa: F401  (the `sandbox` branch's API)
    REAL_BACKEND = False  # set by new_sandbox() below once the local backend is wired in
except ImportError:
    REAL_BACKEND = False

def new_sandbox():
    "A fresh, unstarted sandbox with the async sandbox API."
    return SandboxDouble()
