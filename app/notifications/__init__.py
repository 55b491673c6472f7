"""Notifications without content: an outbox written in the transaction of the change,
delivered by a background job as e-mail to staff and signed webhooks."""
