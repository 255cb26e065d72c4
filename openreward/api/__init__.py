"""Facade package at the reference SDK's import path `openreward.api` (hand-written; its modules are exported from nbs/90*_*.ipynb)."""
