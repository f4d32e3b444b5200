"""Operations and region tables (assistant/operations/models.py).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

Ops history (daily demand, hourly arrivals, daily census), final dispositions and the
region (districts, sites, site capacity, travel times). Before this revision the
operations module created its tables itself (``create_all``), so a table that already
exists is left as it is.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from assistant.hospital.models import UTCDateTime

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = (
    "final_dispositions",
    "ops_daily_census",
    "ops_daily_demand",
    "ops_hourly_arrivals",
    "region_districts",
    "region_sites",
    "region_site_capacity",
    "region_travel",
)


def _create(name: str, *elements: Any) -> bool:
    """Create table ``name`` unless it exists; True when created."""
    if sa.inspect(op.get_bind()).has_table(name):
        return False
    op.create_table(name, *elements)
    return True


def upgrade() -> None:
    """Create the operations and region tables that do not exist yet."""
    if _create(
        "final_dispositions",
        sa.Column("signal_id", sa.String(length=64), nullable=False),
        sa.Column("department_code", sa.String(length=10), nullable=False),
        sa.Column("assistant_disposition", sa.String(length=24), nullable=False),
        sa.Column("final_disposition", sa.String(length=24), nullable=False),
        sa.Column("recorded_by", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "assistant_disposition IN ('emergency_ambulance', 'emergency', 'consultation_24', 'consultation', 'self_care')",
            name="ck_final_assistant",
        ),
        sa.CheckConstraint(
            "final_disposition IN ('emergency_ambulance', 'emergency', 'consultation_24', 'consultation', 'self_care')",
            name="ck_final_staff",
        ),
        sa.PrimaryKeyConstraint("signal_id"),
    ):
        op.create_index(
            "ix_final_dispositions_recorded_at", "final_dispositions", ["recorded_at"], unique=False
        )

    _create(
        "ops_daily_census",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("beds_total", sa.Integer(), nullable=False),
        sa.Column("beds_occupied", sa.Integer(), nullable=False),
        sa.CheckConstraint("beds_occupied >= 0 AND beds_total >= 1", name="ck_ops_census"),
        sa.PrimaryKeyConstraint("day"),
    )
    _create(
        "ops_daily_demand",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("department_code", sa.String(length=10), nullable=False),
        sa.Column("arrivals", sa.Integer(), nullable=False),
        sa.Column("emergencies", sa.Integer(), nullable=False),
        sa.Column("booked", sa.Integer(), nullable=False),
        sa.Column("cancelled", sa.Integer(), nullable=False),
        sa.Column("no_shows", sa.Integer(), nullable=False),
        sa.Column("wait_hours_sum", sa.Float(), nullable=False),
        sa.CheckConstraint(
            "arrivals >= 0 AND emergencies >= 0 AND emergencies <= arrivals",
            name="ck_ops_demand_counts",
        ),
        sa.PrimaryKeyConstraint("day", "department_code"),
    )
    _create(
        "ops_hourly_arrivals",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("hour", sa.Integer(), nullable=False),
        sa.Column("department_code", sa.String(length=10), nullable=False),
        sa.Column("arrivals", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "hour", "department_code"),
    )
    _create(
        "region_districts",
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("name_en", sa.String(length=80), nullable=False),
        sa.Column("name_zh", sa.String(length=40), nullable=False),
        sa.Column("population", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("code"),
    )
    _create(
        "region_sites",
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("name_en", sa.String(length=120), nullable=False),
        sa.Column("name_zh", sa.String(length=60), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("district_code", sa.String(length=16), nullable=False),
        sa.Column("address_en", sa.String(length=160), nullable=False),
        sa.Column("address_zh", sa.String(length=80), nullable=False),
        sa.CheckConstraint("kind IN ('hospital', 'chc')", name="ck_site_kind"),
        sa.ForeignKeyConstraint(
            ["district_code"],
            ["region_districts.code"],
        ),
        sa.PrimaryKeyConstraint("code"),
    )
    _create(
        "region_site_capacity",
        sa.Column("site_code", sa.String(length=16), nullable=False),
        sa.Column("service", sa.String(length=12), nullable=False),
        sa.Column("daily_capacity", sa.Integer(), nullable=False),
        sa.Column("booked_today", sa.Integer(), nullable=False),
        sa.CheckConstraint("service IN ('ed', 'specialist', 'primary')", name="ck_site_service"),
        sa.CheckConstraint("daily_capacity >= 0", name="ck_site_capacity"),
        sa.ForeignKeyConstraint(["site_code"], ["region_sites.code"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("site_code", "service"),
    )
    _create(
        "region_travel",
        sa.Column("district_code", sa.String(length=16), nullable=False),
        sa.Column("site_code", sa.String(length=16), nullable=False),
        sa.Column("minutes", sa.Float(), nullable=False),
        sa.CheckConstraint("minutes >= 0", name="ck_travel_minutes"),
        sa.ForeignKeyConstraint(["district_code"], ["region_districts.code"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["site_code"], ["region_sites.code"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("district_code", "site_code"),
    )


def downgrade() -> None:
    """Drop the operations and region tables (their data is lost)."""
    for table in reversed(TABLES):
        op.drop_table(table)
