"""PayPal reconciliation in a real worker on PostgreSQL and Redis: the events PayPal's list holds
that never arrived are stored, processed once, and a late delivery of one is a duplicate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from shared import credentials
from shared.models import Subscription, WebhookEvent
from tests.factories import paypal_events as pe
from tests.fakes.paypal_api import CLIENT_ID, CLIENT_SECRET
from tests.integration import support

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def paypal_settings(pg_settings, pg_session_factory, fake_paypal):
    with pg_session_factory.begin() as session:
        credentials.set_provider(session, "paypal", api_key=CLIENT_ID, api_secret=CLIENT_SECRET)
    return pg_settings.with_overrides(paypal_api_base=fake_paypal.url)


def test_reconcile_task_stores_missed_paypal_events_and_they_are_processed_once(
    paypal_settings, pg_session_factory, worker_factory, celery_app, fake_paypal
):
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    missed = [
        pe.event(
            "BILLING.SUBSCRIPTION.ACTIVATED",
            pe.subscription(
                account_id=f"acct_pprec_{i}",
                plan_id="growth",
                paypal_plan_id="P-BILLHOOK-GROWTH",
                subscription_id=f"I-PPREC{i}",
                start_time=start,
            ),
            created=start,
        )
        for i in range(2)
    ]
    fake_paypal.webhook_events = missed
    worker_factory(paypal_settings)

    celery_app.send_task("billhook.reconcile_paypal", queue=paypal_settings.queue_name)
    support.wait_for(
        lambda: support.all_succeeded(pg_session_factory, [e["id"] for e in missed], provider="paypal"),
        message="reconciled PayPal events",
    )
    celery_app.send_task("billhook.reconcile_paypal", queue=paypal_settings.queue_name)
    support.wait_for(
        lambda: len(fake_paypal.calls("GET", "/v1/notifications/webhooks-events")) >= 2, message="second run"
    )
    with pg_session_factory() as session:
        assert session.scalar(select(func.count()).select_from(WebhookEvent)) == 2
        statuses = session.scalars(select(Subscription.status).where(Subscription.provider == "paypal")).all()
        assert sorted(statuses) == ["active", "active"]
