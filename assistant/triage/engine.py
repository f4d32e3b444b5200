"""The triage pipeline: screening → red flags → urgency → routing → doctors → signal.

Every clinical decision here is deterministic and explainable:

1. :func:`~assistant.triage.screening.screen_input` cleans the text and flags bad input;
2. red flags (``knowledge_base/red_flags.yaml``) force at least ``emergency``;
3. urgency rules place everything else (``urgency.py``);
4. routing fuses the trained classifier, catalog retrieval and age/sex rules;
5. doctors come from the resource tables (a free slot inside the disposition window);
6. a :class:`~assistant.domain.DemandSignal` is emitted for allocation.

The LLM only writes an optional lead-in sentence, which is checked and dropped if it
downgrades urgency or claims a diagnosis (``safety.py``).
"""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any

from assistant.domain import (
    Citation,
    ComplaintCodeRef,
    DemandSignal,
    DepartmentScore,
    Disposition,
    DoctorSuggestion,
    RedFlagRef,
    RiskEstimate,
    TriageResult,
)
from assistant.kb import KnowledgeBase, default_kb
from assistant.llm.base import ChatBackend
from assistant.settings import Settings
from assistant.text import answer_language, is_cjk, normalise
from assistant.triage.interview import follow_up_questions
from assistant.triage.routing import load_embedding_router, load_router, mix, probabilities
from assistant.triage.urgency import assess_urgency

log = logging.getLogger(__name__)

