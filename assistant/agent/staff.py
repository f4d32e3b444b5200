"""Staff console: typed read-only tools over the resource tables, and NL queries.

A staff question (English or Chinese) is mapped to one tool and its arguments: by the
chat model through constrained tool calling when ``settings.llm_capable`` is true,
otherwise (and whenever the model's call is invalid) by a deterministic keyword
matcher. The answer is one templated sentence whose numbers come only from the tool's
result, plus the table it came from; :func:`numbers_grounded` checks this.
Patient-side code never imports this module.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from assistant.kb import KnowledgeBase, default_kb
from assistant.settings import Settings

log = logging.getLogger(__name__)

BED_TYPES = {
    "icu": ["icu", "intensive care", "重症", "监护"],
    "paediatric": ["paediatric bed", "pediatric bed", "儿童床"],
    "maternity": ["maternity", "产科床", "产房"],
    "isolation": ["isolation", "隔离"],
}
INTENT_WORDS = [
    ("demand_queue", ["queue", "waiting list", "demand", "排队", "等待", "需求队列"]),
    ("find_doctor", ["doctor", "who ", "specialist", "dr ", "医生", "专家", "大夫"]),
    ("department_load", ["load", "busiest", "over 90", "over 80", "which wards", "which departments", "most full", "负荷", "超过", "最忙"]),
    ("bed_status", ["bed", "icu", "occupan", "census", "床", "使用率", "住院"]),
    ("clinic_availability", ["slot", "appointment", "clinic", "available", "号", "挂号", "门诊", "预约"]),
]


class ToolChoice(BaseModel):
    """The tool and arguments chosen for a staff question."""

    tool: str
    args: dict[str, Any] = {}
    path: str = "keyword"


def _department(text: str, kb: KnowledgeBase | None = None) -> str | None:
    """Department code named in a staff question: its code, Chinese name or an alias
    (``aliases`` in ``knowledge_base/departments.yaml``)."""
    catalog = (kb or default_kb()).catalog
    low = f" {text.lower()} "
    for code, dept in catalog.items():
        if re.search(rf"\b{code.lower()}\b", low) and code not in ("ENT",) or dept.name_zh in text:
            return code
    for code, dept in catalog.items():
        if any(w in low for w in dept.aliases):
            return code
    return None


def match_intent(question: str) -> ToolChoice:
    """Deterministic keyword intent matcher (the fallback and the default).

    Returns:
        The chosen tool and its arguments.
    """
    low = question.lower()
    tool = "department_load"
    for name, words in INTENT_WORDS:
        if any(w in low for w in words):
            tool = name
            break
    args: dict[str, Any] = {}
    dept = _department(question)
    bed_type = next((bt for bt, words in BED_TYPES.items() if any(w in low for w in words)), None)
    if tool == "bed_status":
        if bed_type:
            args["bed_type"] = bed_type
        if dept and not (bed_type == "icu" and dept == "EMERG"):
            args["department"] = dept
    elif tool == "clinic_availability":
        if dept:
            args["department"] = dept
        args["days"] = 1 if any(w in low for w in ("today", "今天", "今日")) else 14
        if any(w in low for w in ("next", "最近", "下一个")):
            args["days"] = 14
    elif tool == "find_doctor":
        if dept:
            args["department"] = dept
        m = re.search(r"(?:dr\.?|doctor)\s+([a-z]+(?: [a-z]+)?)", low)
        if m and m.group(1) not in ("for", "in", "who", "of"):
            args["name"] = m.group(1)
    elif tool == "department_load":
        m = re.search(r"(\d{2})\s*%", question)
        args["threshold"] = int(m.group(1)) / 100 if m else None
    return ToolChoice(tool=tool, args=args)


class StaffConsole:
    """Read-only staff tools over the hospital tables, plus the re-optimise action.

    Args:
        settings: runtime settings (``resolved_hospital_db``, ``data_dir`` for the audit log).
        backend: optional chat backend, used for tool choice only when ``llm_capable``.
    """

    def __init__(self, settings: Settings, *, backend: Any = None) -> None:
        from assistant.hospital.db import open_db

        self.settings = settings
        self.backend = backend
        self.factory = open_db(settings.resolved_hospital_db, create=False)
        self.audit_path: Path = settings.data_dir / "audit.jsonl"

    # -- tools ------------------------------------------------------------------------
    def bed_status(self, department: str | None = None, bed_type: str | None = None) -> dict[str, Any]:
        """Bed census (total, occupied, reserved, free, occupancy) with per-ward rows."""
        from assistant.hospital.queries import bed_census

        with self.factory() as s:
            c = bed_census(s, department=department, bed_type=bed_type)
        rows = [w.model_dump(include={"code", "department", "bed_type", "total", "occupied", "reserved", "free", "occupancy"})
                for w in c.wards]
        return {"summary": c.model_dump(exclude={"wards"}), "rows": rows}

    def clinic_availability(self, department: str | None = None, days: int = 14) -> dict[str, Any]:
        """Clinic slots (total, booked, free, next free) per department over ``days``."""
        from assistant.hospital.queries import clinic_availability

        now = datetime.now(timezone.utc)
        with self.factory() as s:
            rows = clinic_availability(s, department, after=now, before=now + timedelta(days=days))
        data = [r.model_dump(exclude={"day"}) for r in rows]
        free = sum(r["slots_free"] for r in data)
        nxt = min((r["next_free_at"] for r in data if r["next_free_at"]), default=None)
        return {"summary": {"department": department, "days": days, "slots_free": free, "next_free_at": nxt},
                "rows": data}

    def department_load(self, threshold: float | None = None) -> dict[str, Any]:
        """Per-department clinic utilisation (next 24 h) and bed occupancy."""
        from assistant.hospital.queries import department_load

        with self.factory() as s:
            rows = [r.model_dump() for r in department_load(s)]
        if threshold is not None:
            rows = [r for r in rows if r["bed_occupancy"] > threshold]
        return {"summary": {"threshold": threshold, "departments": len(rows)}, "rows": rows}

    def find_doctor(self, department: str | None = None, name: str | None = None,
                    sub_specialty: str | None = None) -> dict[str, Any]:
        """Doctors by department, name or sub-specialty."""
        from assistant.hospital.queries import find_doctors

        with self.factory() as s:
            docs = find_doctors(s, department, name=name, sub_specialty=sub_specialty)
        rows = [d.model_dump(include={"code", "name_en", "name_zh", "title_en", "department", "sub_specialties", "languages"})
                for d in docs]
        return {"summary": {"doctors": len(rows)}, "rows": rows}

    def demand_queue(self) -> dict[str, Any]:
        """Active bookings made by the assistant (tentative and confirmed), oldest first."""
        from assistant.hospital.bookings import active_bookings

        with self.factory() as s:
            rows = [{"booking": b.id, "signal": b.signal_id, "patient_ref": b.patient_ref,
                     "kind": b.resource_kind, "status": b.status, "created_at": b.created_at}
                    for b in active_bookings(s)]
        return {"summary": {"active": len(rows)}, "rows": rows}

    def reoptimise(self, horizon_days: int = 14, actor: str = "staff") -> dict[str, Any]:
        """Re-plan tentative bookings over the horizon (staff action, audited)."""
        from assistant.agent.replan import reoptimise

        result = reoptimise(self.factory, horizon_days=horizon_days)
        self._audit({"action": "reoptimise", "actor": actor, "horizon_days": horizon_days,
                     "status": result["status"], "served": result.get("served")})
        return result

    def _audit(self, entry: dict[str, Any]) -> None:
        from assistant.hospital.audit import append_audit

        append_audit(self.audit_path.parent, entry)  # + the audit_log table when attached

    # -- natural language -------------------------------------------------------------
    def choose(self, question: str) -> ToolChoice:
        """Tool choice: the model when capable and its call is valid, else keywords."""
        choice = match_intent(question)
        if self.backend is not None and self.settings.llm_capable:
            model_choice = _model_choice(self.backend, question)
            if model_choice is not None:
                return model_choice
        return choice

    def run(self, choice: ToolChoice) -> dict[str, Any]:
        """Execute a chosen read-only tool."""
        tools = {"bed_status": self.bed_status, "clinic_availability": self.clinic_availability,
                 "department_load": self.department_load, "find_doctor": self.find_doctor,
                 "demand_queue": self.demand_queue}
        return tools[choice.tool](**choice.args)

    def answer(self, question: str) -> tuple[ToolChoice, dict[str, Any], str]:
        """``(choice, tool result, one-sentence answer)`` for a staff question."""
        choice = self.choose(question[:1000])
        result = self.run(choice)
        zh = bool(re.search(r"[\u4e00-\u9fff]", question))
        sentence = _sentence(choice, result, zh)
        if not numbers_grounded(sentence, result):
            sentence = "结果见下表。" if zh else "See the table below."
        return choice, result, sentence

    def ask(self, question: str) -> tuple[str, Any]:
        """UI entry: (Markdown answer, table rows as a pandas DataFrame)."""
        import pandas as pd

        if not (question or "").strip():
            return "Ask about beds, clinic slots, doctors or the demand queue.", pd.DataFrame()
        choice, result, sentence = self.answer(question)
        return f"{sentence}  \n_tool: `{choice.tool}` {json.dumps(choice.args, ensure_ascii=False)}_", \
            pd.DataFrame(result["rows"])

    def dashboard(self) -> tuple[Any, Any, Any]:
        """(occupancy table, occupancy bar-chart data, demand queue) for the staff tab."""
        import pandas as pd

        load = pd.DataFrame(self.department_load()["rows"])
        chart = load[["department", "bed_occupancy"]].rename(columns={"bed_occupancy": "occupancy"}) \
            if not load.empty else pd.DataFrame({"department": [], "occupancy": []})
        return load, chart, pd.DataFrame(self.demand_queue()["rows"])

    def reoptimise_md(self, actor: str = "staff") -> str:
        """Run :meth:`reoptimise` (audited under ``actor``, the logged-in staff user) and
        describe the result in Markdown."""
        r = self.reoptimise(actor=actor)
        lines = [f"**Status:** {r['status']} · served {r.get('served', 0)} · unmet {len(r.get('unmet', []))}"]
        lines += [f"- unmet {u['signal_id'][:8]}: {u['reason']}" for u in r.get("unmet", [])[:10]]
        lines += [f"- {b}" for b in r.get("binding", [])[:10]]
        return "\n".join(lines)


def _fmt_pct(x: float) -> str:
    return f"{x * 100:.0f}%"


def _sentence(choice: ToolChoice, result: dict[str, Any], zh: bool) -> str:
    s = result["summary"]
    if choice.tool == "bed_status":
        what = " ".join(x for x in (s.get("department"), s.get("bed_type")) if x) or ("全院" if zh else "all")
        return (f"{what}：共{s['total']}张床，空闲{s['free']}张，使用率{_fmt_pct(s['occupancy'])}。" if zh else
                f"{what} beds: {s['free']} free of {s['total']} (occupancy {_fmt_pct(s['occupancy'])}).")
    if choice.tool == "clinic_availability":
        nxt = s["next_free_at"].isoformat(timespec="minutes") if s["next_free_at"] else ("无" if zh else "none")
        dept = s["department"] or ("全院" if zh else "all departments")
        return (f"{dept}未来{s['days']}天还有{s['slots_free']}个号，最近可约 {nxt}。" if zh else
                f"{dept}: {s['slots_free']} free clinic slots in the next {s['days']} days; next free {nxt}.")
    if choice.tool == "find_doctor":
        return f"找到{s['doctors']}位医生。" if zh else f"{s['doctors']} doctors found."
    if choice.tool == "demand_queue":
        return f"当前有{s['active']}个有效预约。" if zh else f"{s['active']} active bookings in the demand queue."
    n = s["departments"]
    if s["threshold"] is not None:
        return (f"床位使用率超过{_fmt_pct(s['threshold'])}的科室有{n}个。" if zh else
                f"{n} departments have bed occupancy over {_fmt_pct(s['threshold'])}.")
    return f"{n}个科室的负荷见下表。" if zh else f"Load of {n} departments is in the table."


def numbers_grounded(sentence: str, result: dict[str, Any]) -> bool:
    """True if every number in ``sentence`` appears in the tool result.

    Percentages are checked against ratios in the result (x/100), integers against
    integer values, and date/time digits against the ISO strings of datetimes.
    """
    blob = json.dumps(result, default=str)
    values: set[str] = set(re.findall(r"\d+(?:\.\d+)?", blob))
    ratios = {f"{float(v) * 100:.0f}" for v in re.findall(r"\b0\.\d+|\b1\.0\b|\b0\b", blob)}
    for num in re.findall(r"\d+(?:\.\d+)?", sentence):
        if num not in values and num not in ratios:
            return False
    return True


def _model_choice(backend: Any, question: str) -> ToolChoice | None:
    """Constrained tool call by the chat model; None when it fails."""
    from typing import Literal

    from langchain_core.tools import tool

    from assistant.llm.langchain_adapter import LocalChatModel

    Dept = Literal[tuple(default_kb().catalog)]  # type: ignore[valid-type]

    @tool
    def bed_status(department: Dept | None = None,
                   bed_type: Literal["general", "icu", "paediatric", "maternity", "isolation"] | None = None) -> str:
        """Free and occupied beds, optionally for one department and bed type."""
        return ""

    @tool
    def clinic_availability(department: Dept | None = None, days: int = 14) -> str:
        """Free clinic slots of a department over the next days."""
        return ""

    @tool
    def department_load() -> str:
        """Occupancy and clinic load of every department."""
        return ""

    @tool
    def find_doctor(department: Dept | None = None, name: str | None = None) -> str:
        """Find doctors by department or name."""
        return ""

    @tool
    def demand_queue() -> str:
        """Patients waiting with bookings made by the assistant."""
        return ""

    chat = LocalChatModel(backend=backend, max_new_tokens=64).bind_tools(
        [bed_status, clinic_availability, department_load, find_doctor, demand_queue], tool_choice="any")
    try:
        msg = chat.invoke(question)
        call = msg.tool_calls[0]
    except Exception as exc:  # noqa: BLE001
        log.info("staff tool choice by model failed: %s", type(exc).__name__)
        return None
    args = {k: v for k, v in call["args"].items() if v is not None}
    if call["name"] == "department_load":
        args = {}
    return ToolChoice(tool=call["name"], args=args, path="tool_call")
