"""The components/schemas of the billing API's OpenAPI document (web/openapi.py): the answers'
shapes, by name."""

from __future__ import annotations

from web.invoices import INVOICE_SCHEMA

SCHEMAS = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "provider": {"type": "string", "description": "On 502: the provider that failed"},
                },
            }
        },
    },
    "Invoice": INVOICE_SCHEMA,
    "Plan": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "price_cents": {"type": "integer"},
            "currency": {"type": "string"},
            "interval": {"type": "string"},
            "included_credits": {"type": "integer"},
            "providers": {"type": "array", "items": {"type": "string", "enum": ["stripe", "paypal"]}},
        },
    },
    "CreditPackage": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "credits": {"type": "integer"},
            "price_cents": {"type": "integer"},
            "currency": {"type": "string"},
            "providers": {"type": "array", "items": {"type": "string", "enum": ["stripe", "paypal"]}},
        },
    },
    "Account": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "email": {"type": "string", "nullable": True},
            "name": {"type": "string", "nullable": True},
            "has_stripe_customer": {"type": "boolean"},
            "balance": {"type": "integer"},
            "entitled": {
                "type": "boolean",
                "description": "Whether the account has its plan's service now: a live subscription, past_due"
                " only until its grace ends (what the internal API's entitlement says).",
            },
            "subscription": {
                "type": "object",
                "nullable": True,
                "properties": {
                    "provider": {"type": "string"},
                    "id": {"type": "string"},
                    "plan_id": {"type": "string", "nullable": True},
                    "status": {"type": "string"},
                    "current_period_start": {"type": "string", "format": "date-time", "nullable": True},
                    "current_period_end": {"type": "string", "format": "date-time", "nullable": True},
                    "cancel_at_period_end": {"type": "boolean"},
                    "grace_ends_at": {
                        "type": "string",
                        "format": "date-time",
                        "nullable": True,
                        "description": "When a past_due subscription's grace ends (the plan's"
                        " past_due_grace_days from when it fell past due); null unless past_due.",
                    },
                },
            },
            "disputes": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "provider": {"type": "string"},
                        "id": {"type": "string"},
                        "state": {"type": "string", "enum": ["open", "won", "lost"]},
                        "provider_status": {"type": "string", "nullable": True},
                        "amount_cents": {"type": "integer"},
                        "currency": {"type": "string"},
                        "credits_reversed": {"type": "integer"},
                        "credits_restored": {"type": "integer"},
                        "opened_at": {"type": "string", "format": "date-time", "nullable": True},
                        "closed_at": {"type": "string", "format": "date-time", "nullable": True},
                    },
                },
            },
            "ledger": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "at": {"type": "string", "format": "date-time"},
                        "amount": {"type": "integer"},
                        "kind": {"type": "string"},
                        "description": {"type": "string"},
                    },
                },
            },
        },
    },
    "ManualPayment": {
        "type": "object",
        "required": ["id", "status", "amount_cents", "currency", "method"],
        "properties": {
            "id": {"type": "string"},
            "status": {"type": "string", "enum": ["pending", "succeeded", "rejected"]},
            "amount_cents": {"type": "integer"},
            "currency": {"type": "string"},
            "plan_id": {"type": "string", "nullable": True},
            "package_id": {"type": "string", "nullable": True},
            "method": {"type": "string"},
            "reference": {"type": "string", "nullable": True},
            "requested_at": {"type": "string", "format": "date-time"},
            "decided_at": {"type": "string", "format": "date-time", "nullable": True},
            "invoice": {
                "type": "object",
                "nullable": True,
                "properties": {
                    "number": {"type": "string"},
                    "status": {"type": "string", "enum": ["open", "paid", "void"]},
                    "payment_instructions": {"type": "string", "nullable": True},
                },
            },
            "duplicate": {"type": "boolean"},
        },
    },
    "CheckoutSynced": {
        "type": "object",
        "required": ["session_id", "status", "applied"],
        "properties": {
            "session_id": {"type": "string"},
            "status": {"type": "string", "nullable": True, "description": "open, complete or expired"},
            "payment_status": {"type": "string", "nullable": True},
            "mode": {"type": "string", "nullable": True},
            "applied": {"type": "boolean", "description": "Whether the account now shows what it bought"},
        },
    },
    "StripeSubscription": {
        "type": "object",
        "description": "The subscription as Stripe answered the change",
        "required": ["subscription_id", "status", "cancel_at_period_end"],
        "properties": {
            "subscription_id": {"type": "string"},
            "status": {"type": "string"},
            "cancel_at_period_end": {"type": "boolean"},
            "current_period_end": {"type": "integer", "nullable": True, "description": "Unix seconds"},
        },
    },
    "CheckoutStarted": {
        "type": "object",
        "required": ["action", "checkout_url", "session_id"],
        "properties": {
            "action": {"type": "string", "enum": ["checkout"]},
            "checkout_url": {"type": "string"},
            "session_id": {"type": "string"},
        },
    },
    "PlanChanged": {
        "type": "object",
        "required": ["action", "subscription_id", "plan_id"],
        "properties": {
            "action": {"type": "string", "enum": ["plan_changed"]},
            "subscription_id": {"type": "string"},
            "from_plan_id": {"type": "string", "nullable": True},
            "plan_id": {"type": "string"},
            "proration_behavior": {"type": "string", "enum": ["create_prorations", "always_invoice", "none"]},
            "status": {"type": "string"},
        },
    },
    "CreditCheckoutStarted": {
        "type": "object",
        "required": ["checkout_url", "session_id"],
        "properties": {
            "checkout_url": {"type": "string"},
            "session_id": {"type": "string"},
            "credits": {"type": "integer"},
        },
    },
    "PayPalOrderCreated": {
        "type": "object",
        "required": ["order_id", "approve_url"],
        "properties": {
            "order_id": {"type": "string"},
            "approve_url": {"type": "string"},
            "status": {"type": "string"},
        },
    },
    "PayPalOrderCaptured": {
        "type": "object",
        "required": ["order_id", "status", "credits_granted", "balance"],
        "properties": {
            "order_id": {"type": "string"},
            "capture_id": {"type": "string", "nullable": True},
            "status": {"type": "string", "description": "The capture's status: COMPLETED or PENDING"},
            "credits_granted": {"type": "integer", "description": "Credits granted by this call (0 on a repeat)"},
            "balance": {"type": "integer"},
        },
    },
    "PayPalPlanChange": {
        "type": "object",
        "required": ["subscription_id", "plan_id", "approve_url"],
        "properties": {
            "subscription_id": {"type": "string"},
            "plan_id": {"type": "string"},
            "approve_url": {"type": ["string", "null"]},
        },
    },
    "PayPalCancelRequested": {
        "type": "object",
        "required": ["subscription_id", "status"],
        "properties": {
            "subscription_id": {"type": "string"},
            "status": {"type": "string", "enum": ["cancel_requested"]},
        },
    },
    "PayPalSubscriptionCreated": {
        "type": "object",
        "required": ["subscription_id", "approve_url"],
        "properties": {
            "subscription_id": {"type": "string"},
            "approve_url": {"type": "string"},
            "status": {"type": "string"},
        },
    },
}
