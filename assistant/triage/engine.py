"""The triage pipeline: screening → red flags → urgency → routing → doctors → signal.

Every clinical decision here is deterministic and explainable:

1. :func:`~assistant.triage.screening.screen_input` cleans the text and flags bad input;
2. red flags (``knowledge_base/red_flags.yaml``) force at least ``emergency``;
3. urgency rules place everything else (``urgency.py``);
4. routing fuses the trained classifier, catalog retrieval and age/sex rules;
5. doctors come from the resource tables (a free slot inside the disposition window);
6. a :class:`~assistant.triage.schemas.DemandSignal` is emitted for allocation.

The LLM only writes an optional lead-in sentence, which is checked and dropped if it
downgrades urgency or claims a diagnosis (``safety.py``).
"""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import datetime, timezone
from functools import cached_property
from typing import Any

from assistant.settings import Settings
from assistant.triage.interview import follow_up_questions
from assistant.triage.result import (
    Citation,
    DepartmentScore,
    DoctorSuggestion,
    RedFlagRef,
    TriageResult,
)
from assistant.triage.routing import load_router, probabilities
from assistant.triage.schemas import DemandSignal, Disposition
from assistant.triage.text import detect_language, normalise, tokenize
from assistant.triage.urgency import assess_urgency

log = logging.getLogger(__name__)

# Departments that a child should see directly rather than PEDS (issue rule: organ
# specialties that are clearly better for children: eye, ENT, dental, surgical).
CHILD_DIRECT = {"OPHTH", "ENT", "DENT", "GENSURG", "ORTHO", "NEUROSURG", "THORSURG", "UROL", "EMERG", "PSYCH"}
PEDS_AGE_LIMIT = 14  # China: paediatrics sees children under 14 (卫健委 儿科诊疗范围)
MALE_GENITAL = re.compile(r"penis|testic|scrotum|erect|ejaculat|prostat|阴茎|睾丸|阴囊|勃起|早泄|前列腺|阳痿")
W_CLASSIFIER, W_RETRIEVAL = 0.7, 0.3


def patient_ref(session_id: str) -> str:
    """Pseudonymous patient reference: a salted hash of the session id (no PHI)."""
    return "p-" + hashlib.sha256(f"triage:{session_id}".encode()).hexdigest()[:16]


