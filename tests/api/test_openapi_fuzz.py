"""Property-based tests from the app's own OpenAPI schema, in-process, on both backends.

1. schemathesis, operation by operation: each operation gets a fresh database holding a few
   customers and conversations, and about half the generated ids aim at those (random ids only
   ever reach the 404 path). Every response conforms to the schema (status, content type,
   body), none is a 5xx, every 4xx is a problem+json saying what was wrong, and a refused
   request leaves stored data exactly as it was.
2. schemathesis's stateful mode: sequences along the links it infers (create, then read, patch,
   add to what was created).
3. By hand, a rule-based state machine of valid-looking calls (customers, conversations,
   participants, status changes, messages) checking the model's rules after every step: a
   direct conversation always has two participants, a multi two or more, and at most one
   non-closed conversation holds a key.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)
from pydantic import SecretStr
from schemathesis import Case, CheckContext, Response
from sqlalchemy import delete, func, select
from starlette.types import Receive, Scope, Send

from kobliat import pagination
from kobliat.api import create_app
from kobliat.bootstrap import Container
from kobliat.db.engine import Database
from kobliat.db.tables import (
    aggregate_sequences,
    api_keys,
    conversation_participants,
    conversations,
    metadata,
    outbox,
)
from tests.builders import a_conversation, a_customer
from tests.conftest import API_KEY

# Every channel configured, so webhooks answer what an unsigned request deserves (401), not 503.
WEBHOOK_SECRETS = {
    "whatsapp_app_secret": SecretStr("fuzz-app-secret"),
    "whatsapp_verify_token": SecretStr("fuzz-verify-token"),
    "telegram_secret_token": SecretStr("fuzz-telegram-token"),
    "twilio_auth_token": SecretStr("fuzz-twilio-token"),
    "generic_webhook_secret": SecretStr("whsec_ZnV6ei1nZW5lcmljLXNlY3JldA=="),
}
CONFIG = schemathesis.Config.from_dict(
    {
        "auth": {"openapi": {"HTTPBearer": {"bearer": API_KEY}}},
        "checks": {
            # A schema-valid request may still be refused with a problem: a cursor kobliat did
            # not issue (400), a handshake with the wrong token (403), a domain rule such as a
            # phone number that is not one (422). Never with a 5xx.
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "400", "401", "403", "404", "409", "422"],
            },
        },
    }
)


class CurrentApp:
    """The ASGI app schemathesis sends every request to: the app of the running test.

    The schema is loaded once, at import (schemathesis parametrizes at collection), but each
    test has its own database and so its own app. Lifespan is answered here, as a no-op: the
    app is given a built container, and no background worker is wanted while fuzzing.
    """

    def __init__(self) -> None:
        self.app: FastAPI | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        assert self.app is not None, "no test is running"
        await self.app(scope, receive, send)


CURRENT = CurrentApp()
# The SSE stream never ends by design; tests/e2e cover it with a real reader.
schema = schemathesis.openapi.from_dict(create_app().openapi(), config=CONFIG).exclude(
    path="/events/stream"
)
schema.app = CURRENT


@dataclasses.dataclass(frozen=True)
class Seeded:
    """Ids that exist in the test database."""

    customers: list[UUID]
    conversations: list[UUID]


@pytest.fixture
def seeded(container: Container) -> Seeded:
    """A few customers and one conversation of each type."""
    db = container.db
    people = [a_customer(db).id for _ in range(5)]
    direct = a_conversation(db, type="direct", participants=people[:2])
    multi = a_conversation(db, type="multi", participants=people[:3])
    group = a_conversation(
        db, type="group", participants=people[2:4], group_name="Fuzz", external_id="g1"
    )
    return Seeded(customers=people, conversations=[direct.id, multi.id, group.id])


@pytest.fixture
def app(container: Container) -> Iterator[FastAPI]:
    """The app on the test database, every webhook channel configured."""
    configured = container.settings.model_copy(update=WEBHOOK_SECRETS)
    CURRENT.app = create_app(container=dataclasses.replace(container, settings=configured))
    yield CURRENT.app
    CURRENT.app = None


def problem_details(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """schemathesis check: every 4xx is application/problem+json with status, code, detail."""
    if not 400 <= response.status_code < 500:
        return None
    assert_problem(response.status_code, response.headers["content-type"][0], response.json())
    return True


def assert_problem(status: int, content_type: str, body: Any) -> None:
    """A problem+json body that says what was wrong."""
    assert content_type.startswith("application/problem+json"), content_type
    assert body["status"] == status, body
    assert isinstance(body["code"], str) and body["code"], body
    assert isinstance(body["detail"], str) and body["detail"], body


def aim_at_seeded(case: Case, data: st.DataObject, seeded: Seeded) -> None:
    """Point some ids at rows that exist, so more than the 404/unknown-customer paths run."""
    if case.meta is not None and case.meta.generation.mode.is_negative:
        return  # an invalid id is what such a case is about
    known = {"conversation_id": seeded.conversations, "customer_id": seeded.customers}
    for name, ids in known.items():
        aimed = case.path_parameters and name in case.path_parameters
        if aimed and data.draw(st.booleans(), label=f"existing {name}"):
            case.path_parameters[name] = str(data.draw(st.sampled_from(ids), label=name))
    _aim_body(case.body, data, seeded)


def _aim_body(value: object, data: st.DataObject, seeded: Seeded) -> None:
    if isinstance(value, list):
        for item in value:
            _aim_body(item, data, seeded)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key.endswith("customer_id") and data.draw(st.booleans(), label=f"existing {key}"):
                value[key] = str(data.draw(st.sampled_from(seeded.customers), label=key))
            else:
                _aim_body(item, data, seeded)


DATA = [table for table in metadata.sorted_tables if table is not api_keys]


def wipe(db: Database) -> None:
    """Delete every row but the API keys: each generated sequence starts from nothing, so
    Hypothesis can replay and shrink it."""
    db.run(lambda uow: [uow.connection.execute(delete(table)) for table in reversed(DATA)])


def stored(db: Database) -> dict[str, list[str]]:
    """Every row a request could write, to show that a refused one wrote nothing."""
    with db.reading() as conn:
        return {
            table.name: sorted(repr(tuple(row)) for row in conn.execute(select(table)))
            for table in DATA
        }


# The documented examples run in their own test (schemathesis cannot mix them with `given`).
_GENERATED = [phase for phase in Phase if phase is not Phase.explicit]


@schema.parametrize()
@schema.given(data=st.data())
@settings(
    max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), phases=_GENERATED
)
def test_every_operation_conforms_to_its_schema(
    case: Case, data: st.DataObject, app: FastAPI, seeded: Seeded, db: Database
) -> None:
    aim_at_seeded(case, data, seeded)
    before = stored(db)
    response = case.call_and_validate(additional_checks=[problem_details])
    if 400 <= response.status_code < 500:
        assert stored(db) == before, f"a refused {case.method} {case.path} changed stored data"


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck), phases=[Phase.explicit])
def test_every_documented_example_is_answered_as_documented(
    case: Case, app: FastAPI, seeded: Seeded, db: Database
) -> None:
    before = stored(db)
    response = case.call_and_validate(additional_checks=[problem_details])
    if 400 <= response.status_code < 500:
        assert stored(db) == before, f"a refused {case.method} {case.path} changed stored data"


Workflow = schema.as_state_machine()


def test_linked_sequences_conform_to_the_schema(app: FastAPI, db: Database) -> None:
    class LinkedSequences(Workflow):
        """schemathesis's own sequences, from an empty database, plus the problem check."""

        def setup(self) -> None:
            wipe(db)

        def validate_response(
            self, response: Response, case: Case, additional_checks: Any = None, **kwargs: Any
        ) -> None:
            checks = [problem_details]
            super().validate_response(response, case, additional_checks=checks, **kwargs)

    LinkedSequences.run(
        settings=settings(
            max_examples=15,
            stateful_step_count=8,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
    )


# --- by hand: the conversation rules under random sequences ----------------------------------
ROLES = st.sampled_from([None, "owner", "admin", "member"])
CHANNEL = st.sampled_from(["telegram", "whatsapp"])
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)


