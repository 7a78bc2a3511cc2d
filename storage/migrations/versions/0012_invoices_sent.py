"""billing that matches the quote (R20, R21): a quote's hours by source; stored monthly invoices with their
totals, VAT, PDF and the mail that carried them; usage lines (hours from the month or the card) apart from
invoiced ones; the account's billing address

Revision ID: 0012
Revises: 0011
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

HOURS = sa.Numeric(precision=10, scale=2)
MONEY = sa.Numeric(precision=12, scale=2)


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch_op:
        batch_op.add_column(sa.Column("billing_email", sa.String(length=320), nullable=True))
    with op.batch_alter_table("quotes") as batch_op:
        for name in ("monthly_hours", "card_hours", "paid_hours"):
            batch_op.add_column(sa.Column(name, HOURS, nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("new_blocks", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("block_price", MONEY, nullable=False, server_default="0"))
    # the quotes made before: all their hours from the one source they named
    op.execute("UPDATE quotes SET monthly_hours = billed_hours WHERE rate_kind = 'monthly'")
    op.execute("UPDATE quotes SET card_hours = billed_hours, total = 0 WHERE rate_kind = 'punch_card'")
    op.execute("UPDATE quotes SET paid_hours = billed_hours WHERE rate_kind IN ('ad_hoc', 'urgent')")
    with op.batch_alter_table("invoices") as batch_op:
        batch_op.add_column(sa.Column("month", sa.String(length=7), nullable=True))
        batch_op.add_column(sa.Column("subtotal", MONEY, nullable=True))
        batch_op.add_column(sa.Column("vat", MONEY, nullable=True))
        batch_op.add_column(sa.Column("total", MONEY, nullable=True))
        batch_op.add_column(sa.Column("card_balance", HOURS, nullable=True))
        batch_op.add_column(sa.Column("pdf", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("message_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_invoices_message_id_messages", "messages", ["message_id"], ["id"])
        batch_op.create_unique_constraint("uq_invoices_account_id", ["account_id", "month"])
    # hours from the month or the punch card cost nothing more: usage, not an invoice line
    op.execute("UPDATE invoice_lines SET invoice = 'usage' WHERE invoice = 'monthly' AND invoice_id IS NULL "
               "AND rate_kind IN ('monthly', 'punch_card')")


def downgrade() -> None:
    op.execute("UPDATE invoice_lines SET invoice = 'monthly' WHERE invoice = 'usage'")
    with op.batch_alter_table("invoices") as batch_op:
        batch_op.drop_constraint("uq_invoices_account_id", type_="unique")
        batch_op.drop_constraint("fk_invoices_message_id_messages", type_="foreignkey")
        for name in ("message_id", "pdf", "card_balance", "total", "vat", "subtotal", "month"):
            batch_op.drop_column(name)
    with op.batch_alter_table("quotes") as batch_op:
        for name in ("block_price", "new_blocks", "paid_hours", "card_hours", "monthly_hours"):
            batch_op.drop_column(name)
    with op.batch_alter_table("accounts") as batch_op:
        batch_op.drop_column("billing_email")
