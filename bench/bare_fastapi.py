"""A FastAPI app with one route, ``GET /health``: the startup floor that bench/serve.py
``--mode startup`` prints beside the service's (``uvicorn bench.bare_fastapi:app``)."""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI()


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}
