"""Customer find-or-create and updates on real SQLite and PostgreSQL."""

from __future__ import annotations

import threading

from kobliat.customers import service
from kobliat.db.engine import Database
from kobliat.db.tables import customers
from tests.builders import a_customer, count, events_of


def test_whatsapp_id_without_plus_and_with_plus_are_one_customer(db: Database) -> None:
    first, created = db.run(
        lambda uow: service.find_or_create(
            uow, external_type="whatsapp", external_id="447700900123"
        )
    )
    second, created_again = db.run(
        lambda uow: service.find_or_create(
            uow, external_type="whatsapp", external_id="+44 7700 900123"
        )
    )
    assert created and not created_again
    assert first.id == second.id
    assert first.external_id == "+447700900123"
    assert len(events_of(db, "customer.created")) == 1


def test_brazil_and_mexico_variants_resolve_to_one_customer(db: Database) -> None:
    pairs = [("5511987654321", "551187654321"), ("5215512345678", "525512345678")]
    for long_form, short_form in pairs:
        a, _ = db.run(
            lambda uow, v=long_form: service.find_or_create(
                uow, external_type="whatsapp", external_id=v
            )
        )
        b, _ = db.run(
            lambda uow, v=short_form: service.find_or_create(
                uow, external_type="whatsapp", external_id=v
            )
        )
        assert a.id == b.id
    assert count(db, customers) == 2


def test_fifty_simultaneous_first_contacts_create_one_customer_and_one_event(db: Database) -> None:
    barrier = threading.Barrier(50)
    ids: list[str] = []
    errors: list[BaseException] = []

    def contact() -> None:
        try:
            barrier.wait()
            customer, _ = db.run(
                lambda uow: service.find_or_create(
                    uow, external_type="whatsapp", external_id="15550001111", name="Ana"
                )
            )
            ids.append(str(customer.id))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=contact) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(ids) == 50 and len(set(ids)) == 1
    assert count(db, customers) == 1
    assert len(events_of(db, "customer.created")) == 1


def test_profile_update_merges_metadata_and_emits_updated_once(db: Database) -> None:
    customer = a_customer(db, name="Ana", metadata={"tier": "gold", "lang": "pt"})
    after = db.run(
        lambda uow: service.update_profile(
            uow, customer.id, name="Ana Paula", metadata={"lang": "en", "tier": None, "vip": True}
        )
    )
    assert after.name == "Ana Paula"
    assert after.metadata == {"lang": "en", "vip": True}
    unchanged = db.run(lambda uow: service.update_profile(uow, customer.id, name="Ana Paula"))
    assert unchanged.updated_at == after.updated_at
    updates = events_of(db, "customer.updated")
    assert len(updates) == 1
    assert updates[0]["data"]["changes"] == {
        "name": "Ana Paula",
        "metadata": {"lang": "en", "tier": None, "vip": True},
    }
    assert updates[0]["sequence"] == 2  # customer.created was 1
