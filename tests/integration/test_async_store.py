"""The event-loop intake's store (web/webhooks/async_store.py) on PostgreSQL, driven in-process:
deliveries that arrive while the connections are busy are committed together, each one answered
as if it had been stored alone (new, or the row already there), and one delivery's fault or a
dropped connection costs no other delivery its row."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import psycopg
import pytest

from shared.db import JsonText
from web.context import Billhook
from web.webhooks.async_store import APPLICATION_NAME, AsyncIntakeStore, StoreError

pytestmark = [pytest.mark.postgres]


def _fields(event_id: str, *, provider: str = "stripe", handled: bool = True) -> dict:
    return {
        "provider": provider,
        "event_id": event_id,
        "type": "invoice.paid",
        "payload": JsonText(f'{{"id": "{event_id}", "object": "event"}}'),
        "event_created_at": datetime(2026, 12, 1, tzinfo=UTC),
        "handled": handled,
        "at": datetime.now(UTC),
    }


@pytest.fixture
def ext(pg_settings):
    ext = Billhook(pg_settings, lambda _id: None, lambda _id: None, None)
    yield ext
    ext.dispose()


def _admin(pg_settings) -> psycopg.Connection:
    return psycopg.connect(pg_settings.database_url.replace("+psycopg", ""), autocommit=True)


def _rows(pg_settings) -> dict[tuple[str, str], tuple[int, str, str]]:
    """(provider, event_id) -> (id, status, the inserting transaction's id)."""
    with _admin(pg_settings) as conn:
        found = conn.execute("SELECT provider, event_id, id, status, xmin::text FROM webhook_events").fetchall()
    return {(provider, event_id): (pk, status, xmin) for provider, event_id, pk, status, xmin in found}


def _store_together(ext, deliveries: list[dict], *, connections: int = 1) -> list:
    """Each delivery stored at once, as concurrent requests would: the answers (or errors)."""

    async def run():
        store = AsyncIntakeStore(ext, connections=connections)
        try:
            return await asyncio.gather(*(store.store_event(**d) for d in deliveries), return_exceptions=True)
        finally:
            await store.close()

    return asyncio.run(run())


def test_deliveries_waiting_together_commit_in_one_statement_each_answered_as_alone(ext, pg_settings):
    (earlier,) = _store_together(ext, [_fields("evt_earlier")])
    deliveries = [
        _fields("evt_a"),
        _fields("evt_earlier"),  # stored before: found
        _fields("evt_b", handled=False),  # kept, as ignored
        _fields("evt_a"),  # the same event twice in the batch: new once
        _fields("evt_a", provider="paypal"),  # another provider's event of the same id
    ]

    answers = _store_together(ext, deliveries)

    rows = _rows(pg_settings)
    assert [(a.new, a.status) for a in answers] == [
        (True, "received"),
        (False, "received"),
        (True, "ignored"),
        (False, "received"),
        (True, "received"),
    ]
    assert answers[1].id == earlier.id and answers[3].id == answers[0].id
    assert [a.id for a in answers] == [rows[d["provider"], d["event_id"]][0] for d in deliveries]
    assert len(rows) == 4
    new_transactions = {rows[key][2] for key in [("stripe", "evt_a"), ("stripe", "evt_b"), ("paypal", "evt_a")]}
    assert len(new_transactions) == 1, "the batch's rows commit together"
    assert rows["stripe", "evt_earlier"][2] not in new_transactions


def test_a_delivery_the_database_refuses_fails_alone_and_its_neighbours_are_stored(ext, pg_settings):
    too_long = "evt_" + "x" * 200  # over the column's 128 (the parser refuses it before the store)

    answers = _store_together(ext, [_fields("evt_one"), _fields(too_long), _fields("evt_two")])

    assert isinstance(answers[1], StoreError)
    assert "x" * 20 not in str(answers[1]), "the error carries no parameters"
    assert [a.new for a in (answers[0], answers[2])] == [True, True]
    assert set(_rows(pg_settings)) == {("stripe", "evt_one"), ("stripe", "evt_two")}


def test_a_batch_on_connections_the_server_dropped_is_stored_on_fresh_ones(ext, pg_settings):
    async def run():
        store = AsyncIntakeStore(ext, connections=2)
        try:
            await store.store_event(**_fields("evt_open"))  # a connection of the store's open, then idle
            with _admin(pg_settings) as conn:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                    (APPLICATION_NAME,),
                )
            return await asyncio.gather(*(store.store_event(**_fields(f"evt_{n}")) for n in range(5)))
        finally:
            await store.close()

    answers = asyncio.run(run())

    assert [a.new for a in answers] == [True] * 5
    assert len(_rows(pg_settings)) == 6


def test_more_deliveries_than_a_batch_holds_are_all_stored(ext, pg_settings, monkeypatch):
    monkeypatch.setattr("web.webhooks.async_store.MAX_BATCH", 4)

    answers = _store_together(ext, [_fields(f"evt_{n}") for n in range(10)], connections=2)

    rows = _rows(pg_settings)
    assert [a.new for a in answers] == [True] * 10
    assert len(rows) == 10
    assert len({xmin for _pk, _status, xmin in rows.values()}) >= 3, "no statement holds more than MAX_BATCH"


async def _blocked_on(pg_settings, event_id: str):
    """A transaction holding `event_id`'s row uncommitted: an INSERT of it waits for its end."""
    holder = await psycopg.AsyncConnection.connect(pg_settings.database_url.replace("+psycopg", ""))
    await holder.execute(
        "INSERT INTO webhook_events (provider, event_id, type, payload, received_at, updated_at, status, attempts)"
        " VALUES ('stripe', %s, 'invoice.paid', '{}', now(), now(), 'received', 0)",
        (event_id,),
    )
    return holder


def test_a_request_that_goes_away_takes_no_other_delivery_of_its_batch_with_it(ext, pg_settings):
    async def run():
        store = AsyncIntakeStore(ext, connections=1)
        holder = await _blocked_on(pg_settings, "evt_held")
        try:
            gone = asyncio.ensure_future(store.store_event(**_fields("evt_gone")))
            neighbour = asyncio.ensure_future(store.store_event(**_fields("evt_held")))
            await asyncio.sleep(0.2)  # the batch of both is waiting on the held row
            gone.cancel()
            await holder.rollback()  # the held row gone: the batch's INSERT goes through
            return await neighbour
        finally:
            await holder.close()
            await store.close()

    neighbour = asyncio.run(run())

    assert neighbour.new is True
    assert set(_rows(pg_settings)) == {("stripe", "evt_gone"), ("stripe", "evt_held")}


def test_a_batch_cancelled_mid_statement_answers_each_of_its_deliveries(ext, pg_settings):
    async def run():
        store = AsyncIntakeStore(ext, connections=1)
        holder = await _blocked_on(pg_settings, "evt_held")
        try:
            waiting = [asyncio.ensure_future(store.store_event(**_fields(f"evt_{n}"))) for n in ("held", "other")]
            await asyncio.sleep(0.2)  # their batch is waiting on the held row
            for task in asyncio.all_tasks() - {asyncio.current_task(), *waiting}:
                task.cancel()  # as a loop that is shutting down cancels what still runs
            return await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), 5)
        finally:
            await holder.rollback()
            await holder.close()
            await store.close()

    answers = asyncio.run(run())

    assert [type(a).__name__ for a in answers] == ["StoreUnavailable", "StoreUnavailable"]
    assert _rows(pg_settings) == {}
