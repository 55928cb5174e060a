"""outgoing webhooks and entitlements

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 09:10:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('outgoing_sequence', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('billing_changed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_accounts_billing_changed_at'), ['billing_changed_at'], unique=False)
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('past_due_since', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('lapsed_at', sa.DateTime(timezone=True), nullable=True))

    op.create_table('outgoing_endpoints',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('url', sa.String(length=2000), nullable=False),
    sa.Column('description', sa.String(length=200), nullable=True),
    sa.Column('event_types', sa.JSON(), nullable=False),
    sa.Column('allow_private', sa.Boolean(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('secret', sa.String(length=200), nullable=False),
    sa.Column('previous_secret', sa.String(length=200), nullable=True),
    sa.Column('previous_secret_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outgoing_endpoints'))
    )
    op.create_table('outgoing_events',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('idempotency_key', sa.String(length=250), nullable=False),
    sa.Column('account_id', sa.String(length=64), nullable=False),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.Column('body', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_outgoing_events_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outgoing_events')),
    sa.UniqueConstraint('account_id', 'sequence', name=op.f('uq_outgoing_events_account_id_sequence')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_outgoing_events_idempotency_key'))
    )
    op.create_table('outgoing_deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.String(length=40), nullable=False),
    sa.Column('endpoint_id', sa.String(length=40), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_status_code', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('first_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['endpoint_id'], ['outgoing_endpoints.id'], name=op.f('fk_outgoing_deliveries_endpoint_id_outgoing_endpoints')),
    sa.ForeignKeyConstraint(['event_id'], ['outgoing_events.id'], name=op.f('fk_outgoing_deliveries_event_id_outgoing_events')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outgoing_deliveries')),
    sa.UniqueConstraint('endpoint_id', 'event_id', name=op.f('uq_outgoing_deliveries_endpoint_id_event_id'))
    )
    with op.batch_alter_table('outgoing_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_outgoing_deliveries_status_next_attempt', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_outgoing_deliveries_event_id'), ['event_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_outgoing_deliveries_endpoint_id'), ['endpoint_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('outgoing_deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outgoing_deliveries_endpoint_id'))
        batch_op.drop_index(batch_op.f('ix_outgoing_deliveries_event_id'))
        batch_op.drop_index('ix_outgoing_deliveries_status_next_attempt')
    op.drop_table('outgoing_deliveries')
    op.drop_table('outgoing_events')
    op.drop_table('outgoing_endpoints')
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.drop_column('lapsed_at')
        batch_op.drop_column('past_due_since')
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_accounts_billing_changed_at'))
        batch_op.drop_column('billing_changed_at')
        batch_op.drop_column('outgoing_sequence')
