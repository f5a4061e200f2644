"""routing examples: prompts that led to a successful tool call, learned by the router

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 11:05:00

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('routing_examples',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tool_call_id', sa.Uuid(), nullable=False),
    sa.Column('server', sa.String(length=128), nullable=False),
    sa.Column('tool', sa.String(length=128), nullable=False),
    sa.Column('prompt', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tool_call_id'], ['tool_calls.id'], name=op.f('fk_routing_examples_tool_call_id_tool_calls'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_routing_examples'))
    )
    with op.batch_alter_table('routing_examples', schema=None) as batch_op:
        batch_op.create_index('ix_routing_examples_server_tool_id', ['server', 'tool', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_routing_examples_tool_call_id'), ['tool_call_id'], unique=False)


def downgrade():
    with op.batch_alter_table('routing_examples', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_routing_examples_tool_call_id'))
        batch_op.drop_index('ix_routing_examples_server_tool_id')
    op.drop_table('routing_examples')
