"""mcp endpoint calls: every call through /mcp, recorded for admins (sizes, never arguments)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 01:20:00

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('mcp_endpoint_calls',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('method', sa.String(length=32), nullable=False),
    sa.Column('server', sa.String(length=128), nullable=False),
    sa.Column('name', sa.String(length=512), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('duration_ms', sa.Integer(), nullable=False),
    sa.Column('request_bytes', sa.Integer(), nullable=False),
    sa.Column('response_bytes', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_mcp_endpoint_calls_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mcp_endpoint_calls'))
    )
    with op.batch_alter_table('mcp_endpoint_calls', schema=None) as batch_op:
        batch_op.create_index('ix_mcp_endpoint_calls_user_id_id', ['user_id', 'id'], unique=False)
        batch_op.create_index('ix_mcp_endpoint_calls_server_id', ['server', 'id'], unique=False)


def downgrade():
    with op.batch_alter_table('mcp_endpoint_calls', schema=None) as batch_op:
        batch_op.drop_index('ix_mcp_endpoint_calls_server_id')
        batch_op.drop_index('ix_mcp_endpoint_calls_user_id_id')
    op.drop_table('mcp_endpoint_calls')
