"""Rollout logging against the reference client: the same program, run under both SDKs against one fake platform API,
must make the platform receive the same events, byte for byte, and print the same transcript."""
from __future__ import annotations

import json, re, subprocess, sys, tempfile, time
from pathlib import Path

import pytest

from conftest import FIXTURES, free_port, run_reference_script, serve_subprocess, subprocess_env

CALLS = FIXTURES/"rollout_calls.py"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

def run_calls(python: str, env: dict[str, str]) -> tuple[list[dict], subprocess.CompletedProcess]:
    "Run the fixed calls under `python` against a fresh fake platform; the requests it received, and the run's output."
    with tempfile.TemporaryDirectory(prefix="orw-rollouts-") as tmp:
        log = Path(tmp)/"requests.jsonl"
        log.touch()
        with serve_subprocess(sys.executable, FIXTURES/"fake_platform.py", str(log)) as (url, _):
            extra = env | {"OPENREWARD_API_URL": url, "OPENREWARD_ROLLOUTS_DB": f"{tmp}/rollouts.sqlite3"}
            r = subprocess.run([python, str(CALLS), "https://web.example"], capture_output=True, text=True, cwd=tmp,
                               timeout=120, env=subprocess_env(**extra))
            assert r.returncode == 0, r.stderr[-4000:]
        return [json.loads(line) for line in log.read_text().splitlines()], r

def canonical(requests: list[dict]) -> tuple[list[str], list[bytes]]:
    "Every uploaded event as the bytes it was sent as, ids numbered by first appearance, timestamps zeroed, in rollout/index order."
    import base64
    bodies = [base64.b64decode(r["body"]) for r in requests if r["path"] == "/v1/rollouts"]
    events = [e for b in bodies for e in json.loads(b)["events"]]
    for b in bodies: assert b == json.dumps(json.loads(b)).encode(), "the body is not Python's default json.dumps encoding"
    ids: dict[str, str] = {}
    def number(m: re.Match) -> str: return ids.setdefault(m[0], f"id-{len(ids)}")
    starts = [e["eventId"] for e in events if e["eventType"] == "rollout"]
    order = {rid: i for i, rid in enumerate(starts)}
    def key(e): return (order[e.get("rolloutEventId", e["eventId"])], e["eventType"] != "rollout", e.get("index", -1), e["eventType"])
    out = []
    for e in sorted(events, key=key):
        e = dict(e, timestamp=0)
        if e["eventType"] == "message": e["eventId"] = "msg"
        out.append(UUID.sub(lambda m: {s: f"rollout-{i}" for i, s in enumerate(starts)}.get(m[0], m[0]), json.dumps(e)))
    return out, bodies

def headers_of(requests: list[dict], path: str) -> list[dict[str, str]]:
    return [{k: v for k, v in r["headers"]} for r in requests if r["path"] == path]

@pytest.fixture(scope="module")
def both(reference_python):
    ref = run_calls(str(reference_python), {})
    ours = run_calls(sys.executable, {})
    return ref, ours

def test_platform_receives_identical_events(both):
    (ref_req, _), (our_req, _) = both
    ref_events, _ = canonical(ref_req)
    our_events, _ = canonical(our_req)
    assert len(ref_events) == len(our_events) == 2 + 19 + 1 + 300  # two starts, 19 messages and one update, 300 messages
    for a, b in zip(ref_events, our_events): assert a == b

def test_upload_headers_match(both):
    (ref_req, _), (our_req, _) = both
    for ref, ours in zip(headers_of(ref_req, "/v1/rollouts"), headers_of(our_req, "/v1/rollouts")):
        for h in ("x-api-key", "content-type"): assert ref[h] == ours[h]
        assert ref["user-agent"].startswith("openreward-sdk/") and ours["user-agent"].startswith("openreward-sdk/")
    # the environment and variant lookups: same requests, plus the API key on ours (private environments need it)
    for path in ("/v1/environments/acme/arith", "/v1/environments/acme/arith/variants"):
        ref, ours = headers_of(ref_req, path), headers_of(our_req, path)
        assert len(ref) == len(ours) == 1 and "x-api-key" not in ref[0] and ours[0]["x-api-key"] == "sk-test-rollouts"

def test_batches_follow_the_reference_thresholds(both):
    (_, _), (our_req, _) = both
    _, bodies = canonical(our_req)
    sizes = [len(json.loads(b)["events"]) for b in bodies]
    starts = [n for b, n in zip(bodies, sizes) if json.loads(b)["events"][0]["eventType"] == "rollout"]
    assert starts == [1, 1] and max(sizes) <= 128 and sum(sizes) == 322

@pytest.mark.parametrize("fmt", ["pretty", "structured"])
def test_print_messages_match(reference_python, fmt):
    env = {"PRINT": "1", "OPENREWARD_ROLLOUT_LOGGING_FORMAT": fmt}
    _, ref = run_calls(str(reference_python), env)
    _, ours = run_calls(sys.executable, env)
    mask = lambda s: re.sub(r'"timestamp": "[^"]+"', '"timestamp": "T"', UUID.sub("ID", s))
    assert mask(ours.stdout) == mask(ref.stdout) and ref.stdout
    if fmt == "pretty": assert mask(ours.stderr) == mask(ref.stderr) and "Recording rollout https://web.example/rollout/ID" in mask(ref.stderr)
