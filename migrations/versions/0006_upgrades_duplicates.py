"""upgrade credits policy and budget, duplicate subscriptions

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 11:50:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('plans', schema=None) as batch_op:
        batch_op.add_column(sa.Column('upgrade_credits', sa.String(length=16), server_default='none', nullable=False))
        batch_op.add_column(sa.Column('prorate_upgrades', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.create_check_constraint(
            'upgrade_credits_policy', "upgrade_credits IN ('none', 'difference')"
        )
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('provider_created_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('duplicate_of_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('credits_period_start', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('period_base_credits', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('period_peak_credits', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('period_upgrade_credits', sa.Integer(), server_default='0', nullable=False))
        batch_op.create_foreign_key(
            batch_op.f('fk_subscriptions_duplicate_of_id_subscriptions'),
            'subscriptions',
            ['duplicate_of_id'],
            ['id'],
            ondelete='SET NULL',
        )


def downgrade() -> None:
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_subscriptions_duplicate_of_id_subscriptions'), type_='foreignkey')
        for column in (
            'period_upgrade_credits', 'period_base_credits', 'period_peak_credits',
            'credits_period_start', 'duplicate_of_id', 'provider_created_at',
        ):
            batch_op.drop_column(column)
    with op.batch_alter_table('plans', schema=None) as batch_op:
        batch_op.drop_constraint('upgrade_credits_policy', type_='check')
        batch_op.drop_column('prorate_upgrades')
        batch_op.drop_column('upgrade_credits')
