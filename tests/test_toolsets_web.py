"""`web` / `backsearch` against a fake search service on 127.0.0.1 (real uvicorn), and with nothing configured.

The fake records every request, so the tests see what the backend sends (query, cutoff, domains, API key) as well
as what the agent gets back.
"""
import asyncio, json
from types import SimpleNamespace

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from openreward.demo import serve_in_thread
from openreward.toolsets import BackSearchToolset, SearchBackendUnavailable, WebToolset, register_search_backend
from openreward.toolsets.web import HTTPSearchBackend, NOT_CONFIGURED, SEARCH_BACKENDS, WebFetchParams, WebSearchParams

SEEN: list[tuple[str, dict, str | None]] = []

async def search(request: Request):
    body = await request.json()
    SEEN.append(("search", body, request.headers.get("authorization")))
    if body["query"] == "quota": return Response(status_code=429)
    if body["query"] == "down": return Response(status_code=503)
    return JSONResponse({"results": [{"url": "https://a.example.org/1", "title": "One", "snippet": "first"},
                                     {"url": "https://blocked.example.net/2", "title": "Two"}]})

async def fetch(request: Request):
    body = await request.json()
    SEEN.append(("fetch", body, request.headers.get("authorization")))
    return JSONResponse({"url": body["url"], "title": "Page", "text": "x" * 5000})

@pytest.fixture(scope="module")
def service():
    with serve_in_thread(Starlette(routes=[Route("/search", search, methods=["POST"]), Route("/fetch", fetch, methods=["POST"])])) as url:
        yield url

@pytest.fixture
def configured(service, monkeypatch):
    monkeypatch.setenv("OPENREWARD_WEB_SEARCH_URL", f"{service}/search")
    monkeypatch.setenv("OPENREWARD_WEB_FETCH_URL", f"{service}/fetch")
    monkeypatch.delenv("OPENREWARD_SEARCH_BACKEND", raising=False)
    SEEN.clear()
    return service

def run(c): return asyncio.run(c)

def test_not_configured_is_a_clear_error(monkeypatch):
    for v in ("OPENREWARD_WEB_SEARCH_URL", "OPENREWARD_WEB_FETCH_URL", "OPENREWARD_SEARCH_BACKEND"): monkeypatch.delenv(v, raising=False)
    with pytest.raises(SearchBackendUnavailable, match="No search backend is configured: set OPENREWARD_WEB_SEARCH_URL") as e:
        run(WebToolset(SimpleNamespace()).web_search(WebSearchParams(query="q")))
    assert e.value.error_code == "not-configured"
    out = run(BackSearchToolset(SimpleNamespace(), raise_on_fatal=False).web_fetch(WebFetchParams(url="https://x.org", prompt="p")))
    assert out.blocks[0].text == NOT_CONFIGURED and out.metadata == {"error": "not-configured"}
    with pytest.raises(SearchBackendUnavailable, match="Unknown search backend 'nope'"):
        run(WebToolset(SimpleNamespace(search_backend="nope")).web_search(WebSearchParams(query="q")))

def test_search_and_fetch_through_the_service(configured):
    env = SimpleNamespace(web_as_of=lambda: "2024-05-01", search_secrets={"api_key": "k-123"}, web_max_fetch_chars=1000)
    ts = BackSearchToolset(env)
    r = run(ts.web_search(WebSearchParams(query="ors", blocked_domains=["blocked.example.net"])))
    assert r.blocks[0].text == 'Links: [{"title": "One", "url": "https://a.example.org/1"}]\n\n- https://a.example.org/1: first'
    assert r.reward == 0.0 and [h["url"] for h in r.metadata["results"]] == ["https://a.example.org/1"]
    assert SEEN[-1] == ("search", {"query": "ors", "k": 8, "as_of": "2024-05-01", "blocked_domains": ["blocked.example.net"]}, "Bearer k-123")
    r = run(ts.web_search(WebSearchParams(query="ors", allowed_domains=["example.net"])))
    assert [h["url"] for h in r.metadata["results"]] == ["https://blocked.example.net/2"]
    r = run(ts.web_fetch(WebFetchParams(url="https://a.example.org/1", prompt="summarise")))
    text = r.blocks[0].text
    assert text.startswith("URL: https://a.example.org/1\nTitle: Page\nPrompt: summarise\n\n" + "x" * 1000)
    assert text.endswith("[page cut at 1000 of 5000 characters]") and r.metadata["truncated"] is True
    assert SEEN[-1][:2] == ("fetch", {"url": "https://a.example.org/1", "as_of": "2024-05-01"})
    r = run(ts.web_fetch(WebFetchParams(url="file:///etc/passwd", prompt="p")))
    assert r.metadata == {"error": "invalid-url"} and len([s for s in SEEN if s[0] == "fetch"]) == 1  # never sent

def test_fatal_codes_raise_soft_ones_answer(configured):
    ts = WebToolset(SimpleNamespace())
    with pytest.raises(SearchBackendUnavailable, match="quota") as e: run(ts.web_search(WebSearchParams(query="quota")))
    assert e.value.error_code == "quota-exceeded"
    with pytest.raises(SearchBackendUnavailable) as e: run(ts.web_search(WebSearchParams(query="down")))
    assert e.value.error_code == "provider-unavailable"
    soft = WebToolset(SimpleNamespace(), raise_on_fatal=False)
    assert run(soft.web_search(WebSearchParams(query="down"))).metadata == {"error": "provider-unavailable"}

def test_pluggable_backend_by_name(configured, monkeypatch):
    class Canned(HTTPSearchBackend):
        name = "canned"
    calls = []
    def factory(secrets):
        calls.append(secrets)
        return Canned(f"{configured}/search", f"{configured}/fetch")
    register_search_backend("canned", factory)
    try:
        monkeypatch.setenv("OPENREWARD_SEARCH_BACKEND", "canned")
        ts = WebToolset(SimpleNamespace(search_secrets=lambda: {"api_key": "s"}))
        assert run(ts.web_search(WebSearchParams(query="ors"))).blocks[0].text.startswith("Links: ")
        run(ts.web_search(WebSearchParams(query="ors")))
        assert calls == [{"api_key": "s"}]  # made once, reused
        # backsearch cannot be switched away from the backdated corpus
        assert BackSearchToolset(SimpleNamespace(search_backend="canned"))._choice() == "backsearch"
    finally: SEARCH_BACKENDS.pop("canned")
