"""The sandbox the toolset tests run on: a real local (bubblewrap) sandbox through the public API, never a backend."""
from openreward.sandbox import AsyncSandboxesAPI, SandboxSettings

SETTINGS = SandboxSettings(environment="tests/toolsets", image="python:3.11-slim", machine_size="1:2")

def new_sandbox() -> AsyncSandboxesAPI:
    "A fresh, unstarted local sandbox (working directory /workspace)."
    return AsyncSandboxesAPI(settings=SETTINGS, backend="local")
