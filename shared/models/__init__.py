"""Typed declarative models. Constraints live here and in the migration: the database makes
exactly-once true."""

from shared.models.accounts import Account
from shared.models.base import Base, utcnow
from shared.models.billing import CreditLedgerEntry, Invoice, Payment, Subscription
from shared.models.catalog import CreditPackage, Plan, PlanStripePrice
from shared.models.disputes import Dispute
from shared.models.emails import EmailOutbox
from shared.models.events import WebhookEvent
from shared.models.invoicing import CreditNote, InvoiceCounter
from shared.models.manual_payments import ManualPayment
from shared.models.outgoing import OutgoingDelivery, OutgoingEndpoint, OutgoingEvent
from shared.models.providers import IntegrationProvider

__all__ = [
    "Account",
    "Base",
    "CreditLedgerEntry",
    "CreditNote",
    "CreditPackage",
    "Dispute",
    "EmailOutbox",
    "IntegrationProvider",
    "Invoice",
    "InvoiceCounter",
    "ManualPayment",
    "OutgoingDelivery",
    "OutgoingEndpoint",
    "OutgoingEvent",
    "Payment",
    "Plan",
    "PlanStripePrice",
    "Subscription",
    "WebhookEvent",
    "utcnow",
]
