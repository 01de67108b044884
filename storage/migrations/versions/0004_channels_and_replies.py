"""channels and replies: routing per message, structured receipts, in-place updates, one inbound path

- ``outbox.channel`` may be NULL (the dispatcher routes a message when it sends it);
  ``outbox.route`` lists the channels a message left and why; ``outbox.target_id`` is the
  message an ``update`` row edits in place; ``outbox.receipt`` becomes JSON
  (``{"channel", "ref", "possible_duplicate"}``): a receipt written by 0.1 as text becomes
  ``{"channel": <the row's channel>, "ref": {"id": <the text>}}``; ``outbox.sweep_id`` was never
  written and is dropped.
- ``people.channel``: a person's preferred channel, ahead of ``[channels] order``.
- ``replies``: every answer that came in and its outcome; ``status_updates.outbox_id`` and
  ``reply_id`` tie an update to the message that prompted it and the reply it came in.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('replies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('via', sa.String(length=30), nullable=False),
    sa.Column('external_id', sa.String(length=300), nullable=True),
    sa.Column('sender', sa.String(length=320), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=True),
    sa.Column('outbox_id', sa.Integer(), nullable=True),
    sa.Column('refs', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('due_text', sa.Text(), nullable=True),
    sa.Column('raw', sa.Text(), nullable=True),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('duplicate_of', sa.Integer(), nullable=True),
    sa.CheckConstraint("outcome IN ('applied', 'not_allowed', 'unclear', 'auto_reply', 'duplicate')",
                       name=op.f('ck_replies_outcome')),
    sa.ForeignKeyConstraint(['duplicate_of'], ['replies.id'], name=op.f('fk_replies_duplicate_of_replies'),
                            ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['outbox_id'], ['outbox.id'], name=op.f('fk_replies_outbox_id_outbox'),
                            ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['person_id'], ['people.id'], name=op.f('fk_replies_person_id_people'),
                            ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_replies')),
    sa.UniqueConstraint('via', 'external_id', name='uq_replies_via_external_id')
    )
    op.create_index('ix_replies_outcome_id', 'replies', ['outcome', 'id'], unique=False)

    with op.batch_alter_table('people', schema=None) as batch_op:
        batch_op.add_column(sa.Column('channel', sa.String(length=30), nullable=True))

    with op.batch_alter_table('status_updates', schema=None) as batch_op:
        batch_op.add_column(sa.Column('outbox_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('reply_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_status_updates_outbox_id_outbox'), 'outbox', ['outbox_id'], ['id'],
                                    ondelete='SET NULL')
        batch_op.create_foreign_key(batch_op.f('fk_status_updates_reply_id_replies'), 'replies', ['reply_id'], ['id'],
                                    ondelete='SET NULL')

    # Receipts: text -> JSON, through a new column so that no value is lost on either database.
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('receipt_data', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('route', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('target_id', sa.Integer(), nullable=True))
    outbox = sa.table('outbox', sa.column('id', sa.Integer()), sa.column('channel', sa.String()),
                      sa.column('receipt', sa.String()), sa.column('possible_duplicate', sa.Boolean()),
                      sa.column('receipt_data', sa.JSON()), sa.column('route', sa.JSON()))
    connection = op.get_bind()
    rows = connection.execute(sa.select(outbox.c.id, outbox.c.channel, outbox.c.receipt, outbox.c.possible_duplicate)
                              .where(outbox.c.receipt.is_not(None))).all()
    for outbox_id, channel, receipt, duplicate in rows:
        connection.execute(outbox.update().where(outbox.c.id == outbox_id).values(receipt_data={
            "channel": channel, "ref": {"id": receipt}, "possible_duplicate": bool(duplicate)}))
    connection.execute(outbox.update().values(route=[]))
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_constraint('fk_outbox_sweep_id_sweeps', type_='foreignkey')
        batch_op.drop_column('sweep_id')
        batch_op.drop_column('receipt')
        batch_op.alter_column('receipt_data', new_column_name='receipt', existing_type=sa.JSON(), nullable=True)
        batch_op.alter_column('route', existing_type=sa.JSON(), nullable=False)
        batch_op.alter_column('channel', existing_type=sa.String(length=30), nullable=True)
        batch_op.create_foreign_key(batch_op.f('fk_outbox_target_id_outbox'), 'outbox', ['target_id'], ['id'],
                                    ondelete='CASCADE')
        batch_op.create_index(batch_op.f('ix_outbox_target_id'), ['target_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_target_id'))
        batch_op.drop_constraint(batch_op.f('fk_outbox_target_id_outbox'), type_='foreignkey')
        batch_op.add_column(sa.Column('receipt_text', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('sweep_id', sa.Integer(), nullable=True))
    outbox = sa.table('outbox', sa.column('id', sa.Integer()), sa.column('channel', sa.String()),
                      sa.column('receipt', sa.JSON()), sa.column('receipt_text', sa.String()))
    connection = op.get_bind()
    for outbox_id, channel, receipt in connection.execute(
            sa.select(outbox.c.id, outbox.c.channel, outbox.c.receipt).where(outbox.c.receipt.is_not(None))).all():
        ref = (receipt or {}).get("ref") or {}
        text = ref.get("id") or ref.get("message_id") or ref.get("path") or next(iter(ref.values()), None)
        connection.execute(outbox.update().where(outbox.c.id == outbox_id)
                           .values(receipt_text=str(text)[:500] if text else None))
    connection.execute(outbox.update().where(outbox.c.channel.is_(None)).values(channel="outbox_folder"))
    connection.execute(sa.text("DELETE FROM outbox WHERE kind = 'update'"))
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('receipt')
        batch_op.drop_column('route')
        batch_op.drop_column('target_id')
        batch_op.alter_column('receipt_text', new_column_name='receipt', existing_type=sa.String(length=500))
        batch_op.alter_column('channel', existing_type=sa.String(length=30), nullable=False)
        batch_op.create_foreign_key('fk_outbox_sweep_id_sweeps', 'sweeps', ['sweep_id'], ['id'], ondelete='SET NULL')
    with op.batch_alter_table('status_updates', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_status_updates_reply_id_replies'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_status_updates_outbox_id_outbox'), type_='foreignkey')
        batch_op.drop_column('reply_id')
        batch_op.drop_column('outbox_id')
    with op.batch_alter_table('people', schema=None) as batch_op:
        batch_op.drop_column('channel')
    op.drop_index('ix_replies_outcome_id', table_name='replies')
    op.drop_table('replies')
