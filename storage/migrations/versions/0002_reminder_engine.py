"""reminder engine: outbox, nudge keys, sweeps, snooze, pause, leave and cover

Every existing action is due for a first look by the sweep (next_check_at in the past).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('sweeps',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('duration_ms', sa.Integer(), nullable=False),
    sa.Column('actions_checked', sa.Integer(), nullable=False),
    sa.Column('nudges_planned', sa.Integer(), nullable=False),
    sa.Column('messages_queued', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sweeps'))
    )
    with op.batch_alter_table('sweeps', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sweeps_at'), ['at'], unique=False)

    op.create_table('outbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=30), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=True),
    sa.Column('recipient', sa.String(length=320), nullable=False),
    sa.Column('channel', sa.String(length=30), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('claimed_by', sa.String(length=100), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('receipt', sa.String(length=500), nullable=True),
    sa.Column('possible_duplicate', sa.Boolean(), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sweep_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("state IN ('queued','sending','sent','failed','parked')", name=op.f('ck_outbox_state')),
    sa.ForeignKeyConstraint(['person_id'], ['people.id'], name=op.f('fk_outbox_person_id_people'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['sweep_id'], ['sweeps.id'], name=op.f('fk_outbox_sweep_id_sweeps'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_state_next_attempt_at', ['state', 'next_attempt_at'], unique=False)

    op.create_table('nudge_keys',
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('action_id', sa.Integer(), nullable=True),
    sa.Column('person_id', sa.Integer(), nullable=True),
    sa.Column('rule', sa.String(length=20), nullable=False),
    sa.Column('outbox_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['action_id'], ['actions.id'], name=op.f('fk_nudge_keys_action_id_actions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['outbox_id'], ['outbox.id'], name=op.f('fk_nudge_keys_outbox_id_outbox'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['person_id'], ['people.id'], name=op.f('fk_nudge_keys_person_id_people'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_nudge_keys'))
    )
    with op.batch_alter_table('nudge_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_nudge_keys_action_id'), ['action_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_nudge_keys_outbox_id'), ['outbox_id'], unique=False)

    with op.batch_alter_table('actions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('snoozed_until', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('next_check_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_actions_next_check_at'), ['next_check_at'], unique=False)
    actions = sa.table("actions", sa.column("next_check_at", sa.DateTime()))
    op.execute(actions.update().values(next_check_at=dt.datetime(2000, 1, 1)))

    with op.batch_alter_table('people', schema=None) as batch_op:
        batch_op.add_column(sa.Column('away_until', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('cover_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_people_cover_id_people'), 'people', ['cover_id'], ['id'], ondelete='SET NULL')

    with op.batch_alter_table('plans', schema=None) as batch_op:
        batch_op.add_column(sa.Column('paused', sa.Boolean(), server_default=sa.false(), nullable=False))




def downgrade() -> None:

    with op.batch_alter_table('plans', schema=None) as batch_op:
        batch_op.drop_column('paused')

    with op.batch_alter_table('people', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_people_cover_id_people'), type_='foreignkey')
        batch_op.drop_column('cover_id')
        batch_op.drop_column('away_until')

    with op.batch_alter_table('actions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_actions_next_check_at'))
        batch_op.drop_column('next_check_at')
        batch_op.drop_column('snoozed_until')

    with op.batch_alter_table('nudge_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_nudge_keys_outbox_id'))
        batch_op.drop_index(batch_op.f('ix_nudge_keys_action_id'))

    op.drop_table('nudge_keys')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_state_next_attempt_at')

    op.drop_table('outbox')
    with op.batch_alter_table('sweeps', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sweeps_at'))

    op.drop_table('sweeps')

