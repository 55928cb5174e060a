"""The durable inbox of provider events: stored once (`record`), locked for a run and marked
done only with its effects (`lock_event`, `claimed`), found again when its message was lost
(`sweep`). The `@handles` table is `registry`."""

from shared.inbox.claiming import (
    claimed,
    ignored,
    lock_event,
    lock_events,
    mark,
    mark_ignored,
    mark_succeeded,
    record_failure,
    succeeded,
)
from shared.inbox.record import (
    BatchSql,
    IntakeSql,
    Stored,
    record_event,
    record_event_on_cursor,
    record_events_on_async_cursor,
)
from shared.inbox.sweep import counts_by_status, due_for_sweep, restart_sweep_clock

__all__ = [
    "BatchSql",
    "IntakeSql",
    "Stored",
    "claimed",
    "counts_by_status",
    "due_for_sweep",
    "ignored",
    "lock_event",
    "lock_events",
    "mark",
    "mark_ignored",
    "mark_succeeded",
    "record_event",
    "record_events_on_async_cursor",
    "record_event_on_cursor",
    "record_failure",
    "restart_sweep_clock",
    "succeeded",
]
