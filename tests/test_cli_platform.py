"""The platform commands of the installed `orwd`, against the fake platform API (tests/fixtures/fake_platform.py) on
127.0.0.1: the reference's requests, bodies and outputs, and every error path (missing key, HTTP errors read from
`detail` or `message`, an unreachable API, bad arguments, partial uploads, `new -y` asking nothing)."""
from __future__ import annotations

import json, os, stat, subprocess, sys
from pathlib import Path

import pytest
import yaml

from conftest import free_port, subprocess_env
from openreward.demo import serve_in_thread

sys.path.insert(0, str(Path(__file__).parent/"fixtures"))
from fake_platform import FakePlatform  # noqa: E402

ORWD = str(Path(sys.executable).parent/"orwd")

@pytest.fixture(scope="module")
def served():
    fake = FakePlatform()
    with serve_in_thread(fake.app) as url:
        yield fake, url

@pytest.fixture
def fake(served):
    "A fresh fake platform state for each test (the server stays up)."
    f, url = served
    f.__init__()
    return f

@pytest.fixture
def run(served, tmp_path):
    "run(*args, input=None, **env) -> CompletedProcess of `orwd args` against the fake, in tmp_path."
    _, url = served
    def run(*args: str, input: str = "", cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess:
        e = subprocess_env(OPENREWARD_API_URL=url, OPENREWARD_API_KEY="sk-test", OPENREWARD_URL="http://web.invalid")
        e.pop("NO_COLOR", None)
        e.update(env)
        return subprocess.run([ORWD, *args], input=input, capture_output=True, text=True, timeout=60, cwd=cwd or tmp_path, env=e)
    return run

def paths(fake: FakePlatform) -> list[str]: return [f"{m} {p}" for m, p, _ in fake.requests]

# --- common behaviour -----------------------------------------------------------------------------------------

def test_missing_key(run, fake):
    for args in (["whoami"], ["list"], ["get", "alice/counter"], ["upload", "alice/counter", "x"]):
        r = run(*args, OPENREWARD_API_KEY="")
        assert r.returncode == 1 and r.stderr.strip() == "Error: OPENREWARD_API_KEY environment variable is not set", args
    assert fake.requests == []

def test_http_errors_read_detail_and_message(run, fake):
    r = run("get", "alice/nope")
    assert (r.returncode, r.stderr.strip()) == (1, "Error 404: Environment not found")
    fake.message_errors = True
    r = run("get", "alice/nope")
    assert (r.returncode, r.stderr.strip()) == (1, "Error 404: Environment not found")
    r = run("whoami", OPENREWARD_API_KEY="sk-wrong")
    assert (r.returncode, r.stderr.strip()) == (1, "Error 401: Invalid API key")

def test_unreachable_api_is_one_line(run, fake):
    port = free_port()
    for args in (["whoami"], ["list"], ["runs"]):
        r = run(*args, OPENREWARD_API_URL=f"http://127.0.0.1:{port}")
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
        assert r.stderr.startswith(f"Error: cannot reach the OpenReward API at http://127.0.0.1:{port} (ConnectError")

def test_bad_reference(run, fake):
    for ref in ("nope", "/x", "x/", ""):
        r = run("get", ref)
        assert (r.returncode, r.stderr.strip()) == (1, f"Error: expected <owner/name>, got {ref!r}")
    assert fake.requests == []

def test_bad_arguments_exit_2(run):
    assert run("link", "a/b", "a/b", "--cpu-memory", "3:3").returncode == 2
    assert run("update", "alice/counter", "--private", "--public").returncode == 2
    assert run("create", "x").returncode == 2  # --description is required

# --- namespaces and usage ---------------------------------------------------------------------------------------

def test_whoami(run, fake):
    r = run("whoami")
    assert r.returncode == 0 and r.stdout.splitlines() == ["Namespace: alice", "ID:        user-1", "Type:      user"]
    assert paths(fake) == ["GET /v1/namespace/current?type=org", "GET /v1/namespace/current?type=user"]
    r = run("whoami", "-o", "json", OPENREWARD_API_KEY="sk-org")
    assert json.loads(r.stdout) == {"name": "acme", "id": "org-1", "type": "org"}

def test_usage(run, fake):
    r = run("usage")
    assert r.returncode == 0 and "Usage 2026-11-01 to 2026-12-01" in r.stdout
    assert "search" in r.stdout and "1,200" in r.stdout and "$1.20" in r.stdout and "TOTAL" in r.stdout
    assert "5 requests are metered but not billed yet" in r.stdout
    r = run("usage", "--days", "7", "--daily", "--service", "search")
    assert "By day:" in r.stdout and "2026-11-30" in r.stdout
    assert paths(fake)[-1] == "GET /v1/billing/api-usage?days=7&granularity=daily&service=search"

# --- environments -----------------------------------------------------------------------------------------------

def test_create(run, fake):
    r = run("create", "fresh", "--description", "A new one", "--private", "--harbor")
    assert r.returncode == 0 and r.stdout.strip() == "Created environment: alice/fresh (id: env-fresh)"
    assert fake.requests[-2][:2] == ("GET", "/v1/namespace/current?type=user")
    assert fake.requests[-1] == ("POST", "/v1/environments", {"name": "fresh", "namespace": "alice", "description": "A new one",
                                                              "isPrivate": True, "isHarbor": True})
    r = run("create", "other", "--description", "d", "--namespace", "acme", "-o", "json")
    assert json.loads(r.stdout)["owner"] == "acme" and "isHarbor" not in fake.requests[-1][2]
    r = run("create", "fresh", "--description", "again")
    assert (r.returncode, r.stderr.strip()) == (1, "Error 409: Environment alice/fresh already exists")

def test_list(run, fake):
    r = run("list")
    assert r.returncode == 0 and r.stdout.strip().endswith("Showing 205 of 205 environments")
    assert paths(fake) == [f"GET /v1/environments?limit=100&offset={o}" for o in (0, 100, 200)]
    assert all(len(line) <= 80 for line in r.stdout.splitlines())
    assert r.stdout.splitlines()[0].split() == ["OWNER/NAME", "CONNECTED", "DESCRIPTION"]
    r = run("list", "--mine", "--search", "count")
    assert "alice/counter" in r.stdout and "yes" in r.stdout and "Showing 1 of 1 environments" in r.stdout
    assert paths(fake)[-1] == "GET /v1/environments?owner=alice&search=count&limit=100&offset=0"
    r = run("list", "--owner", "bob", "--limit", "5", "--offset", "10", "-o", "jsonl")
    rows = [json.loads(l) for l in r.stdout.splitlines()]
    assert [e["name"] for e in rows] == [f"env-{i:03d}" for i in range(10, 15)]
    assert run("list", "--owner", "nobody").stdout.strip() == "No environments found."

def test_get(run, fake):
    r = run("get", "alice/counter")
    assert r.returncode == 0
    lines = dict(l.split(":", 1) for l in r.stdout.splitlines())
    assert lines["Name"].strip() == "alice/counter" and lines["GitHub"].strip() == "connected"
    assert lines["Compute"].strip() == "1 CPU, 4 GB" and lines["Max Scale"].strip() == "10"
    r = run("get", "alice/counter", "-o", "yaml")
    assert yaml.safe_load(r.stdout) == fake.envs[("alice", "counter")]
    assert paths(fake)[-1] == "GET /v1/environments/alice/counter"

def test_update(run, fake):
    r = run("update", "alice/counter", "--description", "New text", "--public", "--arxiv-url", "", "--hf-url", "https://hf.co/x")
    assert r.returncode == 0 and r.stdout.strip() == "Updated environment: alice/counter"
    assert fake.requests[-1] == ("PUT", "/v1/environments/alice/counter/details",
                                 {"new_description": "New text", "new_is_private": False, "new_arxiv_url": None,
                                  "new_external_hf_url": "https://hf.co/x"})
    r = run("update", "alice/counter", "--max-scale", "3")
    assert r.returncode == 0 and "Updated deployment settings for alice/counter." in r.stdout
    assert fake.requests[-1] == ("PUT", "/v1/github/environments/env-counter",
                                 {"settings": {"cpuMemory": "1-4", "minScale": 0, "maxScale": 3, "concurrency": 500}})
    r = run("update", "alice/empty", "--max-concurrency", "5")
    assert r.returncode == 1 and "is not linked to GitHub" in r.stderr
    r = run("update", "alice/counter")
    assert (r.returncode, r.stderr.strip()) == (1, "Error: no updates specified. Use --name, --description, --private, etc.")

# --- GitHub link, deployments, logs -----------------------------------------------------------------------------

def test_link(run, fake):
    r = run("link", "alice/empty", "Alice/Counter", "--cpu-memory", "2:4", "--subdirectory", "env")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "Linked alice/empty to alice/counter (environment id: env-empty)"
    assert fake.requests[-1] == ("POST", "/v1/github/environments/alice/empty/connect",
                                 {"githubRepoId": 11, "githubInstallationId": 22, "subdirectory": "env",
                                  "settings": {"cpuMemory": "2-4", "minScale": 0, "maxScale": 10, "concurrency": 500}})
    r = run("link", "alice/empty", "alice/missing")
    assert r.returncode == 1 and "repo 'alice/missing' not found" in r.stderr and "  alice/other" in r.stderr
    fake.github_status = "noAuth"
    r = run("link", "alice/empty", "alice/counter")
    assert r.returncode == 1 and "install the OpenReward GitHub App: open https://github.example/authorize" in r.stderr
    assert paths(fake)[-1] == "GET /v1/github/install-url?redirectUrl=http%3A%2F%2Fweb.invalid"

def test_unlink(run, fake):
    r = run("unlink", "alice/counter")
    assert r.returncode == 0 and r.stdout.strip() == "Unlinked alice/counter from GitHub."
    assert paths(fake)[-1] == "DELETE /v1/github/environments/env-counter"
    r = run("unlink", "alice/counter")
    assert r.returncode == 0 and r.stdout.strip() == "alice/counter is not linked to GitHub."

def test_update_link(run, fake):
    r = run("update-link", "alice/counter", "--concurrency", "50", "--subdirectory", "")
    assert r.returncode == 0 and r.stdout.strip() == "Updated link settings for alice/counter."
    assert fake.requests[-1] == ("PUT", "/v1/github/environments/env-counter", {"settings": {"concurrency": 50}, "subdirectory": None})
    run("update-link", "alice/counter", "--max-scale", "2", "--cpu-memory", "0.5:1")
    assert fake.requests[-1][2] == {"settings": {"cpuMemory": "0.5-1", "maxScale": 2, "minScale": 0}}
    r = run("update-link", "alice/counter")
    assert r.returncode == 1 and "no updates specified" in r.stderr
    assert run("update-link", "alice/empty", "--max-scale", "1").stderr.strip() == "Error: alice/empty is not linked to GitHub."

def test_deployments_and_logs(run, fake):
    r = run("deployments", "alice/counter")
    assert r.stdout.splitlines()[1].split() == ["dep-1111", "ready", "main", "abcdef12", "2026-11-30T10:00:00Z"]
    r = run("deployments", "alice/empty")
    assert "No deployments found" in r.stdout and "orwd link alice/empty <github-repo>" in r.stdout
    r = run("logs", "alice/counter", "--limit", "2")
    assert r.stdout.splitlines()[0] == "Using latest deployment: dep-1111 (ready)"
    assert r.stdout.splitlines()[-1] == "[2026-11-30T10:00:00Z] [INFO] request 1"
    assert paths(fake)[-1] == "GET /v1/github/deployments/dep-1111aaaa2222/runtime-logs?limit=2"
    r = run("logs", "x/y", "--build", "--deployment-id", "dep-0000bbbb3333")
    assert "Successfully built" in r.stdout and paths(fake) [-1] == "GET /v1/github/deployments/dep-0000bbbb3333/logs"
    assert len(fake.requests) == 8  # 4 for deployments, 3 for logs, 1 for logs --deployment-id (no environment lookup)
    assert json.loads(run("logs", "alice/counter", "-o", "json").stdout)[0]["message"] == "request 0"
    assert json.loads(run("logs", "alice/empty", "-o", "json").stdout) == []

def test_task_builds(run, fake):
    r = run("task-builds", "alice/counter")
    assert "task-0" in r.stdout and "tb-1aaaa" in r.stdout and "error: exit 1" in r.stdout
    r = run("task-build-logs", "tb-1aaaaaaaa")
    assert r.stdout.splitlines()[0] == "Task: task-0 (status: built)" and "built in 3 s" in r.stdout
    r = run("task-build-logs", "tb-nope")
    assert (r.returncode, r.stderr.strip()) == (1, "Error 404: Task build not found")

# --- files ------------------------------------------------------------------------------------------------------

def test_upload_files_delete(run, fake, tmp_path):
    (tmp_path/"data"/"sub").mkdir(parents=True)
    (tmp_path/"data"/"a b.txt").write_text("hello")
    (tmp_path/"data"/"sub"/"c.json").write_text("{}")
    r = run("upload", "alice/counter", "data")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "Uploading 2 files to alice/counter..."
    assert "[1/2]" in r.stdout and "[2/2]" in r.stdout and r.stdout.strip().endswith("Uploaded 2 files")
    assert fake.files["env-counter"] == {"data/a b.txt": b"hello", "data/sub/c.json": b"{}"}
    post = next(b for m, p, b in fake.requests if p == "/v1/files/upload-urls")
    assert post == {"environmentId": "env-counter", "files": [{"fileName": "data/a b.txt", "contentType": "text/plain"},
                                                              {"fileName": "data/sub/c.json", "contentType": "application/json"}]}
    fake.page_size = 1  # one file a page: the listing follows the page tokens
    r = run("files", "alice/counter")
    assert "  data/" in r.stdout and "data/a b.txt" in r.stdout and "5 B" in r.stdout and "2 files, 1 folder" in r.stdout
    assert sum(p.startswith("GET /v1/files/env-counter") for p in paths(fake)) == 2
    r = run("delete-file", "alice/counter", "data/a b.txt")
    assert r.stdout.strip() == "Deleted 'data/a b.txt'" and paths(fake)[-1] == "DELETE /v1/files/env-counter/data%2Fa%20b.txt"
    r = run("delete-file", "alice/counter", "data", "--folder")
    assert r.stdout.strip() == "Deleted folder 'data' (1 file)" and paths(fake)[-1] == "DELETE /v1/files/env-counter/folder/data"
    assert run("files", "alice/counter").stdout.strip() == "No files found."
    r = run("delete-file", "alice/counter", "gone.txt")
    assert (r.returncode, r.stderr.strip()) == (1, "Error 404: File not found: gone.txt")

def test_upload_partial_failure_exits_1(run, fake, tmp_path):
    for n in ("a.txt", "b.txt", "c.txt"): (tmp_path/n).write_text(n)
    fake.fail_uploads = {"in/b.txt"}
    r = run("upload", "alice/counter", "a.txt", "b.txt", "c.txt", "--dest", "in/")
    assert r.returncode == 1
    assert "in/b.txt  FAILED: Error 500: <Error>InternalError</Error>" in r.stdout
    assert r.stdout.strip().endswith("Uploaded 2/3 files (1 failed)")
    r = run("upload", "alice/counter", "b.txt", "--dest", "in/", "-o", "json")
    assert r.returncode == 1
    assert json.loads(r.stdout) == {"uploaded": 0, "failed": 1, "total": 1, "failures": [{"file": "in/b.txt", "error": "Error 500: <Error>InternalError</Error>"}]}
    r = run("upload", "alice/counter", "missing.txt")
    assert (r.returncode, r.stderr.strip()) == (1, "Error: missing.txt does not exist")

# --- runs -------------------------------------------------------------------------------------------------------

def test_runs(run, fake):
    r = run("runs")
    assert r.stdout.splitlines()[0].split() == ["NAME", "ROLLOUTS", "AVG", "REWARD", "CREATED"]
    assert "baseline" in r.stdout and "0.500" in r.stdout and "Showing 2 of 2 runs" in r.stdout
    assert paths(fake)[-1] == "GET /v1/runs?limit=20&offset=0"
    run("runs", "--search", "tun", "--limit", "5", "--offset", "1")
    assert paths(fake)[-1] == "GET /v1/runs?limit=5&offset=1&search=tun"
    r = run("run", "run-2")
    assert "Avg reward:     -" in r.stdout and "Name:           tuned" in r.stdout
    r = run("rollouts", "run-1")
    assert "counter-t0" in r.stdout and "alice/counter" in r.stdout and "ro-2bbbb" in r.stdout and "Showing 2 of 2 rollouts" in r.stdout
    assert yaml.safe_load(run("rollouts", "run-1", "-o", "yaml").stdout) == fake.rollouts["run-1"]
    r = run("run", "run-404")
    assert (r.returncode, r.stderr.strip()) == (1, "Error 404: Run not found")

# --- new --------------------------------------------------------------------------------------------------------

def test_new_yes_never_prompts(run, fake, tmp_path):
    r = run("new", "quick", "--description", "Quick one", "-y", "--no-github", input="")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "> " not in r.stdout  # no prompt was shown
    assert (tmp_path/"quick"/"server.py").exists()
    assert fake.requests[-1] == ("POST", "/v1/environments", {"name": "quick", "namespace": "alice", "description": "Quick one", "isPrivate": False})
    assert "alice/quick (id: env-quick)" in r.stdout and "http://web.invalid/alice/quick" in r.stdout
    r = run("new", "other", "-y", "--no-github")
    assert r.returncode == 1 and "-y asks nothing, so give --description" in r.stdout and "> " not in r.stdout
    assert not (tmp_path/"other").exists()
    r = run("new", "quick", "--description", "again", "-y", "--no-github")
    assert r.returncode == 1 and "already exists" in r.stdout
    r = run("new", "x", "-y", "--description", "d", OPENREWARD_API_KEY="")
    assert r.returncode == 1 and "✗ OPENREWARD_API_KEY is not set" in r.stdout

def test_new_interactive_on_a_pipe(run, fake, tmp_path):
    answers = "\n".join(["piped", "notebook", "From a pipe", "y", "n", "", "", "y"]) + "\n"
    r = run("new", "--no-github", input=answers)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path/"piped"/"server.ipynb").exists()
    assert fake.requests[-1][2] == {"name": "piped", "namespace": "alice", "description": "From a pipe", "isPrivate": True}
    r = run("new", "--no-github", input="half\n")  # the input ends before every answer is given
    assert r.returncode == 1 and "end of input" in r.stderr and not (tmp_path/"half").exists()

