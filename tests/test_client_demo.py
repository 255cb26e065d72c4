"""The main job, `python -m openreward.demo`, as a user runs it: a subprocess that serves the example environments
on a loopback port, runs the scripted agent over every task of every variant in parallel, and prints the table."""
import re, subprocess, sys

from conftest import subprocess_env

def test_demo_runs_every_task_and_solves_it():
    r = subprocess.run([sys.executable, "-m", "openreward.demo", "--repeat", "2"], capture_output=True, text=True,
                       timeout=300, env=subprocess_env(), cwd="/")
    assert r.returncode == 0, r.stderr[-4000:]
    rows = {m[1]: (int(m[2]), int(m[3]), float(m[4]), int(m[6])) for m in
            re.finditer(r"^(\w+)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+(\d+)\s+(\d+)$", r.stdout, flags=re.M)}
    assert rows == {"counter": (8, 8, 1.0, 0), "basicarithmetic": (4, 4, 1.0, 0), "bitwisearithmetic": (6, 6, 1.0, 0),
                    "workbench": (6, 6, 1.0, 0)}
    assert re.search(r"^24 episodes, 58 tool calls in [\d.]+ s wall time$", r.stdout, flags=re.M), r.stdout
    assert r.stderr.strip().endswith("episodes [##############################] 24/24"), r.stderr[-500:]
