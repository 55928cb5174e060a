"""Email: the outbox (queued in the transaction of the change it tells about), rendering, and
delivery through Resend, SMTP or the log."""
