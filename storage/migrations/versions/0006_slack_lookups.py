"""slack look-ups: when a person was last looked up in Slack by their email

- ``people.slack_checked_at``: the time the Slack channel asked ``users.lookupByEmail`` about
  this person (and wrote ``people.slack_id`` when Slack knew them). A person Slack does not
  know is not asked about again for a day, so routing moves their messages straight on to the
  next channel without a call to Slack. NULL: never looked up (everyone, after the upgrade).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('people', schema=None) as batch_op:
        batch_op.add_column(sa.Column('slack_checked_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('people', schema=None) as batch_op:
        batch_op.drop_column('slack_checked_at')
