"""``GET /models/{ref}/report``: one HTML page of charts drawn by Vega-Lite (vega-embed), served
with the page's scripts from ``app/static/vega`` (no CDN: it works offline, as the docs pages)."""

from __future__ import annotations

import html

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from ..service import ModelService
from .deps import get_service
from .docs_ui import STATIC_PATH, _prefix
from .models import NOT_FOUND, ModelId

router = APIRouter(prefix="/models", tags=["models"])
#: ``ErrorResponse``, which the other routes put in the document's components
ERROR_SCHEMA = "#/components/schemas/ErrorResponse"

#: The vendored npm packages (see ``app/static/README.md``).
VEGA_VERSION, VEGA_LITE_VERSION, VEGA_EMBED_VERSION = "6.4.0", "6.5.0", "7.3.0"

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 16px; }}
td {{ padding: 2px 12px 2px 0; vertical-align: top; }}
td:first-child {{ color: #666; }}
.charts {{ display: flex; flex-wrap: wrap; gap: 24px; }}
.note {{ color: #a60; }}
</style>
<script src="{static}/vega.min.js?v={vega}"></script>
<script src="{static}/vega-lite.min.js?v={vega_lite}"></script>
<script src="{static}/vega-embed.min.js?v={vega_embed}"></script>
</head>
<body>
<h1>{title}</h1>
<table>{rows}</table>
{notes}
<div class="charts">{divs}</div>
<script id="charts" type="application/json">{charts}</script>
<script>
const charts = JSON.parse(document.getElementById("charts").textContent);
window.reportDone = Promise.all(
  charts.map((c) =>
    vegaEmbed("#chart-" + c.id, c.spec, {{ actions: false, renderer: "svg" }}).catch((e) =>
      console.error("chart " + c.id + ": " + e),
    ),
  ),
);
</script>
</body>
</html>
"""


def render(content: dict, *, static: str) -> str:
    """The page for ``app.report.build``'s ``content``; ``static``: the URL of the scripts."""
    name = next((v for k, v in content["summary"] if k == "name" and v), None)
    model_id = next(v for k, v in content["summary"] if k == "id")
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>"
        for k, v in content["summary"]
    )
    notes = "".join(f'<p class="note">{html.escape(n)}</p>' for n in content["notes"])
    divs = "".join(f'<div id="chart-{c["id"]}"></div>' for c in content["charts"])
    # inside <script>: "</" must not end the element early (a label or a feature name may hold it)
    charts = orjson.dumps(content["charts"]).decode().replace("</", "<\\/")
    return PAGE.format(
        title=html.escape(f"Model {name or model_id}"),
        static=static,
        vega=VEGA_VERSION,
        vega_lite=VEGA_LITE_VERSION,
        vega_embed=VEGA_EMBED_VERSION,
        rows=rows,
        notes=notes,
        divs=divs,
        charts=charts,
    )


@router.get(
    "/{model_id}/report",
    response_class=HTMLResponse,
    # errors are JSON: a route's other responses take its media type unless told (text/html)
    responses={
        **{
            code: {"content": {"application/json": {"schema": {"$ref": ERROR_SCHEMA}}}}
            for code in NOT_FOUND
        },
        200: {"content": {"text/html": {"schema": {"type": "string"}}}},
    },
)
def report(
    request: Request, model_id: str = ModelId, service: ModelService = Depends(get_service)
) -> HTMLResponse:
    """An HTML page of the model: its summary, coefficients (with 95% intervals when computed),
    training loss, the latest evaluation's ROC curve, calibration and confusion matrix, and for
    a model of two features its decision boundary over the training range. Works offline."""
    content = service.report(model_id)
    return HTMLResponse(render(content, static=f"{_prefix(request)}{STATIC_PATH}/vega"))
