"""Hospital-level metadata shared by the table modules: the hospital's timezone.

The default timezone is the knowledge base's (``knowledge_base/policy.yaml``); a
hospital's own tables record theirs in ``hospital_meta.timezone``.
"""

from __future__ import annotations

import functools
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from assistant.errors import DataError
from assistant.hospital.models import HospitalMeta
from assistant.kb import default_kb

#: Hospital timezone when the database does not record one (the knowledge base's).
DEFAULT_TIMEZONE: str = default_kb().timezone.key


def hospital_timezone(session: Session) -> ZoneInfo:
    """The hospital's local timezone (``hospital_meta.timezone``, default: the knowledge base's).

    Raises:
        DataError: the recorded name is not an IANA timezone.
    """
    name = session.execute(
        select(HospitalMeta.value).where(HospitalMeta.key == "timezone")
    ).scalar_one_or_none()
    return zone(name or DEFAULT_TIMEZONE)


@functools.lru_cache(maxsize=16)
def zone(name: str) -> ZoneInfo:
    """``ZoneInfo(name)``; raises :class:`DataError` for an unknown name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise DataError(
            f"unknown timezone '{name}' (expected an IANA name like Asia/Shanghai)"
        ) from None
