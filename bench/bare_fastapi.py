"""A FastAPI app with one route, ``GET /health``: the startup floor that bench/serve.py
``--mode startup`` prints beside the service's (``uvicorn bench.bare_fastapi:app``). With
``BARE_WITH_NUMPY=1`` it also imports NumPy: the floor of any FastAPI + NumPy service.
"""

from __future__ import annotations

import os

from fastapi import FastAPI

if os.environ.get("BARE_WITH_NUMPY"):
    import numpy  # noqa: F401

app = FastAPI()


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}
