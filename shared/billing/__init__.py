"""Provider-neutral billing rules: accounts, the catalog, the credit ledger, payments and
invoices, refunds, subscriptions, which email each change sends, and what both checkouts share."""