class Triager:
    """Runs triage turns; loads the router, retriever and hospital tables once.

    Args:
        settings: runtime settings.
        backend: optional chat backend for the lead-in (None = no LLM text).
        retriever: optional :class:`assistant.knowledge.Retriever` (None = try to open
            the index under ``settings``; no citations if there is none).
        hospital: optional SQLAlchemy sessionmaker of the resource tables (None = open
            ``settings.resolved_hospital_db`` if it exists).
    """

    def __init__(self, settings: Settings, *, backend: Any = None, retriever: Any = None,
                 hospital: Any = None) -> None:
        self.settings = settings
        self.backend = backend
        self.retriever = retriever if retriever is not None else _open_retriever(settings)
        self.hospital = hospital if hospital is not None else _open_hospital(settings)
        from assistant.hospital.catalog import load_catalog

        self.catalog = load_catalog()

    @cached_property
    def router(self) -> Any:
        """The fitted department router (trained or loaded once per Triager)."""
        return load_router(self.settings)

    @cached_property
    def urgency_model(self) -> Any:
        """The raise-only urgency classifier, or None without the KTAS dev file."""
        from assistant.triage.urgency_model import load_urgency_model

        return load_urgency_model(self.settings)

    # ------------------------------------------------------------------------------
    def triage(
        self,
        text: str | bytes,
        *,
        age: float | None = None,
        sex: str | None = None,
        pregnant: bool | None = None,
        lang: str | None = None,
        session_id: str = "anonymous",
        asked: set[str] | frozenset[str] = frozenset(),
        now: datetime | None = None,
        lead_in: bool | None = None,
    ) -> TriageResult:
        """Triage one complaint (all turns of a session joined, newest last).

        Args:
            text: free text, English or Chinese (bytes are decoded safely).
            age: age in years; sex: ``"F"``/``"M"``; pregnant: known pregnancy status.
            lang: answer language; detected from the text when None.
            session_id: opaque session id; only its hash reaches the demand signal.
            asked: follow-up question ids already asked in this session.
            now: the clock (UTC), for tests.
            lead_in: ask the LLM for a lead-in (default ``settings.llm_lead_in``).

        Returns:
            A :class:`TriageResult`. Never raises for bad input: empty, binary or
            injected text gets ``safe_reply`` and the most cautious routing.
        """
        from assistant.triage.red_flags import match_red_flags
        from assistant.triage.screening import screen_input

        now = now or datetime.now(timezone.utc)
        screen = screen_input(text)
        clean = screen.text
        language = lang or (screen.language if screen.language in ("en", "zh") else None) \
            or detect_language(clean, self.settings.default_language)
        if language not in ("en", "zh"):
            language = self.settings.default_language
        issues = [str(i) for i in screen.issues]
        if sex is not None:
            sex = sex.upper()[:1] if sex.upper()[:1] in ("F", "M") else None

        hits = match_red_flags(clean, age_years=age, sex=sex, pregnant=pregnant) if clean else []
        red_flags = [
            RedFlagRef(
                rule_id=h.rule_id, name_en=h.name_en, name_zh=h.name_zh,
                disposition=Disposition(h.disposition), source=h.source,
                evidence=str(h.evidence)[:200], advice_en=h.advice_en, advice_zh=h.advice_zh,
            )
            for h in hits
        ]
        from assistant.triage.vitals import SOURCE as NEWS2
        from assistant.triage.vitals import vital_red_flags

        red_flags += [
            RedFlagRef(rule_id=v.rule_id, name_en=v.name_en, name_zh=v.name_zh,
                       disposition=Disposition.EMERGENCY, source=NEWS2, evidence=v.evidence,
                       advice_en="Go to the emergency department now.", advice_zh="请立即前往急诊。")
            for v in vital_red_flags(clean)
        ]
        safe_reply = None
        if screen.blocked and not red_flags:
            safe_reply = screen.safe_reply(language)
            return TriageResult(
                language=language, disposition=Disposition.CONSULTATION, confidence=0.0,
                input_issues=issues, safe_reply=safe_reply,
                notes=["input could not be triaged; patient asked to rephrase or see staff"],
            )

        # urgency: red flags first, never lowered by anything after
        urgency = assess_urgency(clean, age_years=age, pregnant=pregnant)
        disposition = urgency.disposition
        if not disposition.is_emergency and disposition.rank > Disposition.CONSULTATION_24.rank:
            from assistant.triage.urgency_model import RAISE_AT, probability

            p_em = probability(self.urgency_model, clean)
            if p_em is not None and p_em >= RAISE_AT:
                disposition = Disposition.CONSULTATION_24
                urgency.rule_ids.append("UCLS_KTAS")
        if red_flags:
            disposition = min((r.disposition for r in red_flags), key=lambda d: d.rank)
            disposition = min(disposition, Disposition.EMERGENCY, key=lambda d: d.rank)

        departments = self._route(clean, age=age, sex=sex, pregnant=pregnant,
                                  emergency=disposition.is_emergency)
        if self.settings.llm_capable and self.backend is not None and departments:
            from assistant.triage.second_opinion import second_opinion

            departments, disposition = second_opinion(self.backend, clean, departments, disposition,
                                                      self.catalog)
        top = departments[0].code if departments else "GENMED"
        doctors = self._doctors(top, clean, disposition, language, now)
        questions = follow_up_questions(
            clean, language=language, age_years=age, sex=sex, pregnant=pregnant,
            asked=asked, red_flag=bool(red_flags),
        )
        citations = self._citations(clean)
        signal = DemandSignal.from_disposition(
            patient_ref=patient_ref(session_id), department=top, disposition=disposition,
            now=now, language=language,  # type: ignore[arg-type]
            sub_specialty=self._sub_specialty(top, clean),
        )
        confidence = 0.95 if red_flags else round(min(0.9, departments[0].score if departments else 0.0), 3)
        if screen.has("prompt_injection") or screen.has("other_patient_request"):
            safe_reply = screen.safe_reply(language)
        result = TriageResult(
            language=language, disposition=disposition, red_flags=red_flags,
            urgency_rules=urgency.rule_ids, departments=departments, doctors=doctors,
            follow_up_questions=[q for _, q in questions], follow_up_ids=[i for i, _ in questions],
            citations=citations, demand_signal=signal, confidence=confidence,
            input_issues=issues, safe_reply=safe_reply,
        )
        use_llm = self.settings.llm_lead_in if lead_in is None else lead_in
        if use_llm and self.backend is not None and not safe_reply:
            from assistant.triage.safety import write_lead_in

            result.lead_in = write_lead_in(self.backend, clean, result)
        log.info("triage ref=%s disposition=%s dept=%s flags=%s", signal.patient_ref,
                 disposition.value, top, [r.rule_id for r in red_flags])
        return result

    # -- routing ----------------------------------------------------------------------
    def _route(self, text: str, *, age: float | None, sex: str | None, pregnant: bool | None,
               emergency: bool) -> list[DepartmentScore]:
        probs = probabilities(self.router, text) if text.strip() else {"GENMED": 1.0}
        fused = {code: W_CLASSIFIER * probs.get(code, 0.0) for code in self.catalog}
        if not emergency:  # the ED is a disposition, not a specialty for clinic visits
            fused["EMERG"] = 0.0
        for rank, code in enumerate(self._retrieve_departments(text)):
            if code != "EMERG" or emergency:
                fused[code] = fused.get(code, 0.0) + W_RETRIEVAL / (1 + rank)
        reasons: dict[str, tuple[str, str]] = {}
        ranked = sorted(fused, key=lambda c: -fused[c])
        if age is not None and age < PEDS_AGE_LIMIT and ranked[0] not in CHILD_DIRECT:
            fused["PEDS"] = fused[ranked[0]] + 0.05
            reasons["PEDS"] = (f"patient is under {PEDS_AGE_LIMIT}", f"患者未满{PEDS_AGE_LIMIT}岁")
        if pregnant:
            fused["OBGYN"] = max(fused.values()) + 0.05
            reasons["OBGYN"] = ("pregnancy", "孕期")
        if sex == "M" and MALE_GENITAL.search(normalise(text)):
            fused["ANDRO"] = max(fused.values()) + 0.05
            reasons["ANDRO"] = ("male genital symptoms", "男性生殖系统症状")
        if emergency:
            fused["EMERG"] = max(fused.values()) + 0.1
            reasons["EMERG"] = ("red flag or emergency urgency", "存在危险信号，需急诊处理")
        total = sum(fused.values()) or 1.0
        ranked = sorted(fused, key=lambda c: -fused[c])[:3]
        out = []
        for code in ranked:
            dept = self.catalog[code]
            en, zh = reasons.get(code) or _matched_terms(text, dept)
            out.append(DepartmentScore(code=code, name_en=dept.name_en, name_zh=dept.name_zh,
                                       score=round(min(1.0, fused[code] / total), 3),
                                       reason_en=en, reason_zh=zh))
        return out

    def _retrieve_departments(self, text: str) -> list[str]:
        if self.retriever is None or not text.strip():
            return []
        try:
            passages = self.retriever.search(text[:1000], collection="hospital", k=8,
                                             where={"kind": "department"})
        except Exception as exc:  # noqa: BLE001 - retrieval is an aid, never a blocker
            log.warning("department retrieval failed: %s", type(exc).__name__)
            return []
        codes: list[str] = []
        for p in passages:
            code = (p.metadata or {}).get("department")
            if code in self.catalog and code not in codes:
                codes.append(code)
        return codes[:3]

    def _sub_specialty(self, code: str, text: str) -> str | None:
        low = normalise(text)
        for sub in self.catalog[code].sub_specialties:
            if sub.name_en.lower() in low or sub.name_zh in low:
                return sub.code
        return None

    # -- doctors ----------------------------------------------------------------------
    def _doctors(self, code: str, text: str, disposition: Disposition, language: str,
                 now: datetime) -> list[DoctorSuggestion]:
        if self.hospital is None:
            return []
        from assistant.hospital.queries import next_free_slots

        lo, hi = disposition.window()
        sub = self._sub_specialty(code, text)
        try:
            with self.hospital() as session:
                slots = []
                # sub-specialty and language first, then relax; identical tries run once
                for sub_try, lang_try in dict.fromkeys(((sub, language), (None, language), (None, None))):
                    slots = next_free_slots(session, code, now + lo, now + hi,
                                            sub_specialty=sub_try, language=lang_try, limit=3)
                    if slots:
                        break
        except Exception as exc:  # noqa: BLE001 - a missing table must not break triage
            log.warning("doctor lookup failed: %s", type(exc).__name__)
            return []
        return [
            DoctorSuggestion(
                doctor_id=s.doctor.id, name_en=s.doctor.name_en, name_zh=s.doctor.name_zh,
                title_en=s.doctor.title_en, title_zh=s.doctor.title_zh, department=s.department,
                sub_specialties=list(s.doctor.sub_specialties), languages=list(s.doctor.languages),
                slot_id=s.slot_id, starts_at=s.starts_at, ends_at=s.ends_at,
            )
            for s in slots
        ]

    # -- citations --------------------------------------------------------------------
    def _citations(self, text: str) -> list[Citation]:
        if self.retriever is None or not text.strip():
            return []
        try:
            passages = self.retriever.search(text[:1000], collection="literature", k=3)
        except Exception as exc:  # noqa: BLE001
            log.warning("literature retrieval failed: %s", type(exc).__name__)
            return []
        return [
            Citation(title=p.title or p.source, source=p.source, url=p.url or "",
                     snippet=p.text[:400], score=float(p.score))
            for p in passages
        ]


