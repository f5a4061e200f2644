"""pending tool rounds: gateway tool calls and results waiting for a client's tool results

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 01:20:00

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('pending_tool_rounds',
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('call_id', sa.String(length=200), nullable=False),
    sa.Column('round', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_pending_tool_rounds_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'call_id', name=op.f('pk_pending_tool_rounds'))
    )
    with op.batch_alter_table('pending_tool_rounds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pending_tool_rounds_created_at'), ['created_at'], unique=False)


def downgrade():
    with op.batch_alter_table('pending_tool_rounds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pending_tool_rounds_created_at'))
    op.drop_table('pending_tool_rounds')
