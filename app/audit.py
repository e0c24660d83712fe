"""Who asked for a change of state, and the audit log's line for it. No FastAPI here: the web
layer fills ``Actor`` from the request; the service appends the lines (``ModelStore.audit``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class Actor:
    """The caller of a change: the API key's id (never the key), the client's address and the
    request's ``X-Request-ID``. Picklable: trainings append their line from a child process."""

    key_id: str | None = None
    client: str | None = None
    request_id: str | None = None


def audit_entry(
    action: str, target: dict[str, Any], actor: Actor | None, *, outcome: str = "ok"
) -> dict[str, Any]:
    actor = actor or Actor()
    return {
        "time": datetime.now(UTC).isoformat(timespec="microseconds"),
        "action": action,
        "target": target,
        "outcome": outcome,
        "key_id": actor.key_id,
        "client": actor.client,
        "request_id": actor.request_id,
    }
