"""Problem `type` URIs resolve: every code kobliat raises has a page that describes it."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from kobliat.api import create_app
from kobliat.problem_catalog import CATALOG

SRC = Path(__file__).resolve().parents[2] / "src" / "kobliat"
# `code="x-y"`, `code = "x-y"` (an error class's default), `Problem(409, "x-y"`,
# `problem_response(400, "x-y"`, over line breaks.
RAISED = re.compile(
    r'(?:\bcode\s*=\s*|(?:Problem|problem_response)\(\s*\d{3},\s*)"([a-z]+(?:-[a-z0-9]+)+)"'
)


def _raised_codes() -> set[str]:
    return {code for path in SRC.rglob("*.py") for code in RAISED.findall(path.read_text())}


def test_every_code_the_source_raises_is_described() -> None:
    raised = _raised_codes()
    assert len(raised) > 30  # the pattern still finds them
    assert sorted(raised - set(CATALOG)) == []


def test_problem_type_uris_answer_with_a_page_describing_the_problem() -> None:
    http = TestClient(create_app())  # no lifespan: these pages need no database
    answer = http.get("/conversations")
    assert answer.status_code == 401
    page = http.get(answer.json()["type"])
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert CATALOG[answer.json()["code"]].meaning.split("`")[0] in page.text
    index = http.get("/problems")
    assert index.status_code == 200 and all(code in index.text for code in CATALOG)
    unknown = http.get("/problems/no-such-thing")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"].startswith("application/problem+json")
