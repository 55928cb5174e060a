"""`make chaos`: a seeded, bounded run of realistic Stripe and PayPal traffic against real PostgreSQL
and Redis while things break, then a check that every promise held (python -m bench.chaos).

What runs: the store on PostgreSQL (DATABASE_URL, default postgresql+psycopg://postgres@127.0.0.1:5432/test,
in a database of its own, dropped after), a redis-server of its own on a free port (so it can be
restarted), gunicorn, two Celery worker instances of two prefork processes each, and a sweeper.
What breaks: deliveries come shuffled, concurrently, 30% of them duplicates; mid-run one worker
instance is SIGKILLed (its main process and its pool, tasks in flight) and started again, and Redis
is stopped and started again. The harness keeps the worker instances running as a supervisor would
(one that exits unasked is started again, and the report lists it).
Some package purchases are disputed (opened, then won or lost); a share of the accounts subscribe
through PayPal, their deliveries verified through a local stand-in of PayPal's verify-webhook-
signature API (bench/chaos_paypal.py); and meanwhile operators race an approval against a rejection
of each of a set of manual payments (bench/chaos_manual.py).
What is checked: no accepted event lost; exactly one credit grant per subscription period (a PayPal
activation and its first sale share one) and per package purchase; each account's ledger sums to
what the scenario says (a lost dispute's credits and a refunded or reversed payment's taken back
once, a won dispute's not); each subscription's status is the one of its newest event (by
`created`); one email per idempotency key; one winning decision per manual payment, its credits
iff approved; every outgoing webhook delivered to a receiver that verifies it (bench/chaos_outgoing.py,
answering 500 to a share of deliveries), none missing, each account's sequence without gaps. Exit
status 1 on any violation.

Environment: CHAOS_EVENTS (deliveries, default 10000), CHAOS_SEED (default 7).
"""

from __future__ import annotations

import http.client
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import func, inspect, select, text
from sqlalchemy.exc import OperationalError

from bench import chaos_outgoing, chaos_paypal, scenario, services
from bench.chaos_manual import ManualRace
from shared import processing
from shared.config import Settings
from shared.models import CreditLedgerEntry, Subscription, WebhookEvent
from shared.models.events import DONE_STATUSES, EventStatus
from worker.celery_app import make_celery
from worker.messages import enqueue_delivery, enqueue_event

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@dataclass
class Config:
    seed: int = 7
    deliveries: int = 10_000
    duplicate_share: float = 0.3
    worker_instances: int = 2
    concurrency: int = 2  # prefork processes per instance: 4 in all
    posters: int = 16
    kill_at: float = 0.3  # share of deliveries posted when a worker instance is SIGKILLed
    redis_restart_at: float = 0.6
    # The sweeper re-queues every event older than the grace that is not done, including ones
    # still waiting in a deep queue: a short grace under a backlog floods the queue with duplicate
    # tasks, so the grace stays long and each sweep is bounded, as in production.
    sweep_every: float = 5.0
    sweep_limit: int = 100
    grace_seconds: int = 60
    visibility_timeout: int = 30
    backoff_max: int = 5
    timeout: float = 900.0
    receiver_failure_share: float = 0.2  # outgoing deliveries the main app's stand-in answers with a 500
    manual_payments: int = 20  # raced approve/reject pairs (bench/chaos_manual.py)
    paypal_share: float = 0.2  # accounts subscribing through PayPal (bench/chaos_paypal.py)


