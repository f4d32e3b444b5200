"""Bilingual text records of departments, doctors and services, for the retrieval index."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from assistant.hospital.db import hospital_timezone
from assistant.hospital.models import (
    DOCTOR_TITLES,
    ClinicSession,
    DepartmentRow,
    Doctor,
    DoctorLanguage,
    DoctorSubSpecialty,
    Service,
)
from assistant.kb.catalog import Department, load_catalog

_WEEKDAYS_EN = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_WEEKDAYS_ZH = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")
_PARTS = {"morning": "上午", "afternoon": "下午", "evening": "晚上", "night": "夜间"}
_LANGUAGES = {"zh": ("Chinese", "中文"), "en": ("English", "英语")}
_MAX_LISTED_CLINICS = 6


def hospital_documents(session: Session) -> list[dict[str, Any]]:
    """One record per department, doctor and service of the hospital database.

    Record shape::

        {"id": "dept:ENT" | "doctor:D0001" | "service:gastroscopy",
         "kind": "department" | "doctor" | "service",
         "text": "<English paragraph>\\n<Chinese paragraph>",
         "metadata": {"department": "ENT", ...}}

    Metadata values are str/int only (Chroma-compatible; lists are joined with
    commas, absent values are left out). Doctor metadata: ``doctor_code``, ``title``,
    ``languages`` (e.g. ``"en,zh"``), ``sub_specialties``. Service metadata:
    ``service``, and ``modality`` for imaging services.

    Args:
        session: an open session.

    Returns:
        Records ordered: departments (catalog order), doctors, services. Ids are stable
        across rebuilds of the same data.
    """
    catalog = load_catalog()
    depts = {d.code: d for d in session.scalars(select(DepartmentRow))}
    order = [code for code in catalog if code in depts] + sorted(set(depts) - set(catalog))
    docs: list[dict[str, Any]] = [_department_doc(depts[c], catalog.get(c)) for c in order]
    docs += _doctor_docs(session, depts, catalog)
    for service in session.scalars(select(Service).order_by(Service.id)):
        dept = depts[service.department_code]
        meta: dict[str, Any] = {"department": dept.code, "service": service.code}
        if service.modality:
            meta["modality"] = service.modality
        docs.append(
            {
                "id": f"service:{service.code}",
                "kind": "service",
                "text": (
                    f"{service.name_en} / {service.name_zh}, {dept.name_en}. {service.description_en}\n"
                    f"{service.name_zh}，{dept.name_zh}。{service.description_zh}"
                ),
                "metadata": meta,
            }
        )
    return docs


def _department_doc(row: DepartmentRow, entry: Department | None) -> dict[str, Any]:
    treats_en = row.treats_en or (entry.treats_en if entry else "")
    treats_zh = row.treats_zh or (entry.treats_zh if entry else "")
    en = f"{row.name_en} / {row.name_zh}, department code {row.code}. Treats: {treats_en}"
    zh = f"{row.name_zh}。诊治范围：{treats_zh}"
    if entry and entry.sub_specialties:
        en += " Sub-specialties: " + "; ".join(s.name_en for s in entry.sub_specialties) + "."
        zh += "亚专业：" + "、".join(s.name_zh for s in entry.sub_specialties) + "。"
    if entry and entry.age_below_years:
        en += f" Sees patients younger than {entry.age_below_years}."
        zh += f"接诊 {entry.age_below_years} 岁以下患者。"
    return {
        "id": f"dept:{row.code}",
        "kind": "department",
        "text": f"{en}\n{zh}",
        "metadata": {"department": row.code, "name_en": row.name_en, "name_zh": row.name_zh},
    }


def _part_of_day(at: datetime) -> str:
    hour = at.hour
    if hour < 6:
        return "night"
    if hour < 12:
        return "morning"
    if hour < 18:
        return "afternoon"
    return "evening"


def _doctor_docs(
    session: Session, depts: dict[str, DepartmentRow], catalog: dict[str, Department]
) -> list[dict[str, Any]]:
    tz = hospital_timezone(session)
    subs: dict[int, list[str]] = defaultdict(list)
    for doc_id, sub in session.execute(
        select(DoctorSubSpecialty.doctor_id, DoctorSubSpecialty.sub_specialty).order_by(
            DoctorSubSpecialty.doctor_id, DoctorSubSpecialty.sub_specialty
        )
    ):
        subs[doc_id].append(sub)
    langs: dict[int, list[str]] = defaultdict(list)
    for doc_id, lang in session.execute(
        select(DoctorLanguage.doctor_id, DoctorLanguage.language).order_by(
            DoctorLanguage.doctor_id, DoctorLanguage.language
        )
    ):
        langs[doc_id].append(lang)
    clinics: dict[int, set[tuple[int, str]]] = defaultdict(set)
    for doc_id, start in session.execute(select(ClinicSession.doctor_id, ClinicSession.starts_at)):
        local = start.astimezone(tz)
        clinics[doc_id].add((local.weekday(), _part_of_day(local)))

    docs = []
    for doc in session.scalars(select(Doctor).order_by(Doctor.id)):
        dept = depts[doc.department_code]
        entry = catalog.get(doc.department_code)
        title_en, title_zh = DOCTOR_TITLES[doc.title]
        sub_en, sub_zh = [], []
        for code in subs[doc.id]:
            sub = entry.sub_specialty(code) if entry else None
            sub_en.append(sub.name_en if sub else code)
            sub_zh.append(sub.name_zh if sub else code)
        lang_en = [_LANGUAGES.get(lang, (lang, lang))[0] for lang in langs[doc.id]]
        lang_zh = [_LANGUAGES.get(lang, (lang, lang))[1] for lang in langs[doc.id]]
        en = f"{doc.name_en} / {doc.name_zh}, {title_en}, {dept.name_en}."
        zh = f"{doc.name_zh}医生，{title_zh}，{dept.name_zh}。"
        if sub_en:
            en += f" Special interests: {', '.join(sub_en)}."
            zh += f"擅长：{'、'.join(sub_zh)}。"
        en += f" Consults in {' and '.join(lang_en) or 'Chinese'}."
        zh += f"接诊语言：{'、'.join(lang_zh) or '中文'}。"
        slots = sorted(clinics[doc.id], key=lambda dp: (dp[0], list(_PARTS).index(dp[1])))
        if len(slots) > _MAX_LISTED_CLINICS:
            en += " Works rotating shifts."
            zh += "轮班出诊。"
        elif slots:
            en += " Clinics: " + ", ".join(f"{_WEEKDAYS_EN[d]} {p}" for d, p in slots) + "."
            zh += "出诊时间：" + "、".join(f"{_WEEKDAYS_ZH[d]}{_PARTS[p]}" for d, p in slots) + "。"
        docs.append(
            {
                "id": f"doctor:{doc.code}",
                "kind": "doctor",
                "text": f"{en}\n{zh}",
                "metadata": {
                    "department": doc.department_code,
                    "doctor_code": doc.code,
                    "name_en": doc.name_en,
                    "name_zh": doc.name_zh,
                    "title": doc.title,
                    "languages": ",".join(langs[doc.id]),
                    "sub_specialties": ",".join(subs[doc.id]),
                },
            }
        )
    return docs
