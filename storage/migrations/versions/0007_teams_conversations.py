"""teams conversations: where the Teams bot can reach a person, and whether they blocked it

- ``people.teams_conversation``: the conversation reference the Bot Connector gave when the
  app was installed for this person or they first wrote to the bot (JSON: ``service_url``,
  ``conversation_id``, ``tenant_id``, ``user_id``, ``stored_at``). Teams cannot message
  someone by email: without it the Teams channel cannot reach them (``chaser teams status``).
- ``people.teams_blocked_at``: when Teams answered 403 because the person blocked or removed
  the bot; routing skips Teams for them until the app is installed again.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('people', schema=None) as batch_op:
        batch_op.add_column(sa.Column('teams_conversation', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('teams_blocked_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('people', schema=None) as batch_op:
        batch_op.drop_column('teams_blocked_at')
        batch_op.drop_column('teams_conversation')
