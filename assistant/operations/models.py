"""Operations tables, registered on the hospital tables' ``Base`` (same SQLite file).

* :class:`OpsDailyDemand` - per day and department: triaged demand (arrivals), how many
  were emergencies, bookings, cancellations, no-shows and the summed wait from triage
  to the booked slot (hours). Seeded history (:mod:`.history`) or aggregated later.
* :class:`OpsHourlyArrivals` - EMERG arrivals per local hour.
* :class:`OpsDailyCensus` - beds occupied / total at the 07:00 census, per day.
* :class:`FinalDisposition` - the disposition staff record after the visit, next to the
  assistant's disposition (for the agreement chart). No patient text: signal id only.
* Region: :class:`RegionDistrict`, :class:`RegionSite`, :class:`RegionSiteCapacity`,
  :class:`RegionTravel`.

Dates (``day``) are hospital-local calendar dates stored as ISO text.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from assistant.hospital.models import Base, UTCDateTime, utcnow

DISPOSITIONS = ("emergency_ambulance", "emergency", "consultation_24", "consultation", "self_care")
SITE_KINDS = ("hospital", "chc")
SERVICES = ("ed", "specialist", "primary")
"""Regional services: emergency department, hospital specialist clinic, primary care (GP)."""

OPS_TABLES = ("ops_daily_demand", "ops_hourly_arrivals", "ops_daily_census", "final_dispositions",
              "region_districts", "region_sites", "region_site_capacity", "region_travel")


class OpsDailyDemand(Base):
    """Demand and booking outcomes of one department on one local day."""

    __tablename__ = "ops_daily_demand"
    __table_args__ = (CheckConstraint("arrivals >= 0 AND emergencies >= 0 AND emergencies <= arrivals",
                                      name="ck_ops_demand_counts"),)

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    department_code: Mapped[str] = mapped_column(String(10), primary_key=True)
    arrivals: Mapped[int] = mapped_column(Integer, doc="Triaged demand signals.")
    emergencies: Mapped[int] = mapped_column(Integer, default=0)
    booked: Mapped[int] = mapped_column(Integer, default=0)
    cancelled: Mapped[int] = mapped_column(Integer, default=0)
    no_shows: Mapped[int] = mapped_column(Integer, default=0)
    wait_hours_sum: Mapped[float] = mapped_column(Float, default=0.0,
                                                  doc="Sum over booked of (slot start - triage), hours.")


class OpsHourlyArrivals(Base):
    """Arrivals of one department (EMERG in the demo) in one local clock hour."""

    __tablename__ = "ops_hourly_arrivals"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    hour: Mapped[int] = mapped_column(Integer, primary_key=True)
    department_code: Mapped[str] = mapped_column(String(10), primary_key=True)
    arrivals: Mapped[int] = mapped_column(Integer)


class OpsDailyCensus(Base):
    """Whole-hospital bed census of one local day (07:00)."""

    __tablename__ = "ops_daily_census"
    __table_args__ = (CheckConstraint("beds_occupied >= 0 AND beds_total >= 1", name="ck_ops_census"),)

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    beds_total: Mapped[int] = mapped_column(Integer)
    beds_occupied: Mapped[int] = mapped_column(Integer)


class FinalDisposition(Base):
    """The disposition staff recorded after the visit, with the assistant's disposition."""

    __tablename__ = "final_dispositions"
    __table_args__ = (
        CheckConstraint("assistant_disposition IN " + str(DISPOSITIONS), name="ck_final_assistant"),
        CheckConstraint("final_disposition IN " + str(DISPOSITIONS), name="ck_final_staff"),
        # Staff-entered records: a demo rebuild or a CSV --replace import must not erase them.
        {"info": {"keep_on_reset": True}},
    )

    signal_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    department_code: Mapped[str] = mapped_column(String(10), default="")
    assistant_disposition: Mapped[str] = mapped_column(String(24))
    final_disposition: Mapped[str] = mapped_column(String(24))
    recorded_by: Mapped[str] = mapped_column(String(64), doc="Staff user name (not a patient).")
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class RegionDistrict(Base):
    """A district (区/街道) of the region, with its population."""

    __tablename__ = "region_districts"

    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    name_en: Mapped[str] = mapped_column(String(80))
    name_zh: Mapped[str] = mapped_column(String(40))
    population: Mapped[int] = mapped_column(Integer)


class RegionSite(Base):
    """A hospital or community health centre (社区卫生服务中心) of the region."""

    __tablename__ = "region_sites"
    __table_args__ = (CheckConstraint("kind IN " + str(SITE_KINDS), name="ck_site_kind"),)

    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    name_en: Mapped[str] = mapped_column(String(120))
    name_zh: Mapped[str] = mapped_column(String(60))
    kind: Mapped[str] = mapped_column(String(10))
    district_code: Mapped[str] = mapped_column(ForeignKey("region_districts.code"))
    address_en: Mapped[str] = mapped_column(String(160), default="")
    address_zh: Mapped[str] = mapped_column(String(80), default="")


class RegionSiteCapacity(Base):
    """Patients a site can see per day for one service (``ed`` | ``specialist`` | ``primary``)."""

    __tablename__ = "region_site_capacity"
    __table_args__ = (CheckConstraint("service IN " + str(SERVICES), name="ck_site_service"),
                      CheckConstraint("daily_capacity >= 0", name="ck_site_capacity"))

    site_code: Mapped[str] = mapped_column(ForeignKey("region_sites.code", ondelete="CASCADE"),
                                           primary_key=True)
    service: Mapped[str] = mapped_column(String(12), primary_key=True)
    daily_capacity: Mapped[int] = mapped_column(Integer)
    booked_today: Mapped[int] = mapped_column(Integer, default=0)


class RegionTravel(Base):
    """Typical travel time (minutes, public transport or car) from a district to a site."""

    __tablename__ = "region_travel"
    __table_args__ = (CheckConstraint("minutes >= 0", name="ck_travel_minutes"),)

    district_code: Mapped[str] = mapped_column(ForeignKey("region_districts.code", ondelete="CASCADE"),
                                               primary_key=True)
    site_code: Mapped[str] = mapped_column(ForeignKey("region_sites.code", ondelete="CASCADE"),
                                           primary_key=True)
    minutes: Mapped[float] = mapped_column(Float)