@dataclass
class Report:
    config: Config
    distinct: int = 0
    accounts: int = 0
    deliveries: int = 0
    accepted: int = 0
    posts: int = 0
    post_failures: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)
    grant_violations: list[str] = field(default_factory=list)
    balance_violations: list[str] = field(default_factory=list)
    status_violations: list[str] = field(default_factory=list)
    email_violations: list[str] = field(default_factory=list)
    manual_violations: list[str] = field(default_factory=list)
    manual_payments: int = 0
    emails: int | None = None
    outgoing: dict[str, list[str]] = field(default_factory=dict)
    outgoing_summary: str = ""
    grants: int = 0
    swept: int = 0
    actions: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def violations(self) -> int:
        return sum(
            len(v)
            for v in (
                self.lost,
                self.grant_violations,
                self.balance_violations,
                self.status_violations,
                self.email_violations,
                self.manual_violations,
                *self.outgoing.values(),
            )
        )

    def table(self) -> str:
        def row(name: str, found, expected, bad: list[str]) -> str:
            verdict = "ok" if not bad else f"VIOLATED ({len(bad)}): " + "; ".join(bad[:3])
            return f"| {name} | {found} | {expected} | {verdict} |"

        c = self.config
        lines = [
            f"chaos: seed {c.seed}, {self.posts} posts of {self.deliveries} deliveries "
            f"({self.distinct} distinct events, "
            f"{c.duplicate_share:.0%} duplicates, shuffled) over {self.accounts} accounts, "
            f"{c.worker_instances}x{c.concurrency} worker processes, {self.seconds:.0f} s",
            "chaos actions: " + ("; ".join(self.actions) or "none"),
            f"sweeper re-queued {self.swept} events (duplicates included; harmless by design)",
            f"posts answered non-2xx or failed (then retried): {self.post_failures}",
            f"inbox: {self.statuses}",
            self.outgoing_summary,
            "",
            "| check | found | expected | verdict |",
            "| --- | --- | --- | --- |",
            row("events lost (accepted, never succeeded)", len(self.lost), 0, self.lost),
            row(
                "credit grants per (account, period/payment)",
                f"{self.grants} grants",
                "exactly 1",
                self.grant_violations,
            ),
            row("ledger sum per account", f"{self.accounts} accounts", "scenario's", self.balance_violations),
            row(
                "subscription status = newest event's",
                f"{self.accounts} subscriptions",
                "newest",
                self.status_violations,
            ),
            row(
                "emails per idempotency key",
                "outbox unused" if self.emails is None else f"{self.emails} emails",
                1,
                self.email_violations,
            ),
            row(
                "manual payments: one decision of a raced approve + reject",
                f"{self.manual_payments} payments",
                "exactly 1",
                self.manual_violations,
            ),
            *(row(name, len(bad), 0, bad) for name, bad in chaos_outgoing.rows(self.outgoing)),
            "",
            f"{'PASS' if not self.violations else 'FAIL'}: {self.violations} violations",
        ]
        return "\n".join(lines)


class Supervisor:
    """The worker instances, kept running as systemd's Restart= or Kubernetes would keep them: an
    instance that exits without being told to is started again, and the report says so, with the
    last critical line of its log (before worker/redis_transport.py, kombu 5.7.0 ended workers with
    an unrecoverable error when Redis restarted: see the README's "Chaos")."""

    def __init__(self, config: Config, env: dict, tmp, procs: list[services.Proc], report: Report, say):
        self.config, self.env, self.tmp, self.procs, self.report, self.say = config, env, tmp, procs, report, say
        self.lock = threading.Lock()
        self.instances = [self._start(f"worker{i}") for i in range(config.worker_instances)]

    def _start(self, name: str) -> services.Proc:
        proc = services.start_worker(name, self.env, self.tmp, concurrency=self.config.concurrency)
        self.procs.append(proc)
        return proc

    def kill_and_restart(self, index: int) -> None:
        """The chaos action: SIGKILL an instance (main process and pool, tasks in flight), start it again."""
        with self.lock:
            victim = self.instances[index]
            victim.kill()
            self._note(f"SIGKILLed worker instance {victim.name} (pid {victim.pid} and its pool)")
            self.instances[index] = self._start(f"{victim.name}-restarted")
            self.report.actions.append(f"restarted it as pid {self.instances[index].pid}")

    def watch(self, stop: threading.Event, every: float = 0.5) -> None:
        while not stop.wait(every):
            with self.lock:
                for index, proc in enumerate(self.instances):
                    if proc.alive() or stop.is_set():  # the run's end stops them all
                        continue
                    replacement = self._start(f"{proc.name}-respawned")
                    self.instances[index] = replacement
                    self._note(
                        f"worker instance {proc.name} exited on its own (status {proc.process.returncode}; "
                        f"{_last_critical(proc)}); started again as pid {replacement.pid}, as a supervisor would"
                    )

    def _note(self, action: str) -> None:
        self.report.actions.append(action)
        self.say(f"[chaos] {action}")


