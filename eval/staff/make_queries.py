"""Write eval/staff/queries.jsonl: staff questions (EN + ZH) with the gold tool and arguments.

Gold answers are computed at eval time by calling the gold tool with the gold arguments
on the seeded demo hospital (``assistant hospital demo --seed 7``), so they always match
the tables. Run: python eval/staff/make_queries.py
"""

from __future__ import annotations

import json
from pathlib import Path

DEPTS = [("CARDIO", "cardiology", "心内科"), ("NEURO", "neurology", "神经内科"), ("PEDS", "paediatrics", "儿科"),
         ("RESP", "respiratory", "呼吸科"), ("ORTHO", "orthopaedics", "骨科"), ("GASTRO", "gastroenterology", "消化科"),
         ("DERM", "dermatology", "皮肤科"), ("OBGYN", "obstetrics", "妇产科")]


def queries() -> list[dict]:
    q: list[dict] = []

    def add(text: str, lang: str, tool: str, args: dict) -> None:
        q.append({"id": f"staff-{len(q) + 1:03d}", "question": text, "lang": lang, "gold_tool": tool, "gold_args": args})

    add("How many ICU beds are free?", "en", "bed_status", {"bed_type": "icu"})
    add("Free ICU beds?", "en", "bed_status", {"bed_type": "icu"})
    add("ICU重症床位还有几张空的？", "zh", "bed_status", {"bed_type": "icu"})
    add("How many isolation beds are available?", "en", "bed_status", {"bed_type": "isolation"})
    add("隔离床位还剩多少？", "zh", "bed_status", {"bed_type": "isolation"})
    add("Maternity beds free right now?", "en", "bed_status", {"bed_type": "maternity"})
    add("What is the bed occupancy of the whole hospital?", "en", "bed_status", {})
    add("全院床位使用率多少？", "zh", "bed_status", {})
    for code, en, zh in DEPTS:
        add(f"How many free beds does {en} have?", "en", "bed_status", {"department": code})
        add(f"{zh}床位使用率多少？", "zh", "bed_status", {"department": code})
        add(f"Next free {en} slot?", "en", "clinic_availability", {"department": code, "days": 14})
        add(f"今天{zh}还有几个号？", "zh", "clinic_availability", {"department": code, "days": 1})
        add(f"How many {en} clinic slots are available today?", "en", "clinic_availability", {"department": code, "days": 1})
        add(f"Which doctors work in {en}?", "en", "find_doctor", {"department": code})
        add(f"{zh}有哪些医生？", "zh", "find_doctor", {"department": code})
    add("Which wards are over 90% full?", "en", "department_load", {"threshold": 0.9})
    add("Which departments are over 80% bed occupancy?", "en", "department_load", {"threshold": 0.8})
    add("哪些科室床位使用率超过90%？", "zh", "department_load", {"threshold": 0.9})
    add("Show the load of every department", "en", "department_load", {"threshold": None})
    add("各科室负荷情况", "zh", "department_load", {"threshold": None})
    add("Show the demand queue", "en", "demand_queue", {})
    add("How many patients are waiting in the queue?", "en", "demand_queue", {})
    add("当前排队等待的需求有多少？", "zh", "demand_queue", {})
    add("How many clinic slots are free in the next two weeks?", "en", "clinic_availability", {"days": 14})
    add("Any appointments available in ENT?", "en", "clinic_availability", {"department": "ENT", "days": 14})
    add("眼科还有号吗？", "zh", "clinic_availability", {"department": "OPHTH", "days": 14})
    add("口腔科最近的号是什么时候？", "zh", "clinic_availability", {"department": "DENT", "days": 14})
    add("Who are the oncology doctors?", "en", "find_doctor", {"department": "ONCO"})
    add("肿瘤科医生有谁？", "zh", "find_doctor", {"department": "ONCO"})
    add("Emergency department beds free?", "en", "bed_status", {"department": "EMERG"})
    add("急诊科床位还有吗？", "zh", "bed_status", {"department": "EMERG"})
    return q


if __name__ == "__main__":
    path = Path(__file__).with_name("queries.jsonl")
    rows = queries()
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {len(rows)} queries to {path}")
