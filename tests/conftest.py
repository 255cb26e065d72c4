"""Shared pytest fixtures: free ports, real uvicorn servers in subprocesses, the reference SDK in its own venv.

Helpers append their own fixtures below the marked sections; please do not rewrite others' fixtures.
"""
from __future__ import annotations

import contextlib, fcntl, os, signal, socket, subprocess, sys, tempfile, time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent/"fixtures"
REFERENCE_VERSION = "0.1.167"
REFERENCE_VENV = REPO/".cache"/"reference-venv"
SERVE_EXAMPLES = FIXTURES/"serve_examples.py"
EXAMPLES_PY = REPO/"openreward"/"examples.py"

# ---------------------------------------------------------------------------------------------------------------
# Ports and subprocess servers
# ---------------------------------------------------------------------------------------------------------------

def free_port() -> int:
    "A TCP port on 127.0.0.1 that was free a moment ago."
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def subprocess_env(**extra: str) -> dict[str, str]:
    "A clean environment for child interpreters: no PYTHONPATH (it would mix the two `openreward`s), no update check."
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(OPENREWARD_DISABLE_UPDATE_CHECK="1", PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
    env.update(extra)
    return env

def stop_process(proc: subprocess.Popen, grace: float = 10.0) -> None:
    "Stop `proc` by its PID: SIGTERM, then SIGKILL after `grace` seconds."
    if proc.poll() is not None: return
    proc.send_signal(signal.SIGTERM)
    try: proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(grace)

@contextlib.contextmanager
def serve_subprocess(python: str | Path,   # interpreter to run (ours: sys.executable; reference: its venv's python)
                     script: str | Path,   # serve script, called as `python script 127.0.0.1 PORT *args`
                     *args: str,           # extra arguments for the script
                     timeout: float = 60,  # seconds to wait for `GET /health` to answer 200
                     env: dict[str, str] | None = None,  # extra environment variables
                     ) -> Iterator[tuple[str, subprocess.Popen]]:
    "Run a real uvicorn server in a subprocess on 127.0.0.1; yield `(base_url, popen)`, stop it by PID on exit."
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="orw-serve-") as tmp:
        out, err = open(Path(tmp)/"stdout", "w+b"), open(Path(tmp)/"stderr", "w+b")
        # cwd is the temp dir, so neither interpreter can pick up this checkout's `openreward` from the cwd
        proc = subprocess.Popen([str(python), str(script), "127.0.0.1", str(port), *args], cwd=tmp,
                                stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=subprocess_env(**(env or {})))
        def logs() -> str:
            err.flush(); err.seek(0); out.flush(); out.seek(0)
            return f"--- stderr ---\n{err.read().decode(errors='replace')[-8000:]}\n--- stdout ---\n{out.read().decode(errors='replace')[-2000:]}"
        base_url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"server {script} exited with {proc.returncode} before answering /health\n{logs()}")
                try:
                    if httpx.get(base_url+"/health", timeout=2).status_code == 200: break
                except httpx.TransportError: pass
                if time.monotonic() > deadline:
                    pytest.fail(f"server {script} did not answer /health within {timeout} s\n{logs()}")
                time.sleep(0.1)
            yield base_url, proc
            if proc.poll() is not None:
                pytest.fail(f"server {script} died during the test (exit {proc.returncode})\n{logs()}")
        finally:
            stop_process(proc)
            out.close(); err.close()

@contextlib.asynccontextmanager
async def asgi_lifespan(app):
    "Run an ASGI app's lifespan (startup on entry, shutdown on exit) the way uvicorn does, for in-process tests."
    import asyncio
    to_app, from_app = asyncio.Queue(), asyncio.Queue()
    task = asyncio.ensure_future(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
                                     to_app.get, from_app.put))
    await to_app.put({"type": "lifespan.startup"})
    msg = await from_app.get()
    assert msg["type"] == "lifespan.startup.complete", msg
    try: yield app
    finally:
        await to_app.put({"type": "lifespan.shutdown"})
        msg = await from_app.get()
        await task
        assert msg["type"] == "lifespan.shutdown.complete", msg

# ---------------------------------------------------------------------------------------------------------------
# The reference SDK (openreward==0.1.167 from PyPI) in its own virtualenv, never in ours: the package names collide.
# ---------------------------------------------------------------------------------------------------------------

def reference_version(python: Path) -> str | None:
    "The `openreward` version importable by `python` (run outside this checkout), or None."
    if not python.exists(): return None
    r = subprocess.run([str(python), "-P", "-c", "import importlib.metadata as m; print(m.version('openreward'))"],
                       capture_output=True, text=True, cwd=tempfile.gettempdir(), env=subprocess_env())
    return r.stdout.strip() if r.returncode == 0 else None

