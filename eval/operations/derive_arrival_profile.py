"""Derive the ED arrival profile (weekday, hour, month shares) from NHAMCS 2018-2019.

Source: National Hospital Ambulatory Medical Care Survey (NHAMCS), emergency-department
public-use files 2018-2019 (CDC/NCHS, public domain), ``../shared/data/nhamcs``.
Columns used: YEAR, VMONTH (1-12), VDAYR (1 = Sunday ... 7 = Saturday), ARRTIME (HHMM),
IMMEDR (nurse triage level 1-5), PATWT (national visit weight). Shares are weighted by
PATWT. 2020 (COVID year) is left out: its arrivals are not a normal year's pattern.

Writes ``knowledge_base/ops_arrival_profile.yaml`` (small derived table, with its
source). Run: ``.venv/bin/python eval/operations/derive_arrival_profile.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[2]


def main(shared: Path = REPO.parent / "shared" / "data") -> None:
    df = pd.read_csv(shared / "nhamcs" / "nhamcs_ed_2018_2020.csv",
                     usecols=["YEAR", "VMONTH", "VDAYR", "ARRTIME", "IMMEDR", "PATWT"])
    df = df[df.YEAR.isin([2018, 2019]) & df.ARRTIME.between(0, 2359) & df.VDAYR.between(1, 7)]
    df = df.assign(hour=df.ARRTIME // 100, weekday=(df.VDAYR + 5) % 7)  # 0 = Monday
    w = df.PATWT

    def shares(col: str, n: int, start: int = 0) -> list[float]:
        s = w.groupby(df[col]).sum().reindex(range(start, start + n), fill_value=0.0)
        return [round(float(x), 5) for x in s / s.sum()]

    urgent = df.IMMEDR.isin([1, 2])
    known = df.IMMEDR.between(1, 5)
    em_share = float(w[urgent].sum() / w[known].sum())
    by_wd = (w[urgent].groupby(df.weekday[urgent]).sum() / w[known].groupby(df.weekday[known]).sum())
    month = shares("VMONTH", 12, 1)
    # NHAMCS samples each hospital in one 4-week period, so raw month shares carry
    # sampling noise (e.g. December 4 %): smooth circularly over 3 months and shrink
    # half-way to flat before using them as a seasonal factor (mean 1).
    smooth = [(month[i - 1] + month[i] + month[(i + 1) % 12]) / 3 for i in range(12)]
    month_factor = [round(0.5 + 0.5 * 12 * x, 4) for x in smooth]
    out = {
        "source": ("NHAMCS ED public-use files 2018-2019 (CDC/NCHS, public domain), "
                   "../shared/data/nhamcs; shares weighted by PATWT; derived by "
                   "eval/operations/derive_arrival_profile.py"),
        "visits": len(df),
        "weekday_share": shares("weekday", 7),      # Monday first
        "hour_share": shares("hour", 24),           # local arrival hour 0-23
        "month_share": shares("VMONTH", 12, 1),     # January first
        "month_factor": month_factor,               # smoothed, shrunk, mean 1
        "emergency_share": round(em_share, 4),      # triage level 1-2 among levels 1-5
        "emergency_share_by_weekday": [round(float(by_wd.get(i, em_share)), 4) for i in range(7)],
    }
    path = REPO / "knowledge_base" / "ops_arrival_profile.yaml"
    path.write_text(yaml.safe_dump(out, sort_keys=False, allow_unicode=True), encoding="utf-8")
    print(f"wrote {path} from {len(df)} visits")


if __name__ == "__main__":
    main(*(Path(a) for a in sys.argv[1:]))
