"""Per-patient conversation state. One object per browser session, never shared."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

MAX_TURN_CHARS = 4000
MAX_HISTORY_CHARS = 8000


@dataclass
class PatientSession:
    """State of one patient's triage interview.

    Attributes:
        session_id: random id; only its hash is logged or stored (``patient_ref``).
        turns: the patient's messages so far (newest last), each capped.
        asked: follow-up question ids already asked.
        language: ``"en"``/``"zh"`` once detected or chosen.
        booking: the confirmed booking, once made (never re-booked in a session).
    """

    session_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    turns: list[str] = field(default_factory=list)
    asked: set[str] = field(default_factory=set)
    language: str | None = None
    booking: dict[str, Any] | None = None
    last_disposition: str | None = None

    def add_turn(self, text: str) -> str:
        """Append a turn and return the joined complaint (most recent text kept)."""
        self.turns.append(text[:MAX_TURN_CHARS])
        joined = "\n".join(self.turns)
        return joined[-MAX_HISTORY_CHARS:]