class ConversationRules(RuleBasedStateMachine):
    """Random sequences of REST calls; after each one the model's rules still hold."""

    people = Bundle("people")
    talks = Bundle("talks")

    def __init__(self, client: TestClient, db: Database) -> None:
        super().__init__()
        self.client = client
        self.db = db
        wipe(db)

    def send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """The call; never a 5xx, and a refusal is a problem that changed nothing."""
        before = stored(self.db)
        response = self.client.request(method, url, **kwargs)
        assert response.status_code < 500, response.text
        if response.status_code >= 400:
            assert_problem(response.status_code, response.headers["content-type"], response.json())
            assert stored(self.db) == before, f"refused {method} {url} changed stored data"
        return response

    @initialize(target=people, numbers=st.sets(st.integers(1, 30), min_size=4, max_size=4))
    def create_customers(self, numbers: set[int]) -> Any:
        return multiple(*(self.create_customer(number) for number in numbers))

    @rule(target=people, number=st.integers(1, 30))
    def create_customer(self, number: int) -> str:
        body = {"external_type": "telegram", "external_id": str(number)}
        response = self.send("POST", "/customers", json=body)
        assert response.status_code in (200, 201), response.text
        return str(response.json()["id"])

    @rule(target=talks, pair=st.lists(people, min_size=2, max_size=2, unique=True), channel=CHANNEL)
    def open_direct(self, pair: list[str], channel: str) -> str:
        return self.open({"type": "direct", "channel": channel}, [(cid, None) for cid in pair])

    @rule(
        target=talks, members=st.lists(people, min_size=2, max_size=4, unique=True), channel=CHANNEL
    )
    def open_multi(self, members: list[str], channel: str) -> str:
        return self.open({"type": "multi", "channel": channel}, [(cid, None) for cid in members])

    @rule(
        target=talks,
        members=st.lists(st.tuples(people, ROLES), max_size=4, unique_by=lambda m: m[0]),
        channel=CHANNEL,
        external_id=st.none() | st.sampled_from(["g1", "g2"]),
    )
    def open_group(
        self, members: list[tuple[str, str | None]], channel: str, external_id: str | None
    ) -> str:
        body = {"type": "group", "channel": channel, "group_name": "Team"}
        return self.open(body | ({"external_id": external_id} if external_id else {}), members)

    def open(self, body: dict[str, Any], members: list[tuple[str, str | None]]) -> str:
        participants = [{"customer_id": cid, "role": role} for cid, role in members]
        response = self.send("POST", "/conversations", json={**body, "participants": participants})
        assert response.status_code in (200, 201), response.text
        return str(response.json()["id"])

    @rule(
        type_=st.sampled_from(["direct", "multi", "group"]),
        members=st.lists(st.tuples(people, ROLES), max_size=4),
        group_name=st.none() | st.sampled_from(["", " ", "Team"]),
    )
    def open_anything(
        self, type_: str, members: list[tuple[str, str | None]], group_name: str | None
    ) -> None:
        """Most of these break a rule: duplicates, roles outside groups, counts, names."""
        participants = [{"customer_id": cid, "role": role} for cid, role in members]
        body = {"type": type_, "channel": "telegram", "participants": participants}
        self.send("POST", "/conversations", json=body | {"group_name": group_name})

    @rule(talk=talks, person=people, role=ROLES)
    def add_participant(self, talk: str, person: str, role: str | None) -> None:
        body = {"customer_id": person, "role": role}
        self.send("POST", f"/conversations/{talk}/participants", json=body)

    @rule(talk=talks, person=people)
    def remove_participant(self, talk: str, person: str) -> None:
        self.send("DELETE", f"/conversations/{talk}/participants/{person}")

    @rule(talk=talks, status=st.sampled_from(["open", "pending", "closed"]))
    def change_status(self, talk: str, status: str) -> None:
        self.send("PATCH", f"/conversations/{talk}", json={"status": status})

    @rule(talk=talks, name=TEXT)
    def rename_group(self, talk: str, name: str) -> None:
        self.send("PATCH", f"/conversations/{talk}", json={"group_name": name})

    @rule(
        talk=talks,
        text=TEXT,
        key=st.none() | st.sampled_from(["k1", "k2"]),
        sender=st.none() | people,
    )
    def send_message(self, talk: str, text: str, key: str | None, sender: str | None) -> None:
        headers = {"Idempotency-Key": key} if key else {}
        body = {"body": text, "sender_customer_id": sender}
        self.send("POST", f"/conversations/{talk}/messages", json=body, headers=headers)

    @invariant()
    def conversations_keep_their_rules(self) -> None:
        with self.db.reading() as conn:
            rows = conn.execute(select(conversations)).all()
            members = dict(
                conn.execute(
                    select(conversation_participants.c.conversation_id, func.count()).group_by(
                        conversation_participants.c.conversation_id
                    )
                ).all()
            )
        for row in rows:
            count = members.get(row.id, 0)
            assert row.type != "direct" or count == 2, f"direct {row.id} has {count}"
            assert row.type != "multi" or count >= 2, f"multi {row.id} has {count}"
            assert row.type != "group" or (row.group_name or "").strip(), row
        live = Counter(r.conversation_key for r in rows if r.status != "closed")
        live.pop(None, None)
        assert all(n == 1 for n in live.values()), f"two live conversations share a key: {live}"

    @invariant()
    def event_sequences_have_no_gaps(self) -> None:
        with self.db.reading() as conn:
            by_aggregate: dict[str, list[int]] = {}
            for row in conn.execute(select(outbox.c.aggregate_id, outbox.c.sequence)):
                by_aggregate.setdefault(row.aggregate_id, []).append(row.sequence)
            reserved = conn.execute(select(aggregate_sequences)).all()
        last = {row.aggregate_id: row.last_sequence for row in reserved}
        for aggregate, sequences in by_aggregate.items():
            assert sorted(sequences) == list(range(1, len(sequences) + 1)), aggregate
            assert last[aggregate] == len(sequences), aggregate


