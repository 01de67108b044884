"""The outside world: one module per channel (Slack, Teams, email, web form, outbox folder).

Channels arrive with the reminder engine; they call storage functions such as
``storage.updates.record_update`` and never touch SQL directly.
"""
