"""billing: quotes, invoices issued at once, what became of logged hours, the root cause of a ticket

Revision ID: 0004
Revises: 0003
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('invoices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=40), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=True),
    sa.Column('issued_on', sa.Date(), nullable=False),
    sa.Column('due_on', sa.Date(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_invoices_account_id_accounts')),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_invoices_ticket_id_tickets')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_invoices')),
    sa.UniqueConstraint('number', name=op.f('uq_invoices_number'))
    )
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_invoices_account_id'), ['account_id'], unique=False)

    op.create_table('quotes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('staff', sa.String(length=100), nullable=False),
    sa.Column('estimated_hours', sa.Numeric(precision=10, scale=2), nullable=False),
    sa.Column('billed_hours', sa.Numeric(precision=10, scale=2), nullable=False),
    sa.Column('rate_kind', sa.String(length=20), nullable=False),
    sa.Column('rate', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('total', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('urgent', sa.Boolean(), nullable=False),
    sa.Column('rate_card', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=True),
    sa.Column('answer_message_id', sa.Integer(), nullable=True),
    sa.Column('made_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['answer_message_id'], ['messages.id'], name=op.f('fk_quotes_answer_message_id_messages')),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_quotes_message_id_messages')),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_quotes_ticket_id_tickets')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_quotes'))
    )
    with op.batch_alter_table('quotes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_quotes_ticket_id'), ['ticket_id'], unique=False)

    with op.batch_alter_table('invoice_lines', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rate_kind', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('block_number', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('time_entry_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('invoice_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_invoice_lines_invoice_id'), ['invoice_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_invoice_lines_invoice_id_invoices'), 'invoices', ['invoice_id'], ['id'])
        batch_op.create_foreign_key(batch_op.f('fk_invoice_lines_time_entry_id_time_entries'), 'time_entries', ['time_entry_id'], ['id'])

    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('root_cause', sa.String(length=20), nullable=True))

    with op.batch_alter_table('time_entries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status', sa.String(length=20), nullable=False, server_default='free'))
        batch_op.add_column(sa.Column('quote_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_time_entries_quote_id_quotes'), 'quotes', ['quote_id'], ['id'])



def downgrade() -> None:
    with op.batch_alter_table('time_entries', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_time_entries_quote_id_quotes'), type_='foreignkey')
        batch_op.drop_column('quote_id')
        batch_op.drop_column('status')

    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_column('root_cause')

    with op.batch_alter_table('invoice_lines', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_invoice_lines_time_entry_id_time_entries'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_invoice_lines_invoice_id_invoices'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_invoice_lines_invoice_id'))
        batch_op.drop_column('invoice_id')
        batch_op.drop_column('time_entry_id')
        batch_op.drop_column('block_number')
        batch_op.drop_column('rate_kind')

    with op.batch_alter_table('quotes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_quotes_ticket_id'))

    op.drop_table('quotes')
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_invoices_account_id'))

    op.drop_table('invoices')
