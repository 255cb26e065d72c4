"""Our hosted sandbox client puts the reference's requests on the wire: one program (tests/fixtures/sandbox_wire_client.py)
run by the reference SDK (its own venv) and by ours against the same logging fake sandbox service on 127.0.0.1, with a
key and with none; the requests (paths, query, protocol headers, bodies, the decoded X-Secrets) must be the same, in
the same order (pings aside: they depend on timing)."""
from __future__ import annotations

import base64, hashlib, http.server, json, sys, threading
from urllib.parse import parse_qsl, urlsplit

import pytest

from conftest import FIXTURES, run_reference_script, subprocess_env

CLIENT = FIXTURES / "sandbox_wire_client.py"
FILE = bytes(range(256)) * 40  # /data/f.bin on the fake, 10240 bytes
PROTOCOL_HEADERS = ("x-api-key", "x-session-id", "x-secrets", "content-type")

class _Fake(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        url = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        q = dict(parse_qsl(url.query))
        self.server.log.append({"path": url.path, "query": q, "body": body,
                                "headers": {k.lower(): v for k, v in self.headers.items()}})
        match url.path:
            case "/create_sandbox": self._sse("t-create", {"sid": "sb-1"})
            case "/run": self._sse("t-run", {"return_code": 0, "output": base64.b64encode(b"hi").decode()})
            case "/stat_file": self._json({"size": len(FILE), **({"sha256": hashlib.sha256(FILE).hexdigest()} if q.get("sha256") else {})})
            case "/read_file":
                off, n = int(q["offset"]), int(q["length"])
                self._send(200, FILE[off:off + n], "application/octet-stream", {"X-File-Size": str(len(FILE))})
            case "/write_file":
                if q.get("commit"): self._json({"sha256": hashlib.sha256(self.server.upload).hexdigest()})
                else:
                    self.server.upload = self.server.upload[:int(q["offset"])] + body
                    self._json({"ok": True})
            case _: self._json({})

    def _sse(self, task_id, result):
        text = f"event: task_id\r\ndata: {task_id}\r\n\r\nevent: end\r\ndata: {json.dumps(result)}\r\n\r\n"
        self._send(200, text.encode(), "text/event-stream")

    def _json(self, value): self._send(200, json.dumps(value).encode(), "application/json")

    def _send(self, status, data, ctype, extra=None):
        self.send_response(status)
        for k, v in {"Content-Type": ctype, "Content-Length": str(len(data)), **(extra or {})}.items(): self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a): pass

def session(python, key: str, tmp_path, tag: str, reference: bool):
    "Run the program under `python` against a fresh fake; its stdout lines and the fake's log (pings dropped)."
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Fake)
    server.log, server.upload = [], b""
    threading.Thread(target=server.serve_forever, daemon=True).start()
    work = tmp_path / tag
    work.mkdir()
    # without a key, ours runs sandboxes on this machine unless told otherwise (the selection rule): told here
    env = {"OPENREWARD_SESSION_URL": f"http://127.0.0.1:{server.server_address[1]}", "OPENREWARD_SANDBOX_BACKEND": "hosted"}
    try:
        if reference: out = run_reference_script(python, CLIENT, key, str(work), env=env).stdout
        else:
            import subprocess
            r = subprocess.run([sys.executable, str(CLIENT), key, str(work)], capture_output=True, text=True, timeout=300,
                               cwd=work, env=subprocess_env(**env))
            assert r.returncode == 0, r.stderr[-4000:]
            out = r.stdout
    finally:
        server.shutdown(); server.server_close()
    return out.splitlines(), [e for e in server.log if e["path"] != "/ping"], [e for e in server.log if e["path"] == "/ping"]

def comparable(entry: dict) -> dict:
    "What must match: path, query, protocol headers, Accept of event streams, the body (JSON parsed), X-Secrets decoded."
    h = entry["headers"]
    out = {"path": entry["path"], "query": entry["query"], "headers": {k: h[k] for k in PROTOCOL_HEADERS if k in h}}
    if h.get("accept") == "text/event-stream": out["headers"]["accept"] = "text/event-stream"
    if "x-secrets" in out["headers"]: out["headers"]["x-secrets"] = json.loads(base64.b64decode(h["x-secrets"]))
    body = entry["body"]
    out["body"] = json.loads(body) if h.get("content-type", "").startswith("application/json") else hashlib.sha256(body).hexdigest()
    assert h.get("user-agent", "").startswith("openreward-sdk/"), h
    return out

@pytest.mark.parametrize("key", ["sk-wire", ""])
def test_the_same_requests_as_the_reference_client(reference_python, tmp_path, key):
    ref_out, ref_log, ref_pings = session(reference_python, key, tmp_path, "ref", reference=True)
    our_out, our_log, our_pings = session(None, key, tmp_path, "ours", reference=False)
    assert ref_out == our_out and ref_out[0] == "ok"
    assert [e["path"] for e in our_log] == [e["path"] for e in ref_log]
    for ref, ours in zip(ref_log, our_log):
        assert comparable(ours) == comparable(ref), ref["path"]
    assert ref_pings and our_pings  # both pinged, right after creation
    assert comparable(our_pings[0]) == comparable(ref_pings[0])
