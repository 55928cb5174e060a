"""The small set of exceptions billhook's domain raises. The worker retries transient ones and
marks the event failed on permanent ones; web maps them to JSON errors."""

from __future__ import annotations


class BillhookError(Exception):
    """Base class."""


class TransientError(BillhookError):
    """Worth retrying: the same work may succeed later."""


class RetryLater(TransientError):
    """The event depends on something billhook has not seen yet (events arrive in any order)."""


class PermanentError(BillhookError):
    """Retrying cannot help: the event is marked failed with this message."""


class NotConfigured(BillhookError):
    """A provider is not set up in the integration providers table."""


class ProviderError(BillhookError):
    """A provider's API refused or failed a call."""

    def __init__(self, provider: str, message: str, *, status: int | None = None, retryable: bool = False):
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.message = message
        self.status = status
        self.retryable = retryable


class ProviderTimeout(ProviderError):
    """A provider did not answer within billhook's time bound for the call (retries included)."""