def test_new_with_github(run, fake, tmp_path):
    "The four steps with a stand-in `gh` (records its arguments) and real git."
    bin_dir = tmp_path/"bin"; bin_dir.mkdir()
    gh = bin_dir/"gh"
    gh.write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path/'gh.log'}\n")
    gh.chmod(gh.stat().st_mode | stat.S_IEXEC)
    fake.repos.append({"fullName": "alice/linked", "id": 99, "installationId": 22})
    work = tmp_path/"work"; work.mkdir()
    r = run("new", "linked", "--description", "With GitHub", "-y", cwd=work, PATH=f"{bin_dir}:{os.environ['PATH']}",
            GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.invalid", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.invalid")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "[4/4]" in r.stdout and "Linked to alice/linked" in r.stdout
    assert (tmp_path/"gh.log").read_text().split() == ["repo", "create", "alice/linked", "--source", str(work/"linked"), "--public", "--push"]
    assert subprocess.run(["git", "-C", str(work/"linked"), "log", "--format=%s"], capture_output=True, text=True).stdout.strip() == "Initial scaffold from orwd new"
    assert fake.requests[-1] == ("POST", "/v1/github/environments/alice/linked/connect",
                                 {"githubRepoId": 99, "githubInstallationId": 22,
                                  "settings": {"cpuMemory": "1-4", "minScale": 0, "maxScale": 10, "concurrency": 500}})
