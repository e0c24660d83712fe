"""Content-Type and Accept rules (app/media.py), the one place that reads those headers."""

from __future__ import annotations

import email.message

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app import media
from app.errors import UnsupportedMediaType


def fastapi_reads_json(content_type: str | None) -> bool:
    """FastAPI's own test for a JSON body (fastapi/routing.py), through ``email.message``."""
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


CONTENT_TYPES = [
    None,
    "",
    "application/json",
    "Application/JSON; charset=utf-8",
    " application/json ;charset=latin-1",
    "application/vnd.api+json",
    "application/json-patch+json",
    "application/jsonx",
    "application/x-json",
    "application",
    "json",
    "text/json",
    "text/x+json",
    "x+json",
    "application/a/b+json",
    "application / json",
    "text/csv",
    "text/csv; header=present",
    "text/plain",
    "multipart/form-data; boundary=x",
]


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
def test_is_json_is_what_fastapi_parses_as_json(content_type):
    assert media.is_json(content_type) == fastapi_reads_json(content_type)


@given(st.text(st.sampled_from("application/json+xtcsv ;=-A"), max_size=30))
def test_is_json_agrees_with_fastapi_on_any_header(content_type):
    assert media.is_json(content_type) == fastapi_reads_json(content_type)


@pytest.mark.parametrize(
    ("content_type", "kind"),
    [
        ("application/json", "json"),
        ("application/merge-patch+json; charset=utf-8", "json"),
        ("text/csv", "csv"),
        ("TEXT/CSV; charset=utf-8", "csv"),
    ],
)
def test_body_kind(content_type, kind):
    assert media.body_kind(content_type) == kind


@pytest.mark.parametrize("content_type", [None, "", "text/plain", "text/x+json", "csv"])
def test_other_bodies_are_a_415_naming_what_is_read(content_type):
    with pytest.raises(UnsupportedMediaType) as caught:
        media.body_kind(content_type)
    assert "send application/json or text/csv" in str(caught.value)
    assert caught.value.content_type == media.media_type(content_type)


def test_csv_can_be_refused():
    with pytest.raises(UnsupportedMediaType, match=r"'text/csv' is not supported.*json$"):
        media.body_kind("text/csv", csv=False)


@pytest.mark.parametrize(
    ("accept", "csv"),
    [
        (None, False),
        ("", False),
        ("*/*", False),
        ("application/json", False),
        ("text/csv", True),
        ("TEXT/CSV;q=0.9", True),
        ("text/csv, application/json", False),  # JSON wins the ties it names
        ("text/csv;q=0.5, application/json;q=0.4", True),
        ("text/csv;q=0.5, */*", False),
        ("text/csv, */*;q=0.1", True),
        ("text/csv;q=0", False),
        ("text/csv;q=x", False),
        ("text/html, text/csv", True),
    ],
)
def test_wants_csv(accept, csv):
    assert media.wants_csv(accept) is csv