def test_random_sequences_never_break_conversation_rules(client: TestClient, db: Database) -> None:
    run_state_machine_as_test(
        lambda: ConversationRules(client, db),
        settings=settings(
            max_examples=20,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )


# --- regressions the fuzzing found -------------------------------------------------------------
def test_input_a_backend_cannot_keep_is_a_422_problem_that_stores_nothing(
    client: TestClient, db: Database
) -> None:
    someone = client.post("/customers", json={"external_type": "telegram", "external_id": "7"})
    patch = f"/customers/{someone.json()['id']}"
    raw = {"headers": {"content-type": "application/json"}}
    deep = "[" * 70 + "]" * 70
    before = stored(db)
    refused = {
        "NUL": client.post("/customers", json={"external_type": "telegram", "external_id": "\x00"}),
        "NUL key": client.patch(patch, json={"metadata": {"\x00": []}}),
        "NUL lookup": client.get(
            "/customers", params={"external_type": "sms", "external_id": "\x00"}
        ),
        "NUL filter": client.get("/conversations", params={"channel": "\x00"}),
        "NaN": client.patch(patch, content='{"metadata": {"x": NaN}}', **raw),
        "1e999": client.patch(patch, content='{"metadata": {"x": [1e999]}}', **raw),
        "deep": client.patch(patch, content=f'{{"metadata": {{"x": {deep}}}}}', **raw),
    }
    for what, response in refused.items():
        assert response.status_code == 422, (what, response.text)
        assert_problem(422, response.headers["content-type"], response.json())
    assert "NUL" in refused["NUL key"].json()["detail"]
    assert "metadata.\\u0000" in refused["NUL key"].json()["detail"]
    assert "metadata.x.0" in refused["1e999"].json()["detail"]
    assert stored(db) == before


def test_a_cursor_outside_bigint_is_a_400_problem(client: TestClient) -> None:
    response = client.get("/events", params={"after": pagination.encode("events", 2**63, 1)})
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid-cursor"


def test_an_undeclared_method_is_a_405_problem_naming_the_allowed_ones(client: TestClient) -> None:
    response = client.request("TRACE", "/customers")
    assert response.status_code == 405
    assert_problem(405, response.headers["content-type"], response.json())
    assert set(response.headers["allow"].replace(" ", "").split(",")) == {"GET", "POST"}