def ensure_reference_venv(venv: Path = REFERENCE_VENV, version: str = REFERENCE_VERSION) -> Path:
    "Create (once, under a file lock) a venv at `venv` with `openreward==version`; return its python."
    python = venv/"bin"/"python"
    if reference_version(python) == version: return python
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent/"reference-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if reference_version(python) == version: return python
        if not python.exists(): subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        r = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                            f"openreward=={version}"], capture_output=True, text=True, cwd=tempfile.gettempdir(),
                           env=subprocess_env())
        if r.returncode != 0:
            msg = (f"!!! REFERENCE SDK UNAVAILABLE: `pip install openreward=={version}` into {venv} failed; "
                   f"interop tests are SKIPPED, not passed !!!\n{r.stderr[-3000:]}")
            sys.stderr.write("\n"+msg+"\n")
            pytest.skip(msg)
    return python

@pytest.fixture(scope="session")
def reference_python() -> Path:
    "Path to the python of a venv holding the reference SDK (openreward 0.1.167)."
    return ensure_reference_venv()

def run_reference_script(python: Path, script: str | Path, *args: str, timeout: float = 300,
                         env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    "Run a client script under the reference venv (cwd outside the checkout); fail the test with its output if it fails."
    with tempfile.TemporaryDirectory(prefix="orw-ref-") as tmp:
        r = subprocess.run([str(python), str(script), *args], capture_output=True, text=True, cwd=tmp,
                           timeout=timeout, env=subprocess_env(**(env or {})))
    if r.returncode != 0:
        pytest.fail(f"{script} exited with {r.returncode}\n--- stderr ---\n{r.stderr[-8000:]}\n--- stdout ---\n{r.stdout[-4000:]}")
    return r

# ---------------------------------------------------------------------------------------------------------------
# Our example environments (openreward/examples.py), served by the reference SDK and by ours.
# ---------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def reference_server(reference_python) -> Iterator[str]:
    "Base URL of the REFERENCE server (its own venv, real uvicorn) serving our example environments."
    with serve_subprocess(reference_python, SERVE_EXAMPLES, str(EXAMPLES_PY)) as (url, _):
        yield url

@pytest.fixture(scope="module")
def ours_server() -> Iterator[str]:
    "Base URL of OUR server (this venv, real uvicorn) serving the same example environments."
    with serve_subprocess(sys.executable, SERVE_EXAMPLES, str(EXAMPLES_PY)) as (url, _):
        yield url

# ---------------------------------------------------------------------------------------------------------------
# The scriptable fake ORS server (tests/fixtures/fake_ors_server.py), shared by the client and transport tests
# ---------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fake():
    "A `FakeORS` on real uvicorn (127.0.0.1, a free port), one per test module; its base URL is `fake.url`."
    sys.path.insert(0, str(FIXTURES))
    from fake_ors_server import FakeORS, serve_in_thread
    f = FakeORS()
    with serve_in_thread(f.app) as url:
        f.url = url
        yield f

# ---------------------------------------------------------------------------------------------------------------
# Inspect AI with the inspect-openreward bridge (PyPI), in a cached venv of its own; our package comes from this
# checkout through PYTHONPATH, so the cached venv never holds a stale copy of ours.
# ---------------------------------------------------------------------------------------------------------------

INSPECT_VENV = REPO/".cache"/"inspect-venv"
INSPECT_AI_VERSION = "0.3.285"
INSPECT_OPENREWARD_VERSION = "0.3.0"

def ensure_inspect_venv(venv: Path = INSPECT_VENV) -> Path:
    "Create (once, under a file lock) a venv with inspect-ai, inspect-openreward (--no-deps) and our requirements."
    import configparser
    python, stamp = venv/"bin"/"python", venv/"orw-ready"
    cfg = configparser.ConfigParser(); cfg.read(REPO/"settings.ini")
    wanted = f"inspect-ai=={INSPECT_AI_VERSION} inspect-openreward=={INSPECT_OPENREWARD_VERSION} {cfg['DEFAULT']['requirements']}"
    if stamp.exists() and stamp.read_text() == wanted: return python
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent/"inspect-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists() and stamp.read_text() == wanted: return python
        if not python.exists(): subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        for args in ([f"inspect-ai=={INSPECT_AI_VERSION}", *cfg["DEFAULT"]["requirements"].split()],
                     ["--no-deps", f"inspect-openreward=={INSPECT_OPENREWARD_VERSION}"]):
            r = subprocess.run(pip + args, capture_output=True, text=True, cwd=tempfile.gettempdir(), env=subprocess_env())
            if r.returncode != 0:
                msg = f"!!! INSPECT AI UNAVAILABLE: `pip install {' '.join(args)}` failed; the test is SKIPPED !!!\n{r.stderr[-3000:]}"
                sys.stderr.write("\n" + msg + "\n")
                pytest.skip(msg)
        stamp.write_text(wanted)
    return python

@pytest.fixture(scope="session")
def inspect_python() -> Path:
    "Path to the python of a venv holding Inspect AI and inspect-openreward (our openreward comes via PYTHONPATH)."
    return ensure_inspect_venv()
