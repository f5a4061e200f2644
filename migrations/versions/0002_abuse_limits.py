"""abuse limits: per-user rate windows and turn leases

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 07:10:00

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('rate_windows',
    sa.Column('key', sa.String(length=300), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('window_start', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_rate_windows'))
    )
    op.create_table('turn_leases',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_turn_leases_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_turn_leases'))
    )
    with op.batch_alter_table('turn_leases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_turn_leases_user_id'), ['user_id'], unique=False)


def downgrade():
    with op.batch_alter_table('turn_leases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_turn_leases_user_id'))
    op.drop_table('turn_leases')
    op.drop_table('rate_windows')
