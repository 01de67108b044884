"""email threads and preferences: replies find their message by an index, people choose how often

- ``outbox.message_id``: the email Message-ID a message went out with (also in its receipt),
  indexed, so a reply's ``In-Reply-To`` finds its message in one look-up however large the
  outbox grows. Filled from the receipts of messages already sent.
- ``people.cadence``: ``each`` (every reminder as it falls due, the default) or ``weekly`` (one
  summary a week), chosen on the preferences page behind ``List-Unsubscribe``.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('message_id', sa.String(length=250), nullable=True))
        batch_op.create_index(batch_op.f('ix_outbox_message_id'), ['message_id'], unique=False)
    outbox = sa.table('outbox', sa.column('id', sa.Integer()), sa.column('receipt', sa.JSON()),
                      sa.column('message_id', sa.String()))
    connection = op.get_bind()
    for outbox_id, receipt in connection.execute(
            sa.select(outbox.c.id, outbox.c.receipt).where(outbox.c.receipt.is_not(None))).all():
        message_id = ((receipt or {}).get("ref") or {}).get("message_id")
        if message_id:
            connection.execute(outbox.update().where(outbox.c.id == outbox_id)
                               .values(message_id=str(message_id).strip().strip("<>")[:250]))
    with op.batch_alter_table('people', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cadence', sa.String(length=10), nullable=False, server_default='each'))
        batch_op.create_check_constraint(batch_op.f('ck_people_cadence'), "cadence IN ('each', 'weekly')")


def downgrade() -> None:
    with op.batch_alter_table('people', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_people_cadence'), type_='check')
        batch_op.drop_column('cadence')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_message_id'))
        batch_op.drop_column('message_id')
