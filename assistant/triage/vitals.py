"""Vital-sign red flags parsed from free text (e.g. a nurse's or a device's readings).

A single vital sign in the NEWS2 "red" band (score 3) calls for an urgent/emergency
response (Royal College of Physicians, National Early Warning Score 2, 2017):
RR <= 8 or >= 25 /min; SpO2 <= 91 %; systolic BP <= 90 or >= 220 mmHg; pulse <= 40 or
>= 131 /min; temperature <= 35.0 C; consciousness other than Alert (AVPU V, P or U).
Readings are recognised only with an explicit label (``SpO2 88``, ``HR 140``,
``BP 85/50``, ``RR 30``, ``T 34.8``, ``血氧88``, ``心率140``, ``呼吸30``, ``血压85/50``), in
the words patients and carers use too (``pulse ox 86``, ``oxygen level 85``, ``systolic 80``,
``心跳150``, ``收缩压``/``高压``), with a colon or up to two linking words before the number
("heart rate is 140", "a temperature of 94", "BP was only 80/50", "收缩压只有80").

A blood pressure written as a pair (``120/80``, ``90-140``, ``140~90``, ``90到140``) is read
by :func:`reading`: the systolic is the larger number, whatever the order. Systolic
pressure is above diastolic by definition, and lay writers often give the pair low-high
("血压90-140", the diastolic-systolic range of a health check); reading the first number
would call that a NEWS2 hypotension red flag. A temperature above 45 is Fahrenheit and is
converted to Celsius before the check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SOURCE = "NEWS2 single-parameter red score (Royal College of Physicians 2017)"
_NUM = r"(\d{1,3}(?:\.\d)?)"
# between a label and its number: a colon (ASCII or full-width), "=", or up to two linking
# words as people write them ("heart rate is 140", "a temperature of 94", "BP was only 80",
# "心跳有140", "血压为85/50", "收缩压只有80", "心率每分钟140次")
_LINK = r"(?:[:=：]|\b(?:is|was|of|at|reads?|only|about|around|just)\b|为|是|只有|有|仅|才|约|大约|大概|在|每分钟|每分)"
# the iron study's transferrin saturation (TSAT, %) is not an oxygen saturation
_NOT_IRON = r"(?<!transferrin )(?<!iron )(?<!tsat )"
_SEP = rf"\s*(?:{_LINK}\s*){{0,2}}"


def _labelled(labels: str, tail: str = "") -> re.Pattern[str]:
    return re.compile(rf"(?:{labels}){_SEP}{_NUM}{tail}", re.I)


PATTERNS: dict[str, re.Pattern[str]] = {
    "rr": _labelled(r"\brr\b|resp(?:iratory)? rate|breathing rate|呼吸(?:频率)?"),
    "spo2": _labelled(r"spo2|sao2|o2 sat|\bpulse ?ox(?:imeter|imetry)?(?: reading)?|oxygen (?:level|saturation|sats?)"
                      rf"|{_NOT_IRON}(?:saturation|\bsats?\b)|血氧(?:饱和度|浓度)?|氧饱和度"),
    "sbp": _labelled(r"\bsbp\b|\bbp\b|blood pressure|systolic(?: blood pressure| pressure| bp)?|血压|收缩压|高压",
                     r"(?:\s*(?:/|-|~|～|至|到)\s*(\d{2,3})(?!\d))?"),
    "hr": _labelled(r"\bhr\b|heart rate|heart ?beat|pulse(?: rate)?|心率|心跳|脉搏"),
    # "t" alone is a label ("T 34.8"), never the t of "can't" / "don't"
    "temp": _labelled(r"\btemp(?:erature)?\b|\bbt\b|(?<![\'’])\bt\b|体温"),
}
AVPU = re.compile(r"(?:mental|avpu|consciousness)\s*[:=]?\s*(verbal|pain|unresponsive|v\b|p\b|u\b)", re.I)


FAHRENHEIT_ABOVE = 45.0
"""A stated body temperature above this is in degrees Fahrenheit: no living person's is
above 45 °C, and none is below 45 °F (7 °C)."""


def celsius(value: float) -> float:
    """A stated body temperature in °C: ``value`` above :data:`FAHRENHEIT_ABOVE` is read as
    °F and converted, rounded to 0.1 °C ("101.3" -> 38.5, "94.5" -> 34.7); others as they are."""
    return round((value - 32) * 5 / 9, 1) if value > FAHRENHEIT_ABOVE else value


def reading(key: str, match: re.Match[str]) -> float:
    """The value of a :data:`PATTERNS` match: the number after the label; for ``sbp`` the
    larger number of a written pair (mmHg; see the module docstring); for ``temp`` degrees
    Celsius (:func:`celsius`: Fahrenheit converted), so "temp 94.5" is 34.7 °C, hypothermia."""
    value = float(match.group(1))
    if key == "sbp" and match.group(2):
        value = max(value, float(match.group(2)))
    return celsius(value) if key == "temp" else value


@dataclass(frozen=True)
class VitalFlag:
    """A vital sign in the NEWS2 red band."""

    rule_id: str
    name_en: str
    name_zh: str
    evidence: str


def vital_red_flags(text: str) -> list[VitalFlag]:
    """Vital signs in ``text`` that score 3 on NEWS2 (see module docstring)."""
    out: list[VitalFlag] = []
    low = text[:4000]

    def first(key: str) -> tuple[float, str] | None:
        m = PATTERNS[key].search(low)
        return (reading(key, m), m.group(0)) if m else None

    checks = [
        ("rr", lambda v: v <= 8 or v >= 25, "VITAL_RR", "abnormal breathing rate", "呼吸频率异常"),
        ("spo2", lambda v: 0 < v <= 91, "VITAL_SPO2", "low oxygen saturation", "血氧饱和度低"),
        ("sbp", lambda v: 30 <= v <= 90 or v >= 220, "VITAL_SBP", "abnormal blood pressure", "血压异常"),
        ("hr", lambda v: 0 < v <= 40 or v >= 131, "VITAL_HR", "abnormal heart rate", "心率异常"),
        ("temp", lambda v: 25 <= v <= 35.0, "VITAL_TEMP", "low body temperature", "体温过低"),
    ]
    for key, bad, rule_id, en, zh in checks:
        hit = first(key)
        if hit and bad(hit[0]):
            out.append(VitalFlag(rule_id, en, zh, hit[1]))
    m = AVPU.search(low)
    if m:
        out.append(VitalFlag("VITAL_AVPU", "reduced consciousness", "意识水平下降", m.group(0)))
    return out
