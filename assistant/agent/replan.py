"""Batch re-optimisation of tentative bookings over a rolling horizon.

Tentative (unconfirmed) clinic bookings are released and re-planned together with the
LP allocator in ONE ``BEGIN IMMEDIATE`` transaction: either the whole new plan is
written or nothing changes. Confirmed bookings are fixed capacity. Demand signals are
kept in the ``demand_signals`` table (JSON, no patient text) when they are booked.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any

from assistant.kb import KnowledgeBase, default_kb

log = logging.getLogger(__name__)


def reoptimise(factory: Any, *, horizon_days: int = 14, now: datetime | None = None,
               kb: KnowledgeBase | None = None) -> dict[str, Any]:
    """Re-plan every tentative clinic booking with the LP (see module docstring).

    Args:
        factory: sessionmaker of the resource tables.
        horizon_days: free slots up to this many days ahead are candidates.
        now: the clock (UTC), for tests.
        kb: knowledge base for the overflow table (default folder when None).

    Returns:
        ``{"status", "served", "moved", "unmet": [{"signal_id", "reason"}], "binding": [str]}``.
    """
    from assistant.agent.booking import slot_resource
    from assistant.allocation import allocate
    from assistant.hospital.bookings import (
        active_bookings,
        create_booking,
        load_signals,
        set_booking_status,
    )
    from assistant.hospital.db import write_session
    from assistant.hospital.queries import next_free_slots

    now = now or datetime.now(timezone.utc)
    kb = kb or default_kb()
    neighbours = kb.neighbours
    with write_session(factory) as session:
        tentative = [b for b in active_bookings(session)
                     if b.status == "tentative" and b.resource_kind == "clinic_slot"]
        signals = load_signals(session, [b.signal_id for b in tentative])
        old = {b.signal_id: b.clinic_slot_id for b in tentative}
        plan = [b for b in tentative if b.signal_id in signals]
        if not plan:
            return {"status": "optimal", "served": 0, "moved": 0, "unmet": [], "binding": []}
        for b in plan:
            set_booking_status(session, b.id, "cancelled")
        session.flush()
        depts = {s.department for s in signals.values()}
        depts |= {n for d in list(depts) for n in neighbours.get(d, [])}
        slots = {}
        for dept in sorted(depts):
            for s in next_free_slots(session, dept, now, now + timedelta(days=horizon_days),
                                     limit=5000, max_per_session=None):
                slots[f"slot:{s.slot_id}"] = s
        resources = [slot_resource(s) for s in slots.values()
                     if kb.allows(s.department, emergency=True)]
        result = allocate(list(signals.values()), resources, now=now, neighbours=neighbours)
        moved = 0
        for a in result.assignments:
            sig = signals[a.signal_id]
            slot_id = slots[a.resource_id].slot_id
            create_booking(session, signal_id=sig.id, patient_ref=sig.patient_ref,
                           resource_kind="clinic_slot", resource_id=slot_id)
            moved += int(old.get(sig.id) != slot_id)
    log.info("reoptimise status=%s served=%d moved=%d", result.status, result.served, moved)
    return {
        "status": str(result.status.value if hasattr(result.status, "value") else result.status),
        "served": result.served,
        "moved": moved,
        "integral": result.integral,
        "unmet": [{"signal_id": u.signal_id, "reason": u.reason} for u in result.unmet],
        "binding": [b.explanation for b in result.binding],
    }
