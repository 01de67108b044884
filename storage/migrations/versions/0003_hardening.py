"""hardening: planning problems per action, and settings shared by every process (the link key)

``status_updates.owners_change`` records owners changed by a re-import (``A → A, B``);
``actions.check_problem`` holds why the sweep could not plan an action (shown by ``chaser
status``); ``settings`` holds values every process sharing the database must agree on, such as
the key that signs answer links (created by ``chaser init``).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('settings',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_settings'))
    )
    with op.batch_alter_table('actions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('check_problem', sa.Text(), nullable=True))
    with op.batch_alter_table('status_updates', schema=None) as batch_op:
        batch_op.add_column(sa.Column('owners_change', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('status_updates', schema=None) as batch_op:
        batch_op.drop_column('owners_change')
    with op.batch_alter_table('actions', schema=None) as batch_op:
        batch_op.drop_column('check_problem')
    op.drop_table('settings')
