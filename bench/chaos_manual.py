"""Manual payments in the chaos run: while deliveries are posted, a worker is killed and Redis
restarts, operators race on pending manual payments — each gets an approval and a rejection
released at the same instant from two threads (two sessions, two PostgreSQL backends).

Checked at the end: exactly one decision won per payment (and the store says the same), the
account holds the package's credits if and only if the approval won, and each payment has one
decision email."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from shared import credentials
from shared.billing import ledger, manual_payments
from shared.billing.accounts import ensure_account
from shared.models import EmailOutbox, Payment
from shared.outcome import Outcome

PACKAGE, PACKAGE_CREDITS = "starter", 500  # the seed's starter package


@dataclass
class ManualRace:
    accounts: dict[str, str] = field(default_factory=dict)  # payment id -> account id
    won: dict[str, list[str]] = field(default_factory=dict)  # payment id -> the decisions that won
    errors: list[str] = field(default_factory=list)

    @classmethod
    def prepare(cls, factory: sessionmaker[Session], count: int, prefix: str = "m") -> ManualRace:
        race = cls()
        now = datetime.now(UTC)
        with factory.begin() as session:
            credentials.set_provider(session, "manual", config={"instructions": "chaos: pay by transfer"})
        for n in range(count):
            account_id = f"acct_{prefix}{n:04d}"
            with factory.begin() as session:
                ensure_account(session, account_id, email=f"{prefix}{n}@example.com")
                done = manual_payments.request_manual_payment(
                    session,
                    Outcome(),
                    account_id=account_id,
                    plan_id=None,
                    package_id=PACKAGE,
                    method="bank_transfer",
                    reference=f"CHAOS-{n}",
                    request_key=f"{account_id}:chaos",
                    requested_by="chaos",
                    at=now,
                )
                race.accounts[done.payment.provider_payment_id] = account_id
        return race

    def run(self, factory: sessionmaker[Session]) -> None:
        for pid in self.accounts:
            barrier = threading.Barrier(2)

            def decide(approve: bool, pid: str = pid, barrier: threading.Barrier = barrier) -> str | None:
                barrier.wait()
                with factory.begin() as session:
                    decision = manual_payments.decide(
                        session,
                        Outcome(),
                        pid,
                        approve=approve,
                        actor="chaos:approver" if approve else "chaos:rejecter",
                        reason=None if approve else "chaos",
                        at=datetime.now(UTC),
                    )
                    return ("approve" if approve else "reject") if decision.decided_now else None

            try:
                with ThreadPoolExecutor(2) as pool:
                    self.won[pid] = [w for w in pool.map(decide, (True, False)) if w]
            except Exception as exc:  # noqa: BLE001 - reported as a violation, the run goes on
                self.errors.append(f"{pid}: {type(exc).__name__}: {exc}"[:200])

    def violations(self, factory: sessionmaker[Session]) -> list[str]:
        bad = list(self.errors)
        with factory() as session:
            for pid, account_id in self.accounts.items():
                won = self.won.get(pid, [])
                status = session.scalars(
                    select(Payment.status).filter_by(provider="manual", provider_payment_id=pid)
                ).one()
                emails = session.scalar(
                    select(func.count()).select_from(EmailOutbox).where(EmailOutbox.account_id == account_id)
                )
                expected_status = {("approve",): "succeeded", ("reject",): "rejected"}.get(tuple(won))
                if expected_status is None or status != expected_status:
                    bad.append(f"{pid}: decisions won {won}, status {status}")
                    continue
                want = PACKAGE_CREDITS if status == "succeeded" else 0
                if ledger.balance(session, account_id) != want:
                    bad.append(f"{pid}: balance {ledger.balance(session, account_id)}, expected {want}")
                if emails != 1:
                    bad.append(f"{pid}: {emails} decision emails")
        return bad
