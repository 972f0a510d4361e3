"""Row-level security on every table of the domain schema: rows visible only to connections
whose ``app.domain`` names this domain (see common/rls.py).

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

from common import rls

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _schema() -> str:
    return op.get_bind().execute(sa.text("SELECT current_schema()")).scalar()


def upgrade() -> None:
    rls.protect_schema(op.get_bind(), _schema())


def downgrade() -> None:
    conn = op.get_bind()
    for table in rls.tables(conn, _schema()):
        rls.unprotect_table(conn, _schema(), table)
