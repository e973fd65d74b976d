"""Parsed copies of the trait documents on PostgreSQL, for segment queries.

Traits are stored as JSON text (the same on SQLite and PostgreSQL). A segment query over a
million profiles spent most of its time parsing that text to jsonb, once per condition and
row; stored generated columns parse it once, on write.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

DOCUMENTS = {"traits_doc": "traits", "trait_dates_doc": "trait_dates"}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for document, text in DOCUMENTS.items():
        op.execute(
            f"ALTER TABLE profiles ADD COLUMN {document} jsonb "
            f"GENERATED ALWAYS AS ({text}::jsonb) STORED"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for document in DOCUMENTS:
        op.execute(f"ALTER TABLE profiles DROP COLUMN {document}")
