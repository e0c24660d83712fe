"""One real uvicorn server per test module (``server``), and its URL for the client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.live_server import LiveServer

#: More settings for a module's server: a module sets ``SERVER_ENV = {...}`` at its top.
SERVER_ENV = "SERVER_ENV"


@pytest.fixture(scope="module")
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    env = getattr(request.module, SERVER_ENV, {})
    with LiveServer(tmp_path_factory.mktemp("client") / "models", env=env) as live:
        yield live


@pytest.fixture(scope="module")
def url(server: LiveServer) -> str:
    return server.url
