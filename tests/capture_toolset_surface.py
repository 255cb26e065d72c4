"""Regenerate openreward/toolsets/surface.json from the REFERENCE server's `/tools` listings.

Usage: python tests/capture_toolset_surface.py   (needs the reference venv that tests/conftest.py builds)

It serves tests/fixtures/toolset_envs.py (one environment per built-in toolset) with the reference SDK in its own
venv, reads each listing, and writes `{toolset: {tool: description}}`: the prompt texts our toolsets must show for
their listings to be byte-identical to the reference's (why they are identical: nbs/11_toolsets.ipynb).
"""
import json, sys
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from conftest import FIXTURES, REPO, SERVE_EXAMPLES, ensure_reference_venv, serve_subprocess

def main() -> None:
    python = ensure_reference_venv()
    with serve_subprocess(python, SERVE_EXAMPLES, str(FIXTURES/"toolset_envs.py")) as (url, _):
        out = {}
        for e in httpx.get(f"{url}/list_environments").json():
            if not e.startswith("ts-"): continue
            tools = httpx.get(f"{url}/{e}/tools").json()["tools"]
            out[e[3:]] = {t["name"]: t["description"] for t in tools if t["name"] != "ping"}
    path = REPO/"openreward"/"toolsets"/"surface.json"
    path.write_text(json.dumps(out, indent=1, ensure_ascii=False, sort_keys=True))
    print(f"wrote {path}: {sum(map(len, out.values()))} tools in {len(out)} toolsets")

if __name__ == "__main__":
    main()