W_CLASSIFIER, W_CONDITIONS, W_PRIOR, W_RETRIEVAL = 0.7, 0.2, 0.1, 0.05
"""Routing fusion weights (text classifier, retrieved conditions, NHAMCS prior, hospital
index), chosen on the router's train split by ``eval/routing/tune_fusion.py`` (out-of-fold
classifier; ``W_RETRIEVAL`` 0.15 -> 0.1 with the hospital index built: train top-1 0.946 ->
0.947, written cases 0.836 -> 0.855). ``W_RETRIEVAL`` re-chosen after the embedding router
joined the classifier: 0.1 -> 0.05 (train out-of-fold top-1 at these weights 0.956 -> 0.958,
0 gives 0.957; written cases with the demo hospital's index 201 -> 202 of 214)."""
ROUTING_K, ROUTING_TEMPERATURE = 16, 4.0
"""Conditions retrieved per complaint, and the softmax temperature over their BM25 scores."""
W_MULTILINGUAL = 0.1
"""Weight of the departments of the conditions a Chinese complaint finds by multilingual
dense retrieval (:meth:`ConditionIndex.retrieve_multilingual`; the BM25 condition index is
English), chosen on the router's train split (``eval/routing/tune_fusion.py --multilingual``)."""
ML_CONFIDENCE_GATE = 0.7
"""The multilingual steps (the embedding router and, for Chinese text, the multilingual
conditions) run only when the TF-IDF classifier's largest probability is below this: on
the train split they change no top-1 above it (out-of-fold top-1 the same at every gate
from 0.7 to always), and about a quarter of complaints then need the encoder (~0.3 s to
load once, ~4 ms a query) instead of all of them."""
W_EMBEDDING = 0.2
"""Share of the embedding router (logistic regression on the multilingual sentence
embedding, :func:`~assistant.triage.routing.load_embedding_router`) in the text
classifier's probabilities, the TF-IDF router having the rest. Chosen with its C on
out-of-fold predictions of the router's train split (``eval/routing/tune_fusion.py
--embedding``; the classifier alone: top-1 0.949 -> 0.961, top-3 0.979 -> 0.985 at 0.2,
0.962 / 0.987 at 0.3) and our written cases, which are worded like clinicians' vignettes
rather than the dev sets the router learns from (top-1 201 / 214 at 0.2 as without it,
198 at 0.3)."""
W_WARNING_SIGN = 0.3
"""Weight of the departments of the condition a fired warning sign names
(``red_flag_conditions.yaml``): set by design, not tuned (the train split has few red
flags): it outweighs the text classifier's vote for one department (at most 0.7)
only together with the retrieved conditions or the prior, e.g. a possible heart attack
ranks Cardiology above Thoracic Surgery."""
ED_HANDOVER_GATE = 0.7
"""TF-IDF probability from which the complaint's own words name the specialty that leads an
emergency's department list ahead of the ED (:meth:`Triager._handover_specialty`). The
same value as :data:`ML_CONFIDENCE_GATE`, set a priori, not tuned: the router's train
split is in-sample for the classifier and its validation split is only scored."""
RED_FLAG_WINDOW = 20_000
"""Red flags scan the whole message in overlapping windows of this many characters."""
RED_FLAG_OVERLAP = 400
MAX_RED_FLAG_SCAN = 4_000_000
"""Characters of one complaint that red flags read at most (about 4 MB of text)."""


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

    def __init__(self, settings: Settings, *, kb: KnowledgeBase | None = None,
                 backend: ChatBackend | None = None, retriever: Any = None,
                 hospital: Any = None) -> None:
        self.settings = settings
        self.kb = kb if kb is not None else default_kb(settings.resolved_knowledge_base_dir)
        self.backend = backend
        self.retriever = retriever if retriever is not None else _open_retriever(settings)
        self.hospital = hospital if hospital is not None else open_hospital(settings)
        self.catalog = self.kb.catalog

    @cached_property
    def router(self) -> Any:
        """The fitted department router (trained or loaded once per Triager)."""
        return load_router(self.settings, self.kb)

    @cached_property
    def embedding_router(self) -> Any:
        """The embedding router (None without the multilingual encoder package)."""
        return load_embedding_router(self.settings, self.kb)

    @cached_property
    def acuity(self) -> Any:
        """The acuity model learned from real ED triage (``knowledge_base/models/acuity``)."""
        from assistant.triage.acuity import load_acuity_model

        return load_acuity_model(self.kb.path("models/acuity"))

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
            lead_in: ask the LLM for a lead-in (default ``settings.lead_in_enabled``).

        Returns:
            A :class:`TriageResult`. Never raises for bad input: empty, binary or
            injected text gets ``safe_reply`` and the most cautious routing.
        """
        from assistant.triage.screening import screen_input

        now = now or datetime.now(timezone.utc)
        notes: list[str] = []
        if isinstance(text, (bytes, bytearray)):
            text = bytes(text).decode("utf-8", errors="replace")
        text = text if isinstance(text, str) else str(text or "")
        screen = screen_input(text)
        clean = screen.text
        language = lang or (screen.language if screen.language in ("en", "zh") else None) \
            or answer_language(clean, self.settings.default_language)
        if language not in ("en", "zh"):
            language = self.settings.default_language
        issues = [str(i) for i in screen.issues]
        if sex is not None:
            sex = sex.upper()[:1] if sex.upper()[:1] in ("F", "M") else None
        coding = self._code(clean)
        if coding is not None:  # a clinician's vignette says who the patient is
            if age is None and coding.age_years is not None:
                age = coding.age_years
                notes.append("age_from_text")
            if sex is None and coding.sex is not None:
                sex = coding.sex
                notes.append("sex_from_text")

        hits = scan_red_flags(text, clean, age_years=age, sex=sex, pregnant=pregnant,
                              truncated=screen.has("too_long"), path=self.kb.path("red_flags.yaml"))
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
        if screen.has("too_long"):
            notes.append("text_truncated")
        safe_reply = None
        if screen.blocked and not red_flags:
            safe_reply = screen.safe_reply(language)
            return TriageResult(
                language=language, disposition=Disposition.CONSULTATION, confidence=0.0,
                input_issues=issues, safe_reply=safe_reply,
                notes=[*notes, "input could not be triaged; patient asked to rephrase or see staff"],
            )

        # urgency: the most urgent of the rules (the floor) and the learned acuity model;
        # red flags and NEWS2 come last and nothing after them lowers the result
        urgency = assess_urgency(clean, age_years=age, pregnant=pregnant, kb=self.kb)
        disposition = urgency.disposition
        reasons_en = [f"rule {_rule_words(r)}" for r in urgency.rule_ids]
        reasons_zh = [f"规则：{_rule_words(r)}" for r in urgency.rule_ids]
        risk, model_disposition, model_reasons = self._acuity(coding, age=age, sex=sex, text=clean)
        if (model_disposition is Disposition.CONSULTATION_24 and disposition is Disposition.SELF_CARE
                and risk is not None and risk.p_emergency < self._model_own_threshold(risk)):
            # a self-care rule (NICE CKS minor illness) and a learned risk below the model's own
            # emergency point agree: the same-day hedging band does not override them
            model_disposition = Disposition.SELF_CARE
            model_reasons = [*model_reasons, "minor illness rule and low learned risk: self-care"]
        if model_disposition is not None and model_disposition.rank < disposition.rank:
            disposition = model_disposition
            urgency.rule_ids.append("ACUITY_MODEL")
        if model_disposition is not None:
            reasons_en += model_reasons
            reasons_zh += [_zh_reason(r) for r in model_reasons]
        if red_flags:
            disposition = min((r.disposition for r in red_flags), key=lambda d: d.rank)
            disposition = min(disposition, Disposition.EMERGENCY, key=lambda d: d.rank)
            reasons_en = [f"warning sign: {r.name_en}" for r in red_flags] + reasons_en
            reasons_zh = [f"危险信号：{r.name_zh}" for r in red_flags] + reasons_zh
        codes = [] if coding is None else [
            ComplaintCodeRef(code=c.code, label_en=c.label_en, label_zh=c.label_zh, evidence=c.evidence[:200])
            for c in coding.codes]
        if codes:
            reasons_en.insert(0, "complaint: " + "; ".join(c.label_en for c in codes[:4]))
            reasons_zh.insert(0, "主诉：" + "；".join(c.label_zh or c.label_en for c in codes[:4]))

        # the specialty ranking (who will care for this) is separate from the disposition
        # (where to go now); see _route for when the ED itself leads the list
        departments, evidence = self._route(
            clean, age=age, sex=sex, pregnant=pregnant, emergency=disposition.is_emergency,
            ed_first=bool(red_flags) or urgency.disposition.is_emergency, coding=coding,
            warning_signs=[r.rule_id for r in red_flags])
        if self.settings.llm_capable and self.backend is not None and departments:
            from assistant.triage.second_opinion import second_opinion

            departments, disposition = second_opinion(self.backend, clean, departments, disposition,
                                                      self.catalog)
        top = departments[0].code if departments else "GENMED"
        if disposition.is_emergency:
            top = "EMERG"  # the patient goes to the ED now: its pre-arrival notice and doctors
        doctors = self._doctors(top, clean, disposition, language, now)
        questions = follow_up_questions(
            clean, language=language, age_years=age, sex=sex, pregnant=pregnant,
            asked=asked, red_flag=bool(red_flags), kb=self.kb,
        )
        if not red_flags and risk is not None and coding is not None:
            extra = self._discriminating_question(coding, risk, age=age, sex=sex, language=language,
                                                  asked=asked, text=clean)
            if extra is not None and extra[0] not in {i for i, _ in questions}:
                general = {q["id"] for q in self.kb.yaml("interview.yaml").get("general", [])}
                topics = [q for q in questions if q[0] not in general]
                questions = [*topics[:2], extra, *[q for q in questions if q[0] in general]][:3]
        citations = self._citations(clean) or _condition_citations(evidence, departments)
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
            input_issues=issues, safe_reply=safe_reply, notes=notes,
            complaint_codes=codes, risk=risk, reasons_en=reasons_en, reasons_zh=reasons_zh,
        )
        use_llm = self.settings.lead_in_enabled if lead_in is None else lead_in
        if use_llm and self.backend is not None and not safe_reply:
            from assistant.triage.safety import write_lead_in

            result.lead_in = write_lead_in(self.backend, clean, result)
        log.info("triage ref=%s disposition=%s dept=%s flags=%s", signal.patient_ref,
                 disposition.value, top, [r.rule_id for r in red_flags])
        return result

    # -- complaint codes and learned acuity ------------------------------------------
    def _code(self, text: str) -> Any:
        """The complaint coding of ``text`` (None for empty text or a coder fault)."""
        if not text.strip():
            return None
        from assistant.triage.complaints import code_complaint

        try:
            return code_complaint(text)
        except Exception as exc:  # noqa: BLE001 - the rules and red flags still decide
            log.error("complaint coding failed: %s", type(exc).__name__)
            return None

    def _acuity(self, coding: Any, *, age: float | None, sex: str | None, text: str = ""
                ) -> tuple[RiskEstimate | None, Disposition | None, list[str]]:
        """Calibrated risks and the model's disposition (None when the model cannot run)."""
        if coding is None or not coding.codes:
            return None, None, []
        try:
            model = self.acuity
            risk = model.predict(coding, age_years=age, sex=sex, vitals=coding.vitals or None)
            decision = model.decide(risk)
        except Exception as exc:  # noqa: BLE001 - the rules and red flags still decide
            log.error("acuity model failed: %s", type(exc).__name__)
            return None, None, []
        estimate = RiskEstimate(p_emergency=risk.p_emergency, p_critical=risk.p_critical,
                                p_admit=risk.p_admit, with_vitals=risk.with_vitals,
                                model_version=str(model.metadata.get("version", "")))
        disposition, reasons = decision.disposition, list(decision.reasons)
        max_risk, caps = self._model_caps
        for cap in (caps if risk.p_emergency < max_risk else []):
            if disposition.rank >= cap["cap"].rank or not _cap_applies(cap, coding, text):
                continue
            disposition = cap["cap"]
            reasons.append(f"{_rule_words(cap['id'])}: at most {cap['cap'].value} from the learned risk alone")
        return estimate, disposition, reasons

    def _model_own_threshold(self, risk: RiskEstimate) -> float:
        """The acuity model's own recall-90 % emergency point (``t_emergency``)."""
        return float(self.acuity.thresholds["vitals" if risk.with_vitals else "no_vitals"]["t_emergency"])

    @cached_property
    def _model_caps(self) -> tuple[float, list[dict[str, Any]]]:
        """``(max_risk, model_caps)`` of ``urgency_rules.yaml``, compiled once per Triager."""
        data = self.kb.yaml("urgency_rules.yaml")
        caps = [{**c, "cap": Disposition(c["cap"]),
                 "regex": re.compile("|".join(f"(?:{p})" for p in c["patterns"])) if c.get("patterns") else None}
                for c in data.get("model_caps") or []]
        return float(data.get("max_risk", 1.0)), caps

    def _discriminating_question(self, coding: Any, risk: RiskEstimate, *, age: float | None,
                                 sex: str | None, language: str, asked: frozenset[str] | set[str],
                                 text: str) -> tuple[str, str] | None:
        """The one question that best separates emergency from not, when the risk is near
        the model's emergency threshold (``discriminators`` in ``interview.yaml``).

        For each candidate whose answer is not in the text yet, the model is re-run with the
        question's complaint codes added (the "yes" answer). A candidate counts only if a
        "yes" would cross the threshold; among those, the question with the largest expected
        change of the emergency risk, P(yes | complaint codes) x (risk if yes - risk now), is
        asked. P(yes | codes) is the co-occurrence of the finding with the complaint in
        NHAMCS 2018-2019 visits (``models/acuity/discriminator_priors.json``, built by
        ``eval/urgency/build_discriminator_priors.py``); questions that almost nobody with
        this complaint answers "yes" to (below ``min_prior``) are not asked.

        Returns:
            ``(question_id, question)`` or None (risk not near the threshold, or no question
            would change the decision).
        """
        from assistant.triage.complaints import CodedComplaint

        conf = self.kb.yaml("interview.yaml").get("discriminators")
        if not conf:
            return None
        model = self.acuity
        t_em = model.emergency_threshold(risk.with_vitals)
        if not (float(conf.get("near", 0.6)) * t_em <= risk.p_emergency < t_em):
            return None
        low = normalise(text)
        have = {c.code for c in coding.codes}
        priors = self._discriminator_priors
        best: tuple[float, tuple[str, str]] | None = None
        for q in conf.get("questions", []):
            if q["id"] in asked or any(w in low for w in q.get("answered", [])):
                continue
            new = [c for c in q["codes"] if c not in have]
            if not new:
                continue
            given = priors.get("given", {}).get(q["id"], {})
            p_answer_yes = max([given[c] for c in have if c in given]
                               or [priors.get("overall", {}).get(q["id"], 0.0)])
            if p_answer_yes < float(conf.get("min_prior", 0.02)):
                continue  # a question nearly nobody with this complaint answers "yes" to
            added = coding.model_copy(update={"codes": [*coding.codes, *(
                CodedComplaint(code=c, label_en=c, evidence="", score=1.0) for c in new)]})
            try:
                p_yes = model.predict(added, age_years=age, sex=sex, vitals=coding.vitals or None).p_emergency
            except Exception:  # noqa: BLE001 - a question is optional
                continue
            gain = p_answer_yes * (p_yes - risk.p_emergency)
            if p_yes >= t_em and (best is None or gain > best[0]):
                best = (gain, (q["id"], q[language]))
        return None if best is None else best[1]

    @cached_property
    def _discriminator_priors(self) -> dict[str, Any]:
        """``models/acuity/discriminator_priors.json`` (empty when missing or unreadable)."""
        import json

        try:
            return json.loads(self.kb.path("models/acuity/discriminator_priors.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    # -- routing ----------------------------------------------------------------------
    @cached_property
    def conditions(self) -> Any:
        """The packaged condition index and NHAMCS prior (``knowledge_base/models/conditions``)."""
        from assistant.triage.conditions import condition_index

        return condition_index(self.kb.root)

    def _evidence(self, text: str, coding: Any, *, age: float | None, sex: str | None,
                  warning_signs: list[str] | None = None, vector: Any = None) -> Any:
        """Retrieved conditions, the conditions named by warning signs and the NHAMCS prior
        for a complaint (empty on any fault); ``vector``: the complaint's multilingual
        embedding (:meth:`_complaint_vector`) when the router computed one, which a Chinese
        complaint also searches the multilingual condition index with."""
        from assistant.triage.conditions import ConditionEvidence

        if not text.strip():
            return ConditionEvidence()
        codes = [] if coding is None else list(coding.codes)
        try:
            vectors = self._multilingual_vectors(text) if vector is not None else None
            return self.conditions.evidence(text, code_labels=[c.label_en for c in codes],
                                            codes=[c.code for c in codes], age=age, sex=sex,
                                            k=ROUTING_K, temperature=ROUTING_TEMPERATURE,
                                            warning_signs=warning_signs,
                                            query_vector=None if vectors is None else vector,
                                            vectors=vectors)
        except Exception as exc:  # noqa: BLE001 - conditions are an aid, never a blocker
            log.warning("condition retrieval failed: %s", type(exc).__name__)
            return ConditionEvidence()

    def _multilingual_vectors(self, text: str) -> Any:
        """The packaged MedQuAD document vectors for a Chinese complaint's multilingual
        condition retrieval; None for other text, without them, or when its weight is 0."""
        from assistant.text import has_cjk

        if W_MULTILINGUAL <= 0 or not has_cjk(text):
            return None
        from assistant.knowledge.crosslingual import load_packaged_vectors

        return load_packaged_vectors(self.kb.root)

    def _complaint_vector(self, text: str) -> Any:
        """The complaint's multilingual sentence embedding (512 float32, unit norm; first
        1,000 characters), or None without the encoder package or on any fault."""
        from assistant.knowledge.crosslingual import get_multilingual_encoder

        try:
            encoder = get_multilingual_encoder(self.settings)
            return None if encoder is None else encoder.query([text[:1000]])[0]
        except Exception as exc:  # noqa: BLE001 - the TF-IDF router still answers
            log.warning("complaint embedding failed: %s", type(exc).__name__)
            return None

    def _with_embedding(self, text: str, probs: dict[str, float], *,
                        warning_signs: list[str] | None) -> tuple[dict[str, float], Any]:
        """The TF-IDF router's department probabilities ``probs`` for ``text``, mixed with
        the embedding router's (share :data:`W_EMBEDDING`) when their largest is below
        :data:`ML_CONFIDENCE_GATE` and no warning sign fired (an emergency answer never
        waits for the encoder). Returns ``(probabilities over the catalog codes, the
        complaint's embedding or None)``.
        """
        if not text.strip() or warning_signs or max(probs.values(), default=0.0) >= ML_CONFIDENCE_GATE:
            return probs, None
        vector = self._complaint_vector(text)
        model = self.embedding_router if vector is not None and W_EMBEDDING > 0 else None
        if model is None:
            return probs, vector
        try:
            dense = model.predict_proba_dense(vector)[0]
        except ValueError as exc:  # a cached model of another encoder width
            log.warning("embedding router unusable: %s", exc)
            return probs, vector
        return mix(probs, {str(c): float(p) for c, p in zip(model.classes_, dense, strict=True)}, W_EMBEDDING), vector

    def _route(self, text: str, *, age: float | None, sex: str | None, pregnant: bool | None,
               emergency: bool, ed_first: bool = False, coding: Any = None,
               warning_signs: list[str] | None = None) -> tuple[list[DepartmentScore], Any]:
        """The specialty ranking (top 3) and the condition evidence behind it.

        Fusion (weights :data:`W_CLASSIFIER`, :data:`W_CONDITIONS`, :data:`W_PRIOR`,
        :data:`W_RETRIEVAL`, chosen on the router's train split, never on its validation
        split): text-classifier probabilities (:meth:`_with_embedding`: TF-IDF, mixed
        with the embedding router when unsure) + departments of the retrieved conditions
        (ICD-10 block -> department table) + the NHAMCS prior P(condition group | complaint
        code, age band, sex) + the hospital index's department passages when there is one.
        Then the catalog/policy rules, after fusion: departments that do not see the
        patient (catalog ``sex`` / ``age_below_years``: no ANDRO for a woman, no PEDS for an
        adult) drop out; children under the PEDS age limit -> PEDS unless the classifier's
        best department sees children and is in the fused top 3; known pregnancy -> OBGYN;
        sex-specific complaints -> their department.

        The ranking answers "which department will care for this". The emergency
        department is not a clinic specialty: it is left out unless the disposition is an
        emergency. It leads the list only when a deterministic warning sign (red flag,
        NEWS2 vital sign or an emergency-level urgency rule: ``ed_first``) names a
        time-critical problem, which the ED's own teams (resuscitation, chest-pain and
        stroke centres) take first; the specialty follows it, or leads it when the warning
        sign and the complaint's words agree on it (:meth:`_handover_specialty`). An
        emergency from the learned risk alone keeps the specialty first. Either way the
        urgency line and the department line of the answer say "go to the emergency
        department now" and the demand signal goes to the ED.
        """
        words = probabilities(self.router, text) if text.strip() else {"GENMED": 1.0}
        probs, vector = self._with_embedding(text, words, warning_signs=warning_signs)
        evidence = self._evidence(text, coding, age=age, sex=sex, warning_signs=warning_signs, vector=vector)
        fused = {code: W_CLASSIFIER * probs.get(code, 0.0) + W_CONDITIONS * evidence.departments.get(code, 0.0)
                 + W_PRIOR * evidence.prior.get(code, 0.0) + W_WARNING_SIGN * evidence.named.get(code, 0.0)
                 + W_MULTILINGUAL * evidence.multilingual.get(code, 0.0)
                 for code in self.catalog}
        for rank, code in enumerate(c for c in self._retrieve_departments(text) if self._sees(c, age, sex)):
            fused[code] = fused.get(code, 0.0) + W_RETRIEVAL / (1 + rank)
        if not ed_first:
            fused["EMERG"] = 0.0  # the ED is where to go now, not the specialty
        for code in fused:
            if not self._sees(code, age, sex):
                fused[code] = 0.0  # catalog: a department that does not see this patient
        reasons: dict[str, tuple[str, str]] = {}
        ranked = sorted(fused, key=lambda c: -fused[c])
        policy, limit = self.kb.routing, self.kb.paediatric_age_limit
        # the TF-IDF router's best: the complaint's own words (the embedding router reads
        # "my 5 year old" as paediatrics whatever the complaint)
        text_best = max((c for c in words if c in self.catalog and c != "EMERG"), key=lambda c: words[c],
                        default=None)
        if age is not None and limit is not None and age < limit:
            # a child sees a sees_children specialty directly only when the complaint's own
            # words point there (the classifier's best, in the fused top 3); conditions and
            # the NHAMCS prior (mostly adult ED visits) alone do not send a child away from
            # paediatrics
            if text_best in self.kb.child_direct and text_best in ranked[:3]:
                fused[text_best] = fused[ranked[0]] + 0.05
            else:
                fused[policy.paediatrics] = fused[ranked[0]] + 0.05
                reasons[policy.paediatrics] = (f"patient is under {limit}", f"患者未满{limit}岁")
        if pregnant:
            fused[policy.pregnancy] = max(fused.values()) + 0.05
            reasons[policy.pregnancy] = ("pregnancy", "孕期")
        low = normalise(text)
        for rule in policy.sex_specific:
            if sex == rule.sex and rule.regex.search(low):
                fused[rule.department] = max(fused.values()) + 0.05
                reasons[rule.department] = (rule.reason_en, rule.reason_zh)
        if ed_first:
            lead = self._handover_specialty(fused, text_best, words, evidence, warning_signs)
            if lead is None:
                fused["EMERG"] = max(fused.values()) + 0.1
            else:
                fused[lead] = max(fused.values()) + 0.1
                fused["EMERG"] = fused[lead] - 0.05
            reasons["EMERG"] = ("warning signs: the emergency department sees you first",
                                "存在危险信号，需先由急诊科处理")
        total = sum(fused.values()) or 1.0
        ranked = sorted(fused, key=lambda c: -fused[c])[:3]
        words = _complaint_words(coding)
        out = []
        for code in ranked:
            dept = self.catalog[code]
            en, zh = reasons.get(code) or _condition_reason(code, dept, evidence, words)
            if emergency and code != "EMERG" and code not in reasons:
                en, zh = f"after the emergency department: {en}", f"急诊处理后：{zh}"
            out.append(DepartmentScore(code=code, name_en=dept.name_en, name_zh=dept.name_zh,
                                       score=round(min(1.0, fused[code] / total), 3),
                                       reason_en=en, reason_zh=zh))
        return out, evidence

    def _handover_specialty(self, fused: dict[str, float], best: str | None, words: dict[str, float],
                            evidence: Any, warning_signs: list[str] | None) -> str | None:
        """The specialty that leads an emergency's department list instead of the ED, or None.

        The ED leads unless two independent sources agree on the specialty that cares for
        the condition: at least one warning sign fired and every one names a condition
        (``red_flag_conditions.yaml``; unconsciousness, severe bleeding, NEWS2 vital signs
        and the emergency-level urgency rules name none), the complaint's own words give
        one department a TF-IDF probability of at least :data:`ED_HANDOVER_GATE`, that
        department cares for a named condition (its ICD-10 block's departments) and it is
        the fused best after the catalog and policy rules. Then the specialty leads and the
        ED follows it: the disposition, the answer's first lines, the doctor suggestions
        and the demand signal still send the patient to the ED now. ``best``: the TF-IDF
        router's best catalog department other than the ED, ``words`` its probabilities.
        "癫痫病人今天抽搐不停，口吐白沫，已经十分钟了" -> Neurology, then the ED; a confused,
        feverish woman with blotchy skin (sepsis named, the words say Dermatology) -> the ED.

        Returns:
            The catalog code of the specialty, or None (the ED leads).
        """
        named = evidence.warning_sign_conditions
        if not warning_signs or not named or not all(self.conditions.names_condition(r) for r in warning_signs):
            return None
        if best is None or words[best] < ED_HANDOVER_GATE or not any(best in c.group.departments for c in named):
            return None
        specialty = max((c for c in fused if c != "EMERG"), key=lambda c: fused[c])
        return best if specialty == best else None

    def _sees(self, code: str, age: float | None, sex: str | None) -> bool:
        """Whether catalog department ``code`` exists and sees this patient
        (:meth:`Department.sees <assistant.kb.catalog.Department.sees>`)."""
        dept = self.catalog.get(code)
        return dept is not None and dept.sees(age, sex)

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


def scan_red_flags(raw: str, clean: str, *, age_years: float | None, sex: str | None,
                   pregnant: bool | None, truncated: bool = False, path: Path | None = None) -> list[Any]:
    """Red flags of a whole complaint, however long.

    Screening passes at most a few thousand characters on (the newest text); red flags
    still read everything: the cleaned text, then, when screening cut it, the raw text in
    overlapping windows of :data:`RED_FLAG_WINDOW` characters (up to
    :data:`MAX_RED_FLAG_SCAN`), so an emergency sentence is found wherever it sits in a
    long chat.

    Args:
        truncated: screening cut the text (``too_long``); only then is the raw text scanned.
        path: the knowledge base's ``red_flags.yaml`` (default: the default knowledge base's).

    Returns:
        :class:`~assistant.triage.red_flags.RedFlagHit` list, one per rule, most urgent first.
    """
    from assistant.triage.red_flags import match_red_flags

    kw = {"age_years": age_years, "sex": sex, "pregnant": pregnant, "path": path}
    hits = {h.rule_id: h for h in (match_red_flags(clean, **kw) if clean else [])}
    if truncated:
        body = raw[-MAX_RED_FLAG_SCAN:]
        step = RED_FLAG_WINDOW - RED_FLAG_OVERLAP
        for start in range(0, max(1, len(body) - RED_FLAG_OVERLAP), step):
            for hit in match_red_flags(body[start:start + RED_FLAG_WINDOW], **kw):
                hits.setdefault(hit.rule_id, hit)
    return sorted(hits.values(), key=lambda h: h.disposition.rank)


def _cap_applies(cap: dict[str, Any], coding: Any, text: str) -> bool:
    """Whether a ``model_caps`` entry applies to a complaint (its coding and text)."""
    if cap.get("severity"):
        return coding.severity == cap["severity"]
    prefixes = cap.get("no_codes_starting_with")
    if prefixes:
        return bool(coding.codes) and not any(c.code.startswith(tuple(prefixes)) for c in coding.codes)
    hours = cap.get("min_duration_hours")
    if hours is not None:
        return (coding.duration_hours is not None and coding.duration_hours >= hours
                and coding.onset != "sudden")
    regex = cap.get("regex")
    return regex is not None and bool(regex.search(normalise(text)))


def _rule_words(rule_id: str) -> str:
    """``UE_ACUTE_CHEST_PAIN`` -> ``acute chest pain``."""
    return rule_id.split("_", 1)[-1].replace("_", " ").lower()


_ZH_REASON = [
    (re.compile(r"critical-care risk (\d+)%"), r"重症风险\1%"),
    (re.compile(r"emergency-level triage risk (\d+)%"), r"急诊级别风险\1%"),
    (re.compile(r"emergency-level risk (\d+)%"), r"急诊级别风险\1%"),
    (re.compile(r"admission risk (\d+)%"), r"住院风险\1%"),
    (re.compile(r"low "), ""),
    (re.compile(r"see a doctor within 24 h"), "建议24小时内就医"),
    (re.compile(r"book a clinic visit"), "建议门诊就诊"),
    (re.compile(r"\bage (\d+(?:\.\d+)?)"), r"年龄\1岁"),
    (re.compile(r"complaint: "), "主诉："),
    (re.compile(r" and "), "，"),
]


def _zh_reason(text: str) -> str:
    """A Chinese rendering of an acuity reason (numbers and vital signs kept as they are)."""
    for pattern, repl in _ZH_REASON:
        text = pattern.sub(repl, text)
    return text


def _complaint_words(coding: Any) -> tuple[str, str]:
    """The complaint in the patient's words, e.g. ``("sudden chest pain with sweating",
    "突然胸痛伴出汗")``; ``("", "")`` without complaint codes."""
    if coding is None or not coding.codes:
        return "", ""
    codes = coding.codes[:2]
    en_parts = [c.evidence if c.evidence and not any(is_cjk(ch) for ch in c.evidence)
                else _PLAIN_LABEL.sub("", c.label_en).split(",")[0].lower() for c in codes]
    zh_parts = [c.evidence if c.evidence and any(is_cjk(ch) for ch in c.evidence) else (c.label_zh or c.label_en)
                for c in codes]
    en = " with ".join(dict.fromkeys(p.strip() for p in en_parts if p.strip()))
    zh = "伴".join(dict.fromkeys(p.strip() for p in zh_parts if p.strip()))
    if coding.onset == "sudden":
        en, zh = f"sudden {en}", f"突然{zh}"
    return en[:120], zh[:60]


_PLAIN_LABEL = re.compile(r"\s*\([^)]*\)|,?\s*\bNOS\b|,?\s*not elsewhere classified", re.IGNORECASE)
_GENERIC_NAME = re.compile(r"^(other|unspecified)\b|\bunspecified\b|, not elsewhere classified", re.IGNORECASE)


def _condition_reason(code: str, dept: Any, evidence: Any, words: tuple[str, str]) -> tuple[str, str]:
    """Why a department, in plain words: the condition group that supports it (from the
    retrieved conditions and ``icd10_departments.yaml``), never a keyword list."""
    cond = evidence.support(code) if evidence is not None else None
    what_en, what_zh = words[0] or "your symptoms", words[1] or "您的症状"
    if cond is None:
        return (f"{dept.name_en} usually sees problems like {what_en}",
                f"{what_zh}等问题通常由{dept.name_zh}诊治")
    example = ""
    named = next((c for c in evidence.conditions if c.group == cond.group and c.source != "ICD-10-CM"), None) \
        or (cond if not _GENERIC_NAME.search(cond.name) else None)
    name = named.name.split(" - ")[-1].split(",")[0].strip().lower() if named is not None else ""
    name = re.sub(r" in (children|adults|teens|women|men)$", "", name)
    if name and name not in what_en.lower() and name not in cond.group.en.lower():
        example = f", such as {name}"
    return (f"{what_en} can come from {cond.group.en}{example}; {dept.name_en} cares for this",
            f"{what_zh}可能与{cond.group.zh}有关，由{dept.name_zh}诊治")


def _condition_citations(evidence: Any, departments: list[DepartmentScore], k: int = 3) -> list[Citation]:
    """MedQuAD documents of the retrieved conditions that support the ranked departments
    (used when there is no retrieval index)."""
    if evidence is None:
        return []
    codes = {d.code for d in departments}
    out: list[Citation] = []
    for c in evidence.conditions:
        if c.url and codes & set(c.group.departments) and c.url not in {x.url for x in out}:
            title = c.title or c.name
            out.append(Citation(title=title, source=f"MedQuAD / {c.source}", url=c.url,
                                snippet=f"{title}: {c.group.en} (ICD-10-CM {c.code})", score=round(c.score, 3)))
        if len(out) == k:
            break
    return out


def _open_retriever(settings: Settings) -> Any:
    if settings.chroma_url is None and not settings.resolved_index_dir.exists():
        return None
    try:
        from assistant.knowledge import Retriever

        return Retriever(settings)
    except Exception as exc:  # noqa: BLE001 - no index: triage without citations
        log.warning("no retrieval index (%s); triage continues without citations", exc)
        return None


def open_hospital(settings: Settings) -> Any:
    """SQLAlchemy sessionmaker of the resource tables, or None when there are none (no
    SQLite file; a database server without the tables or out of reach)."""
    from assistant.hospital.db import open_existing

    return open_existing(settings.resolved_hospital_db)

