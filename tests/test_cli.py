"""The installed `orwd` command, run as a subprocess: init + serve + explore + play + check on generated projects,
both clients solving a generated environment, and the exit codes and messages of the building commands."""
from __future__ import annotations

import contextlib, json, os, subprocess, sys, tempfile, textwrap, time
from pathlib import Path

import httpx
import pytest

from conftest import free_port, run_reference_script, stop_process, subprocess_env

ORWD = str(Path(sys.executable).parent/"orwd")

def orwd(*args: str, cwd: Path | str | None = None, input: str | None = None, timeout: float = 120, exe: str = ORWD,
         **env: str) -> subprocess.CompletedProcess:
    "Run the installed `orwd` with `args`; stdin is closed unless `input` is given."
    return subprocess.run([exe, *args], cwd=cwd, input=input if input is not None else "", capture_output=True, text=True,
                          timeout=timeout, env=subprocess_env(**env))

@contextlib.contextmanager
def orwd_serve(*args: str, cwd: Path, timeout: float = 60, exe: str = ORWD) -> tuple[str, subprocess.Popen, Path]:
    "Run `orwd serve ARGS --port P` in `cwd` until /health answers; yield (url, process, stdout file); stop it by PID."
    port = free_port()
    out = Path(tempfile.mkdtemp(prefix="orwd-serve-"))/"out"
    with open(out, "w") as f:
        proc = subprocess.Popen([exe, "serve", *args, "--port", str(port)], cwd=cwd, stdout=f, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=subprocess_env())
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None: pytest.fail(f"orwd serve exited with {proc.returncode}:\n{out.read_text()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(url + "/health", timeout=2).status_code == 200: break
            if time.monotonic() > deadline: pytest.fail(f"orwd serve did not answer within {timeout} s:\n{out.read_text()}")
            time.sleep(0.1)
        yield url, proc, out
    finally:
        stop_process(proc)

def test_help_and_usage_errors():
    r = orwd("--help")
    assert r.returncode == 0 and "serve" in r.stdout and "check" in r.stdout and "upload" in r.stdout
    r = orwd()
    assert r.returncode == 2 and "required: COMMAND" in r.stderr
    r = orwd("play", "--help")
    assert r.returncode == 0 and "example:\n  printf" in r.stdout
    r = orwd("tasks", "--port")
    assert r.returncode == 2

def test_init_refuses_existing(tmp_path):
    assert orwd("init", "demo", cwd=tmp_path).returncode == 0
    r = orwd("init", "demo", cwd=tmp_path)
    assert r.returncode == 2 and "already exists" in r.stderr

def test_sandbox_project_flow(tmp_path):
    "The sandbox template, as generated, serves and is played on the local sandbox backend: no key, no service."
    r = orwd("init", "line-count", "--template", "sandbox", cwd=tmp_path)
    assert r.returncode == 0 and "Files: Dockerfile, server.py, requirements.txt, README.md" in r.stdout
    with orwd_serve("server.py", cwd=tmp_path/"line-count") as (url, proc, out):
        assert "linecount (default): answer(answer), bash(command)" in out.read_text()
        r = orwd("play", url, input='bash {"command": "wc -l < data.txt; id -u"}\nanswer {"answer": "3"}\n')
        assert r.returncode == 0, r.stdout + r.stderr
        assert "(exit 0)" in r.stdout and "Correct!" in r.stdout and "total reward 1.0" in r.stdout
        assert "\n0\n" not in r.stdout.split("(exit 0)")[0]  # the command ran as an unprivileged uid, not root
        r = orwd("check", url)
        assert r.returncode == 0 and ", 0 failed" in r.stdout, r.stdout
        assert proc.poll() is None

def _explore(url: str, solution: str = "4") -> None:
    "tasks, tools, prompt, play (scripted, a wrong then a right answer) and check against a served basic environment."
    r = orwd("tasks", url)
    assert r.returncode == 0, r.stderr
    assert "What is 2+2?" in r.stdout and "What is 2*4?" in r.stdout and "2 tasks" in r.stdout
    r = orwd("tasks", url, "--split", "test", "-o", "json")
    assert [t["task"]["solution"] for t in json.loads(r.stdout)] == ["8"]
    r = orwd("tools", url)
    assert r.returncode == 0 and "answer" in r.stdout and "answer: string" in r.stdout
    r = orwd("prompt", url, "--task", "0")
    assert r.stdout.strip() == "What is 2+2?"
    r = orwd("play", url, input=f'nope {{}}\nanswer {{"answer": not json}}\nanswer {{"answer": "{solution}"}}\n')
    assert r.returncode == 0, r.stderr
    assert "no tool 'nope'" in r.stdout and "not JSON" in r.stdout
    assert "Correct!" in r.stdout and "reward=1.0 finished=True" in r.stdout and "total reward 1.0" in r.stdout
    r = orwd("play", url, "--split", "test", input="answer\n5\n")  # field by field: answer = "5" (wrong)
    assert "Wrong!" in r.stdout and "reward=0.0 finished=True" in r.stdout
    r = orwd("check", url)
    assert r.returncode == 0 and ", 0 failed" in r.stdout, r.stdout

def test_basic_project_flow(tmp_path, reference_python):
    "orwd init demo && cd demo && orwd serve server.py; explore it; both clients solve a task on it."
    r = orwd("init", "demo", cwd=tmp_path)
    assert r.returncode == 0 and "Created environment 'demo'" in r.stdout
    assert "Files: Dockerfile, server.py, requirements.txt, README.md" in r.stdout
    project = tmp_path/"demo"
    assert "class Demo(Environment)" in (project/"server.py").read_text()
    with orwd_serve("server.py", cwd=project) as (url, proc, out):
        banner = out.read_text()
        assert f"Serving 1 environment at {url}" in banner and "demo (default): answer(answer)" in banner
        _explore(url)
        # our client, in this venv
        ours = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
            from openreward import OpenReward
            with OpenReward() as c:
                env = c.environments.get("demo", base_url="{url}")
                task = env.list_tasks("test")[0]
                with env.session(task) as s:
                    out = s.call_tool("answer", {{"answer": task.task_spec["solution"]}})
                print(out.reward, out.finished)""")], capture_output=True, text=True, timeout=60, env=subprocess_env())
        assert ours.stdout.split() == ["1.0", "True"], ours.stderr
        # the reference client, in its own venv
        script = tmp_path/"ref_client.py"
        script.write_text(textwrap.dedent(f"""
            from openreward import OpenReward
            client = OpenReward(api_key="", base_url="{url}")
            env = client.environments.get(name="demo", base_url="{url}")
            task = env.list_tasks("train")[0]
            with env.session(task=task) as s:
                prompt = s.get_prompt()
                out = s.call_tool("answer", {{"answer": "4"}})
            print(prompt[0].text, out.reward, out.finished)"""))
        ref = run_reference_script(reference_python, script)
        assert ref.stdout.split()[-2:] == ["1.0", "True"] and "What is 2+2?" in ref.stdout
        assert proc.poll() is None

def test_notebook_project_flow(tmp_path):
    r = orwd("init", "word-count", "--template", "notebook", cwd=tmp_path)
    assert r.returncode == 0 and "server.ipynb" in r.stdout
    project = tmp_path/"word-count"
    before = (project/"server.py").read_text()
    (project/"server.py").unlink()
    r = orwd("export", "server.ipynb", cwd=project)
    assert r.returncode == 0 and (project/"server.py").read_text() == before
    with orwd_serve("server.py", cwd=project) as (url, _, out):
        assert "wordcount (default)" in out.read_text()
        _explore(url)

@pytest.mark.slow
def test_notebook_template_lesson_runs(tmp_path):
    "The generated notebook's lesson cell serves the environment and plays a task when the notebook is executed."
    pytest.importorskip("nbclient", reason="needs Jupyter (a dev requirement; the wheel check installs only the library)")
    assert orwd("init", "nb-env", "--template", "notebook", cwd=tmp_path).returncode == 0
    r = subprocess.run([str(Path(sys.executable).parent/"jupyter"), "execute", "--output=executed.ipynb", "server.ipynb"],
                       cwd=tmp_path/"nb-env", capture_output=True, text=True, timeout=300, env=subprocess_env())
    assert r.returncode == 0, r.stderr[-3000:]
    cells = json.loads((tmp_path/"nb-env"/"executed.ipynb").read_text())["cells"]
    assert "Correct! 1.0 True" in "".join(o.get("text", "") if isinstance(o.get("text"), str) else "".join(o.get("text", []))
                                          for o in cells[-1]["outputs"])

def test_serve_targets_and_loopback(tmp_path):
    "A module target with :NAME, a bad target's one-line error, and the loopback default."
    with orwd_serve("openreward.examples:ENVIRONMENTS", cwd=tmp_path) as (url, _, out):
        banner = out.read_text()
        assert url.startswith("http://127.0.0.1:")
        assert "Serving 4 environments" in banner and "counter (default): increment(amount)" in banner
        assert "workbench: crash(), draw(" in banner and "submit (terminal)" in banner
        assert orwd("tasks", url, "--variant", "bitwisearithmetic", "-o", "json").returncode == 0
        r = orwd("tasks", url, "--split", "nope")
        assert r.returncode == 1 and "no split 'nope'" in r.stderr
    r = orwd("serve", "missing.py", cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.strip() == "Error: no such file: missing.py"
    (tmp_path/"bad.py").write_text("raise RuntimeError('boom')\n")
    r = orwd("serve", "bad.py", cwd=tmp_path)
    assert r.returncode == 1 and "cannot load bad.py: RuntimeError: boom" in r.stderr and "Traceback" not in r.stderr

def test_serve_refuses_a_broken_environment(tmp_path):
    "A definition error is reported before anything claims to be serving."
    (tmp_path/"nolist.py").write_text("from openreward.environments import Environment\nclass NoList(Environment):\n    pass\n")
    r = orwd("serve", "nolist.py", cwd=tmp_path)
    assert r.returncode == 1 and "does not implement list_splits, list_tasks" in r.stderr and "Serving" not in r.stdout

def test_explore_unreachable():
    r = orwd("tasks", f"http://127.0.0.1:{free_port()}")
    assert r.returncode == 1 and "cannot reach the ORS server" in r.stderr and "Traceback" not in r.stderr

@pytest.mark.slow
def test_serve_reload(tmp_path):
    "--reload picks up an edit of server.py without restarting by hand."
    assert orwd("init", "demo", cwd=tmp_path).returncode == 0
    project = tmp_path/"demo"
    with orwd_serve("server.py", "--reload", cwd=project) as (url, proc, out):
        assert "Reloading on changes" in out.read_text()
        assert "What is 2+2?" in orwd("prompt", url).stdout
        src = project/"server.py"
        src.write_text(src.read_text().replace("What is 2+2?", "What is 3+3?"))
        deadline = time.monotonic() + 60
        while "What is 3+3?" not in orwd("prompt", url).stdout:
            assert time.monotonic() < deadline, f"no reload within 60 s:\n{out.read_text()}"
            time.sleep(0.5)

def test_no_colour_on_a_pipe_and_with_no_color(tmp_path):
    "Piped output has no escape codes; NO_COLOR turns colour off even on a terminal (checked through a pty)."
    r = orwd("init", "demo", cwd=tmp_path)
    assert "\x1b[" not in r.stdout
    import pty
    def on_tty(**env: str) -> bytes:
        pid, fd = pty.fork()
        if pid == 0:
            os.chdir(tmp_path)
            os.execve(ORWD, [ORWD, "new", "--no-github"], subprocess_env(**env) | {"OPENREWARD_API_KEY": ""})
        chunks = []
        with contextlib.suppress(OSError):
            while (data := os.read(fd, 4096)): chunks.append(data)
        os.waitpid(pid, 0)
        return b"".join(chunks)
    assert b"\x1b[" in on_tty()
    assert b"\x1b[" not in on_tty(NO_COLOR="1")

REPO = Path(__file__).resolve().parent.parent

@pytest.mark.slow
def test_fresh_virtualenv(tmp_path):
    "pip install the package into a new virtualenv; then init, serve, tasks, play (scripted) and check with its orwd."
    if not (REPO/"setup.py").exists(): pytest.skip("needs the source tree (the wheel check runs the tests without it)")
    venv = tmp_path/"venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    r = subprocess.run([str(venv/"bin"/"pip"), "install", "-q", "--disable-pip-version-check", str(REPO)],
                       capture_output=True, text=True, timeout=900, env=subprocess_env())
    assert r.returncode == 0, r.stderr[-3000:]
    exe = str(venv/"bin"/"orwd")
    r = orwd("init", "demo", cwd=tmp_path, exe=exe)
    assert r.returncode == 0, r.stderr
    with orwd_serve("server.py", cwd=tmp_path/"demo", exe=exe) as (url, _, _out):
        assert "What is 2+2?" in orwd("tasks", url, exe=exe).stdout
        r = orwd("play", url, input='answer {"answer": "4"}\n', exe=exe)
        assert "Correct!" in r.stdout and "total reward 1.0" in r.stdout
        r = orwd("check", url, exe=exe)
        assert r.returncode == 0 and ", 0 failed" in r.stdout, r.stdout