def _last_critical(proc: services.Proc) -> str:
    lines = [line for line in proc.log_tail(400).splitlines() if "CRITICAL" in line]
    return lines[-1].split("CRITICAL", 1)[1].strip()[:160] if lines else "no critical line in its log"


def run(config: Config, base_url: str, say: Callable[[str], None] = print) -> Report:
    report = Report(config)
    started = time.monotonic()
    tmp = services.make_tmp("billhook-chaos-")
    store = broker = receiver = paypal = None
    procs: list[services.Proc] = []
    stop = threading.Event()
    try:
        store = services.Store(base_url, tmp)
        if store.kind != "PostgreSQL":
            raise SystemExit("chaos needs PostgreSQL (DATABASE_URL)")
        broker = services.Broker(None, tmp)
        receiver = chaos_outgoing.Receiver(failure_share=config.receiver_failure_share, seed=config.seed)
        receiver.register(store.session_factory)
        paypal = chaos_paypal.start_verifier()
        chaos_paypal.configure(store.session_factory)
        queue = f"chaos_{os.getpid()}"
        env = services.service_env(
            store.url,
            broker.url,
            queue,
            tmp,
            HARNESS_VISIBILITY_TIMEOUT=str(config.visibility_timeout),
            HARNESS_BACKOFF_MAX=str(config.backoff_max),
            # Delivery retries within the run: below the Celery countdown cap (backoff_max).
            BILLHOOK_OUTGOING_RETRY_BASE_SECONDS="0.5",
            BILLHOOK_OUTGOING_RETRY_MAX_SECONDS=str(config.backoff_max - 1),
            PAYPAL_API_BASE=paypal.url,
        )
        stream = scenario.generate(
            config.seed,
            round(config.deliveries * (1 - config.duplicate_share)),
            duplicate_share=config.duplicate_share,
            disputes=True,
            paypal_share=config.paypal_share,
        )
        deliveries = stream.deliveries  # whole accounts: a few more than asked for, never fewer
        report.distinct, report.accounts = len(stream.events), len(stream.expected)
        report.deliveries = len(deliveries)
        say(f"[chaos] {len(deliveries)} deliveries, {len(stream.events)} distinct events, {report.accounts} accounts")

        # Deliveries go where the Procfile's providers send them: the event-loop intake.
        intake = services.start_intake("intake", env, tmp)
        procs.append(intake)
        workers = Supervisor(config, env, tmp, procs, report, say)
        threading.Thread(target=workers.watch, args=(stop,), daemon=True, name="chaos-supervisor").start()
        settings = Settings(database_url=store.url, redis_url=broker.url, var_dir=tmp, queue_name=queue)
        sweeper = threading.Thread(target=_sweep_loop, args=(store, settings, config, stop, report), daemon=True)
        sweeper.start()
        manual = ManualRace.prepare(store.session_factory, config.manual_payments)
        report.manual_payments = len(manual.accounts)
        racing = threading.Thread(target=manual.run, args=(store.session_factory,), daemon=True, name="chaos-manual")
        racing.start()

        accepted = _post_all(
            intake.port,
            deliveries,
            config,
            report,
            say,
            chaos=_chaos(config, broker, workers, report, say),
        )
        report.accepted = len(accepted)
        say(f"[chaos] posted: {report.accepted} distinct events accepted; waiting for the workers")
        _wait_done(store, accepted, config, say)
        racing.join(config.timeout)
        chaos_outgoing.wait_delivered(store, config.timeout, say)
        stop.set()
        sweeper.join()
        _check(store, stream, accepted, report)
        report.manual_violations = manual.violations(store.session_factory)
        report.outgoing = chaos_outgoing.check(store, receiver)
        report.outgoing_summary = chaos_outgoing.summary(receiver, chaos_outgoing.stored_events(store))
    finally:
        stop.set()
        if receiver is not None:
            receiver.stop()
        if paypal is not None:
            paypal.stop()
        services.shut_down(procs, broker, store, tmp)
        report.seconds = time.monotonic() - started
    return report


