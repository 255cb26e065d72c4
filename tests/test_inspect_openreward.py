"""inspect-openreward (an Inspect AI bridge built on the reference SDK) runs on our package, unchanged.

It is installed from PyPI with `--no-deps` into a cached venv with Inspect AI (conftest's `inspect_python`); our
`openreward` comes from this checkout. An Inspect evaluation with the scripted `mockllm/model` runs against our
server (real uvicorn, the example environments) and scores the rewards the environment gave.
"""
from __future__ import annotations

import json, subprocess, sys, tempfile

import pytest

from conftest import EXAMPLES_PY, FIXTURES, REPO, SERVE_EXAMPLES, serve_subprocess, subprocess_env

pytestmark = pytest.mark.slow

def test_inspect_eval_scores_the_rewards_of_our_server(inspect_python):
    with serve_subprocess(sys.executable, SERVE_EXAMPLES, str(EXAMPLES_PY)) as (url, _), \
         tempfile.TemporaryDirectory(prefix="orw-inspect-") as tmp:
        r = subprocess.run([str(inspect_python), str(FIXTURES/"inspect_eval.py"), url, tmp], capture_output=True,
                           text=True, cwd=tmp, timeout=600,
                           env=subprocess_env(PYTHONPATH=str(REPO), INSPECT_LOG_LEVEL="warning", OPENREWARD_API_KEY=""))
        assert r.returncode == 0, f"--- stderr ---\n{r.stderr[-6000:]}\n--- stdout ---\n{r.stdout[-2000:]}"
        # our package, not a copy in the venv
        where = subprocess.run([str(inspect_python), "-c", "import openreward; print(openreward.__file__)"],
                               capture_output=True, text=True, cwd=tmp, env=subprocess_env(PYTHONPATH=str(REPO)))
    assert where.stdout.strip() == str(REPO/"openreward"/"__init__.py")
    out = json.loads(r.stdout.strip().splitlines()[-1])
    n = len(out["tasks"])
    assert n >= 3 and out["status"] == "success"
    assert out["scores"] == [1.0] + [0.0] + [1.0] * (n - 2)  # the second task fell one short of its target
    assert out["finished"] == [True, False] + [True] * (n - 2)
    assert out["mean"] == pytest.approx((n - 1) / n)
