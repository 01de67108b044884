"""tracker core schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-24
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('people',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=300), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('slack_id', sa.String(length=50), nullable=True),
    sa.Column('teams_id', sa.String(length=200), nullable=True),
    sa.Column('manager_id', sa.Integer(), nullable=True),
    sa.Column('delegate_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['delegate_id'], ['people.id'], name=op.f('fk_people_delegate_id_people'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['manager_id'], ['people.id'], name=op.f('fk_people_manager_id_people'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_people')),
    sa.UniqueConstraint('email', name=op.f('uq_people_email'))
    )
    op.create_table('plans',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=300), nullable=False),
    sa.Column('organisation', sa.String(length=300), nullable=True),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('source_file', sa.String(length=500), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('imported_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_plans')),
    sa.UniqueConstraint('name', name=op.f('uq_plans_name'))
    )
    op.create_table('roles',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('key', sa.String(length=300), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_roles')),
    sa.UniqueConstraint('key', name=op.f('uq_roles_key'))
    )
    op.create_table('person_roles',
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('role_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['people.id'], name=op.f('fk_person_roles_person_id_people'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['role_id'], ['roles.id'], name=op.f('fk_person_roles_role_id_roles'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('person_id', 'role_id', name=op.f('pk_person_roles'))
    )
    op.create_table('workstreams',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=300), nullable=False),
    sa.Column('name', sa.String(length=500), nullable=False),
    sa.Column('label', sa.String(length=100), nullable=True),
    sa.Column('lead_sponsor', sa.Text(), nullable=True),
    sa.Column('objective', sa.Text(), nullable=True),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.Column('risks_issues', sa.Text(), nullable=True),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['plan_id'], ['plans.id'], name=op.f('fk_workstreams_plan_id_plans'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_workstreams')),
    sa.UniqueConstraint('plan_id', 'key', name='uq_workstreams_plan_key')
    )
    with op.batch_alter_table('workstreams', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_workstreams_plan_id'), ['plan_id'], unique=False)

    op.create_table('action_groups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('workstream_id', sa.Integer(), nullable=True),
    sa.Column('ref', sa.String(length=50), nullable=False),
    sa.Column('ref_key', sa.String(length=50), nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['plan_id'], ['plans.id'], name=op.f('fk_action_groups_plan_id_plans'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workstream_id'], ['workstreams.id'], name=op.f('fk_action_groups_workstream_id_workstreams'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_action_groups')),
    sa.UniqueConstraint('plan_id', 'ref_key', name='uq_action_groups_plan_ref')
    )
    with op.batch_alter_table('action_groups', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_action_groups_plan_id'), ['plan_id'], unique=False)

    op.create_table('actions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('workstream_id', sa.Integer(), nullable=True),
    sa.Column('group_id', sa.Integer(), nullable=True),
    sa.Column('ref', sa.String(length=50), nullable=False),
    sa.Column('ref_key', sa.String(length=50), nullable=False),
    sa.Column('ref_generated', sa.Boolean(), nullable=False),
    sa.Column('match_key', sa.String(length=400), nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('owners_text', sa.Text(), nullable=True),
    sa.Column('dependencies', sa.Text(), nullable=True),
    sa.Column('resources', sa.Text(), nullable=True),
    sa.Column('success_measures', sa.Text(), nullable=True),
    sa.Column('next_steps', sa.Text(), nullable=True),
    sa.Column('start_date', sa.Date(), nullable=True),
    sa.Column('start_text', sa.Text(), nullable=True),
    sa.Column('due_date', sa.Date(), nullable=True),
    sa.Column('due_precision', sa.String(length=10), nullable=True),
    sa.Column('due_text', sa.Text(), nullable=True),
    sa.Column('recurring', sa.Boolean(), nullable=False),
    sa.Column('recurrence', sa.String(length=30), nullable=True),
    sa.Column('key_dates', sa.JSON(), nullable=False),
    sa.Column('file_status', sa.String(length=20), nullable=True),
    sa.Column('file_progress', sa.Text(), nullable=True),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("due_precision IS NULL OR due_precision IN ('day','month','quarter','term','year')", name=op.f('ck_actions_due_precision')),
    sa.ForeignKeyConstraint(['group_id'], ['action_groups.id'], name=op.f('fk_actions_group_id_action_groups'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['plan_id'], ['plans.id'], name=op.f('fk_actions_plan_id_plans'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workstream_id'], ['workstreams.id'], name=op.f('fk_actions_workstream_id_workstreams'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_actions')),
    sa.UniqueConstraint('plan_id', 'match_key', name='uq_actions_plan_match'),
    sa.UniqueConstraint('plan_id', 'ref_key', name='uq_actions_plan_ref')
    )
    with op.batch_alter_table('actions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_actions_due_date'), ['due_date'], unique=False)
        batch_op.create_index(batch_op.f('ix_actions_plan_id'), ['plan_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_actions_workstream_id'), ['workstream_id'], unique=False)

    op.create_table('action_owners',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('action_id', sa.Integer(), nullable=False),
    sa.Column('role_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['action_id'], ['actions.id'], name=op.f('fk_action_owners_action_id_actions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['role_id'], ['roles.id'], name=op.f('fk_action_owners_role_id_roles'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_action_owners')),
    sa.UniqueConstraint('action_id', 'position', name='uq_action_owners_action_position')
    )
    with op.batch_alter_table('action_owners', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_action_owners_action_id'), ['action_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_action_owners_role_id'), ['role_id'], unique=False)

    op.create_table('status_updates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('action_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('channel', sa.String(length=30), nullable=False),
    sa.Column('by_person_id', sa.Integer(), nullable=True),
    sa.Column('by_text', sa.String(length=320), nullable=False),
    sa.Column('old_status', sa.String(length=20), nullable=True),
    sa.Column('new_status', sa.String(length=20), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('revised_due', sa.Date(), nullable=True),
    sa.Column('revised_due_precision', sa.String(length=10), nullable=True),
    sa.Column('revised_due_text', sa.Text(), nullable=True),
    sa.CheckConstraint("new_status IS NULL OR new_status IN ('not_started','green','amber','red','complete')", name=op.f('ck_status_updates_new_status')),
    sa.ForeignKeyConstraint(['action_id'], ['actions.id'], name=op.f('fk_status_updates_action_id_actions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['by_person_id'], ['people.id'], name=op.f('fk_status_updates_by_person_id_people'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_status_updates'))
    )
    with op.batch_alter_table('status_updates', schema=None) as batch_op:
        batch_op.create_index('ix_status_updates_action_id_id', ['action_id', 'id'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('status_updates', schema=None) as batch_op:
        batch_op.drop_index('ix_status_updates_action_id_id')

    op.drop_table('status_updates')
    with op.batch_alter_table('action_owners', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_action_owners_role_id'))
        batch_op.drop_index(batch_op.f('ix_action_owners_action_id'))

    op.drop_table('action_owners')
    with op.batch_alter_table('actions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_actions_workstream_id'))
        batch_op.drop_index(batch_op.f('ix_actions_plan_id'))
        batch_op.drop_index(batch_op.f('ix_actions_due_date'))

    op.drop_table('actions')
    with op.batch_alter_table('action_groups', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_action_groups_plan_id'))

    op.drop_table('action_groups')
    with op.batch_alter_table('workstreams', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_workstreams_plan_id'))

    op.drop_table('workstreams')
    op.drop_table('person_roles')
    op.drop_table('roles')
    op.drop_table('plans')
    op.drop_table('people')

