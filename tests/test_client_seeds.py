"""The documentation's programs (tests/fixtures/client_seeds, obvious bugs fixed and marked) run unchanged in a
subprocess of our venv against a real server serving our example environments, and print what the docs say."""
import os, subprocess, sys
from pathlib import Path

import pytest

from conftest import subprocess_env

SEEDS = Path(__file__).parent/"fixtures"/"client_seeds"
SERVERS = ["ours_server", "reference_server"]

@pytest.fixture(params=SERVERS)
def server(request):
    return request.getfixturevalue(request.param)

def run_seed(name: str, url: str) -> list[str]:
    env = subprocess_env(ORS_URL=url, OPENREWARD_SESSION_URL=url)
    r = subprocess.run([sys.executable, str(SEEDS/name)], capture_output=True, text=True, timeout=120, env=env, cwd=SEEDS)
    assert r.returncode == 0, f"{name} failed:\n{r.stderr[-4000:]}"
    return r.stdout.splitlines()

def test_sync_client_seed(server):
    assert run_seed("async_client_sync.py", server) == ["count=1 0.0 False"]

def test_async_client_seed(server):
    assert run_seed("async_client_async.py", server) == ["count=1 0.0 False"]

def test_parallel_agents_seed(server):
    assert run_seed("async_client_parallel.py", server) == ["[1.0]"]

def test_multiple_environments_seed(server):
    assert run_seed("multiple_environments.py", server) == [
        "Basic tasks: 2", "Bitwise tasks: 3", "What is 7 + 3?", "1.0", "What is 5 AND 3? (bitwise)", "1.0"]

def test_what_is_an_environment_seed(server):
    assert run_seed("what_is_an_environment.py", server) == [
        "How many pixels does this image have? Answer with `submit`.", "README.md", "True", "1.0"]

def test_raw_http_client_seed(server):
    out = run_seed("ors_raw_client.py", server)
    assert out == ["Available tools: ['answer']", "Prompt: What is 7 + 3?", "Reward: 1.0", "Finished: True",
                   "Task 0: PASS (reward=1.00, steps=1)", "Task 1: PASS (reward=1.00, steps=1)",
                   "Success rate: 100.0%", "Average reward: 1.000"]