_STOP = {"and", "the", "for", "with", "that", "this", "have", "has", "are", "was", "but", "not", "you",
         "your", "from", "when", "all", "any", "can", "its", "also", "such", "other", "like", "after"}


def _matched_terms(text: str, dept: Any) -> tuple[str, str]:
    words = {w for w in tokenize(text)
             if (len(w) > 2 and w not in _STOP) or (re.match(r"[\u4e00-\u9fff]", w) and len(w) > 1)}
    treats = set(tokenize(dept.treats_en)) | set(tokenize(dept.treats_zh))
    common = sorted(words & treats, key=len, reverse=True)[:3]
    if common:
        return (f"{dept.name_en} treats: {', '.join(common)}", f"{dept.name_zh}诊治：{'、'.join(common)}")
    return (f"closest match for your symptoms: {dept.name_en}", f"与您的症状最相符：{dept.name_zh}")


def _open_retriever(settings: Settings) -> Any:
    if settings.chroma_url is None and not settings.resolved_index_dir.exists():
        return None
    try:
        from assistant.knowledge import Retriever

        return Retriever(settings)
    except Exception as exc:  # noqa: BLE001 - no index: triage without citations
        log.warning("no retrieval index (%s); triage continues without citations", exc)
        return None


def _open_hospital(settings: Settings) -> Any:
    path = settings.resolved_hospital_db
    if not path.is_file():
        return None
    from assistant.hospital.db import open_db

    return open_db(path, create=False)

