"""The version scheme keeps ours installed under packages that pin the reference (`openreward>=0.1.127`).

Our version is the reference API level we implement plus our own release number (settings.ini explains it), so an
ordinary `>=` pin of a package built on the reference is satisfied by ours, and pip leaves ours in place instead
of fetching the reference from PyPI. Checked with pip's own resolver, offline: our wheel is built from this
checkout and installed into a fresh venv; then a tiny local package that requires `openreward>=0.1.127` is
installed with `--no-index --find-links` (so the reference is not even a candidate: if ours did not satisfy the pin
the install would fail). Our own dependencies are stood in for by empty wheels of the lowest versions we accept:
which `openreward` pip keeps does not depend on what httpx's wheel contains.
"""
from __future__ import annotations

import configparser, os, re, subprocess, sys, zipfile
from pathlib import Path

import pytest

from conftest import REPO, subprocess_env

pytestmark = pytest.mark.slow

def pip_env() -> dict[str, str]:
    "Hermetic pip: no config files (this machine's add a find-links), no index, no version check."
    return subprocess_env(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")

def run(*cmd, cwd: Path, ok: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=cwd, env=pip_env(), timeout=600)
    if ok: assert r.returncode == 0, f"{cmd} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r

def stub_wheel(dest: Path, name: str, version: str, requires: list[str] = ()) -> Path:
    "An installable wheel with metadata only."
    dist = re.sub(r"[-.]+", "_", name)
    path = dest/f"{dist}-{version}-py3-none-any.whl"
    info = f"{dist}-{version}.dist-info"
    meta = "".join([f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"] + [f"Requires-Dist: {r}\n" for r in requires])
    files = {f"{info}/METADATA": meta, f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    files[f"{dist}/__init__.py"] = ""
    with zipfile.ZipFile(path, "w") as z:
        for f, text in files.items(): z.writestr(f, text)
        z.writestr(f"{info}/RECORD", "".join(f"{f},,\n" for f in files) + f"{info}/RECORD,,\n")
    return path

def lowest(spec: str) -> tuple[str, str]:
    "`name>=1.2` -> (name, '1.2'): the lowest version a requirement accepts (ours are all `>=` pins)."
    name, version = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9.]+)", spec).groups()
    return name, version

@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory) -> Path:
    "Our wheel, and stand-ins for our dependencies."
    house = tmp_path_factory.mktemp("wheels")
    cfg = configparser.ConfigParser(); cfg.read(REPO/"settings.ini")
    for spec in cfg["DEFAULT"]["requirements"].split(): stub_wheel(house, *lowest(spec))
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", house, REPO]
    try: import setuptools  # noqa: F401  (then build offline with it)
    except ImportError: pass
    else: build.insert(4, "--no-build-isolation")
    run(*build, cwd=house)
    return house

@pytest.fixture(scope="module")
def venv(tmp_path_factory, wheelhouse) -> Path:
    "A fresh venv with our wheel installed (from the wheelhouse only); each test removes its consumer again."
    where = tmp_path_factory.mktemp("venv")
    run(sys.executable, "-m", "venv", where/"venv", cwd=where)
    run(where/"venv"/"bin"/"pip", "install", "--no-index", "--find-links", wheelhouse, "openreward", cwd=where)
    yield where/"venv"

@pytest.fixture(autouse=True)
def _remove_consumer(request):
    yield
    if "venv" in request.fixturenames:
        venv = request.getfixturevalue("venv")
        run(venv/"bin"/"pip", "uninstall", "-y", "orw-consumer", cwd=venv, ok=False)

def consumer(tmp_path: Path, requirement: str) -> Path:
    "A wheelhouse holding one tiny package that requires `requirement`."
    house = tmp_path/"consumer"; house.mkdir()
    stub_wheel(house, "orw-consumer", "1.0", [requirement])
    return house

def installed_openreward(venv: Path) -> tuple[str, bool]:
    "The installed openreward's version, and whether it is ours (it has modules the reference has not)."
    r = run(venv/"bin"/"python", "-c", "import importlib.metadata as m; "
            "print(m.version('openreward'), any(str(f) == 'openreward/client_core.py' for f in m.files('openreward')))", cwd=venv)
    version, ours = r.stdout.split()
    return version, ours == "True"

def test_our_version_declares_the_reference_api_level():
    import openreward
    from packaging.version import Version
    v = Version(openreward.__version__)
    assert v.release[:3] == (0, 1, 167) and len(v.release) == 4 and v.release[3] >= 1, v
    assert Version("0.1.167") < v < Version("0.1.168")

@pytest.mark.parametrize("pin", ["openreward>=0.1.127", "openreward~=0.1.115"])
def test_a_package_pinning_the_reference_keeps_ours(venv, tmp_path, pin):
    r = run(venv/"bin"/"pip", "install", "--no-index", "--find-links", consumer(tmp_path, pin), "orw-consumer", cwd=tmp_path)
    assert "Requirement already satisfied: openreward" in r.stdout, r.stdout
    assert installed_openreward(venv) == (__import__("openreward").__version__, True)
    run(venv/"bin"/"pip", "check", cwd=tmp_path)

def test_a_pin_beyond_our_level_is_not_satisfied(venv, tmp_path):
    "The check can fail: a package needing a newer reference than we implement does not accept ours."
    r = run(venv/"bin"/"pip", "install", "--no-index", "--find-links", consumer(tmp_path, "openreward>=0.1.168"),
            "orw-consumer", cwd=tmp_path, ok=False)
    assert r.returncode != 0 and "openreward>=0.1.168" in r.stderr, r.stderr
    assert installed_openreward(venv)[1]
