"""catalog policy: plan features, trial and grace days; a plan's earlier Stripe prices

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op


revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # server defaults fill the existing rows; the models give new rows their defaults
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.add_column(sa.Column("features", sa.JSON(), nullable=False, server_default="{}"))
        batch_op.add_column(sa.Column("trial_days", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("past_due_grace_days", sa.Integer(), nullable=False, server_default="7"))
        batch_op.create_check_constraint("trial_days_not_negative", "trial_days >= 0")
        batch_op.create_check_constraint("grace_days_not_negative", "past_due_grace_days >= 0")
    op.create_table(
        "plan_stripe_prices",
        sa.Column("price_id", sa.String(length=100), nullable=False),
        sa.Column("plan_id", sa.String(length=64), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["plans.id"], name=op.f("fk_plan_stripe_prices_plan_id_plans"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("price_id", name=op.f("pk_plan_stripe_prices")),
    )
    with op.batch_alter_table("plan_stripe_prices", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_plan_stripe_prices_plan_id"), ["plan_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("plan_stripe_prices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_plan_stripe_prices_plan_id"))
    op.drop_table("plan_stripe_prices")
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.drop_constraint("grace_days_not_negative", type_="check")
        batch_op.drop_constraint("trial_days_not_negative", type_="check")
        batch_op.drop_column("past_due_grace_days")
        batch_op.drop_column("trial_days")
        batch_op.drop_column("features")
