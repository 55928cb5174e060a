"""The chaos run's configuration and its report: what was done, what was found, and the verdict
table (bench/chaos.py runs it)."""

from __future__ import annotations

from dataclasses import dataclass, field


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
    receiver_failure_share: float = 0.2  # deliveries the main app's stand-in answers with a 500


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
                "outgoing deliveries not delivered",
                len(self.outgoing.get("undelivered", [])),
                0,
                self.outgoing.get("undelivered", []),
            ),
            row(
                "outgoing events missing at the receiver",
                len(self.outgoing.get("missing", [])),
                0,
                self.outgoing.get("missing", []),
            ),
            row(
                "outgoing sequence gaps per account",
                len(self.outgoing.get("gaps", [])),
                0,
                self.outgoing.get("gaps", []),
            ),
            row(
                "outgoing signatures refused",
                len(self.outgoing.get("refused", [])),
                0,
                self.outgoing.get("refused", []),
            ),
            "",
            f"{'PASS' if not self.violations else 'FAIL'}: {self.violations} violations",
        ]
        return "\n".join(lines)
