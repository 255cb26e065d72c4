"""The seeds' programs run unchanged in a real Jupyter kernel (ipykernel through nbclient), the server program's last
line `Server(ENVIRONMENTS).run()` included: it serves in the background, the client program plays the served
environment from the next cell, and the kernel's shutdown stops the server and frees its port."""
import os, socket

import pytest

nbformat = pytest.importorskip("nbformat", reason="needs Jupyter (a dev requirement; the wheel check installs only the library)")
NotebookClient = pytest.importorskip("nbclient").NotebookClient

from conftest import subprocess_env
from test_client_seeds import SEEDS

PORT = 8080  # the seed's: `run()` with no arguments listens on 0.0.0.0:8080

def listening(port: int) -> bool:
    "Whether something accepts connections on 127.0.0.1:`port`."
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) == 0

def outputs(cell, name: str) -> str:
    "All text a cell wrote to the stream `name`."
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.name == name)

@pytest.mark.slow
def test_seeds_run_in_a_kernel(monkeypatch, capfd):
    if listening(PORT): pytest.skip(f"port {PORT} is taken on this machine: the seed's server cannot listen there")
    monkeypatch.setattr(os, "environ", subprocess_env(ORS_URL=f"http://localhost:{PORT}"))  # the kernel inherits it
    cells = [(SEEDS/"multiple_environments_server.py").read_text(), (SEEDS/"multiple_environments.py").read_text(),
             "import threading; print(sorted(t.name for t in threading.enumerate() if t.name.startswith('openreward-server')))"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    client = NotebookClient(nb, timeout=120, kernel_name="python3", shutdown_kernel="graceful")
    with client.setup_kernel(cwd=str(SEEDS)):
        for i, cell in enumerate(nb.cells): client.execute_cell(cell, i)
        kernel = client.km.provisioner.process
        assert listening(PORT)
    served, played, threads = nb.cells
    assert outputs(served, "stdout") == (f"Serving basicarithmetic, bitwisearithmetic at http://127.0.0.1:{PORT} "
                                         "in the background; .stop() ends it\n")
    assert "no API key" in outputs(served, "stderr")  # the hardening warning still reaches the reader
    assert outputs(played, "stdout").splitlines() == [
        "Basic tasks: 2", "Bitwise tasks: 3", "What is 7 + 3?", "1.0", "What is 5 AND 3? (bitwise)", "1.0"]
    assert outputs(threads, "stdout") == f"['openreward-server-{PORT}']\n"
    assert kernel.poll() is not None, "the kernel outlived its shutdown"
    assert f"openreward: stopped the server at http://127.0.0.1:{PORT}" in capfd.readouterr().err  # atexit stopped it
    assert not listening(PORT)
