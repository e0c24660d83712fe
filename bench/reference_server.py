"""The bare reference endpoint for bench/serve.py: Starlette, orjson in and out, no validation.

``sigmoid(X @ w + b)`` with the weights in the JSON file named by ``REFERENCE_MODEL``
(``{"w": [...], "b": ...}``, standardisation already folded in). Run by bench/serve.py as
``uvicorn bench.reference_server:app``.
"""

from __future__ import annotations

import os

import numpy as np
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

with open(os.environ["REFERENCE_MODEL"], "rb") as fh:
    _m = orjson.loads(fh.read())
W = np.asarray(_m["w"], dtype=np.float64)
B = float(_m["b"])


async def predict(request: Request) -> Response:
    body = orjson.loads(await request.body())
    X = np.array(body["features"], dtype=np.float64)
    p = 1.0 / (1.0 + np.exp(-(X @ W + B)))
    out = {
        "predictions": (p >= 0.5).astype(np.int64),
        "probabilities": np.column_stack([1.0 - p, p]),
    }
    return Response(
        orjson.dumps(out, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json"
    )


async def health(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


app = Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/health", health)])