def _chaos(config, broker, workers: Supervisor, report, say):
    """Actions fired once each when the posted share of deliveries crosses their mark."""
    done: set[str] = set()
    lock = threading.Lock()

    def kill_worker():
        workers.kill_and_restart(0)

    def restart_redis():
        broker.restart(down_seconds=1.0)
        report.actions.append("restarted Redis (down ~1 s)")
        say(f"[chaos] {report.actions[-1]}")

    actions = [(config.kill_at, "kill", kill_worker), (config.redis_restart_at, "redis", restart_redis)]

    def maybe(share: float) -> None:
        for mark, name, action in actions:
            with lock:
                if share < mark or name in done:
                    continue
                done.add(name)
            threading.Thread(target=action, daemon=True, name=f"chaos-{name}").start()

    return maybe


def _post_all(port, deliveries, config, report, say, chaos) -> set[str]:
    """Post every delivery, concurrently, retrying until a 2xx as Stripe and PayPal do; returns
    the ids of the events answered with a 2xx."""
    accepted: set[str] = set()
    lock = threading.Lock()
    cursor = iter(range(len(deliveries)))
    deadline = time.monotonic() + config.timeout

    def poster():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            with lock:
                i = next(cursor, None)
            if i is None:
                conn.close()
                return
            chaos(i / len(deliveries))
            evt = deliveries[i]
            provider = scenario.provider_of(evt)
            while time.monotonic() < deadline:
                # signed when sent, as the providers do
                path, body, headers = chaos_paypal.delivery(provider, evt, services.WEBHOOK_SECRET)
                try:
                    conn.request("POST", path, body=body, headers=headers)
                    response = conn.getresponse()
                    response.read()
                    status = response.status
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                    status = 0
                with lock:
                    report.posts += 1
                    if 200 <= status < 300:
                        accepted.add(evt["id"])
                    else:
                        report.post_failures += 1
                if 200 <= status < 300:
                    break
                time.sleep(0.2)

    threads = [threading.Thread(target=poster, daemon=True) for _ in range(config.posters)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    chaos(1.0)  # a short run may finish posting before an action's mark: fire what is left
    return accepted


def _sweep_loop(store, settings: Settings, config: Config, stop: threading.Event, report: Report) -> None:
    """The sweeper, as beat runs it in production: re-queue events the broker lost or a dead
    worker left behind."""
    celery = make_celery(settings)
    while not stop.wait(config.sweep_every):
        try:
            report.swept += len(
                processing.sweep(
                    store.session_factory,
                    lambda pk: enqueue_event(celery, pk),
                    now=datetime.now(UTC),
                    grace_seconds=config.grace_seconds,
                    limit=config.sweep_limit,
                )
            )
            report.swept += chaos_outgoing.sweep(
                store,
                lambda pk: enqueue_delivery(celery, pk),
                grace_seconds=config.grace_seconds,
                limit=config.sweep_limit,
            )
        except Exception:  # noqa: BLE001,S112 - the broker may be down right now: sweep again later
            continue


def _wait_done(store, accepted: set[str], config: Config, say) -> None:
    deadline = time.monotonic() + config.timeout
    last = None
    while time.monotonic() < deadline:
        with store.session_factory() as session:
            counts = dict(
                session.execute(select(WebhookEvent.status, func.count()).group_by(WebhookEvent.status)).all()
            )
        done = sum(n for s, n in counts.items() if s in DONE_STATUSES)
        if done >= len(accepted):
            return
        if done + counts.get(EventStatus.FAILED, 0) >= len(accepted):  # a failed event never gets done: report it
            with store.session_factory() as session:
                failed = session.execute(
                    select(WebhookEvent.event_id, WebhookEvent.type, WebhookEvent.last_error)
                    .where(WebhookEvent.status == EventStatus.FAILED)
                    .limit(5)
                ).all()
            for event_id, event_type, error in failed:
                say(f"[chaos] failed: {event_id} ({event_type}): {error}")
            return
        if counts != last:
            last = counts
        time.sleep(0.5)
    say(f"[chaos] gave up waiting after {config.timeout:.0f} s: {last}")


def _check(store, stream: scenario.Scenario, accepted: set[str], report: Report) -> None:
    with store.session_factory() as session:
        rows = session.execute(select(WebhookEvent.event_id, WebhookEvent.status)).all()
        report.statuses = dict(
            session.execute(select(WebhookEvent.status, func.count()).group_by(WebhookEvent.status)).all()
        )
        by_id = dict(rows)
        report.lost = sorted(
            f"{eid} ({by_id.get(eid, 'not stored')})" for eid in accepted if by_id.get(eid) not in DONE_STATUSES
        )
        never_accepted = {e["id"] for e in stream.events} - accepted
        report.lost += sorted(f"{eid} (never accepted)" for eid in never_accepted)

        ledger = session.execute(
            select(
                CreditLedgerEntry.account_id, CreditLedgerEntry.kind, func.count(), func.sum(CreditLedgerEntry.amount)
            ).group_by(CreditLedgerEntry.account_id, CreditLedgerEntry.kind)
        ).all()
        per_kind = {(a, k): n for a, k, n, _ in ledger}
        report.grants = sum(n for _a, k, n, _t in ledger if k in ("subscription_grant", "purchase_grant"))
        balance: dict[str, int] = {}
        for a, _k, _n, total in ledger:
            balance[a] = balance.get(a, 0) + int(total)
        doubled = session.execute(
            select(CreditLedgerEntry.payment_id, CreditLedgerEntry.kind, func.count())
            .where(CreditLedgerEntry.payment_id.is_not(None))
            .group_by(CreditLedgerEntry.payment_id, CreditLedgerEntry.kind)
            .having(func.count() > 1)
        ).all()
        report.grant_violations += [f"payment {p}: {n} {k} entries" for p, k, n in doubled]
        statuses = dict(session.execute(select(Subscription.provider_subscription_id, Subscription.status)).all())
        report.emails, report.email_violations = _emails(session)

    for account_id, exp in stream.expected.items():
        for kind, want in (
            ("subscription_grant", exp.subscription_grants),
            ("purchase_grant", exp.purchase_grants),
            ("refund_reversal", exp.reversals),
        ):
            got = per_kind.get((account_id, kind), 0)
            if got != want:
                report.grant_violations.append(f"{account_id}: {got} {kind} entries, expected {want}")
        if balance.get(account_id, 0) != exp.balance:
            report.balance_violations.append(f"{account_id}: {balance.get(account_id, 0)}, expected {exp.balance}")
        if statuses.get(exp.subscription_id) != exp.status:
            report.status_violations.append(
                f"{exp.subscription_id}: {statuses.get(exp.subscription_id)}, expected {exp.status}"
            )


def _emails(session) -> tuple[int | None, list[str]]:
    """One email per idempotency key, once the email outbox is in use."""
    if "email_outbox" not in inspect(session.connection()).get_table_names():
        return None, []
    total = session.execute(text("SELECT count(*) FROM email_outbox")).scalar_one()
    if not total:
        return None, []
    doubled = session.execute(
        text("SELECT idempotency_key, count(*) FROM email_outbox GROUP BY idempotency_key HAVING count(*) > 1")
    ).all()
    return total, [f"{key}: {n} emails" for key, n in doubled]


def main() -> int:
    config = Config(
        seed=int(os.environ.get("CHAOS_SEED") or 7), deliveries=int(os.environ.get("CHAOS_EVENTS") or 10_000)
    )
    base = os.environ.get("DATABASE_URL") or DEFAULT_PG
    try:
        report = run(config, base, say=lambda m: print(m, file=sys.stderr, flush=True))
    except OperationalError as exc:
        print(f"chaos needs PostgreSQL (DATABASE_URL): {type(exc.orig).__name__}: {exc.orig}", file=sys.stderr)
        return 2
    print(report.table(), flush=True)
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
