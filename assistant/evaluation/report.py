"""Markdown report and matplotlib plots for triage eval results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ANCHORS = [
    ("23 online symptom checkers, 3-level triage (Semigran et al., BMJ 2015)", "57 %", "80 % on emergencies"),
    ("Physicians, 4-level triage (Levine et al., Lancet Digital Health 2024)", "91 %", ""),
    ("GPT-3, 4-level triage (Levine et al. 2024)", "71 %", ""),
    ("Lay people, 4-level triage (Levine et al. 2024)", "74 %", ""),
]
DISPOSITIONS = ["emergency_ambulance", "emergency", "consultation_24", "consultation", "self_care"]


def fmt(p: dict[str, Any]) -> str:
    """``71.2 % [65.0, 76.8] (k/n)`` or ``–`` when n = 0."""
    if not p or not p.get("n"):
        return "–"
    return f"{p['p'] * 100:.1f} % [{p['lo'] * 100:.1f}, {p['hi'] * 100:.1f}] ({p['k']}/{p['n']})"


def plots(name: str, rows: list[dict[str, Any]], out: Path) -> list[str]:
    """Write PNG plots for one case set; returns file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    files = []
    ok = [r for r in rows if not r.get("error")]
    d5 = [r for r in ok if r.get("gold_disposition")]
    if d5:
        m = np.zeros((5, 5), int)
        for r in d5:
            m[DISPOSITIONS.index(r["gold_disposition"]), DISPOSITIONS.index(r["pred_disposition"])] += 1
        fig, ax = plt.subplots(figsize=(6, 5))
        ax.imshow(m, cmap="Blues")
        for i in range(5):
            for j in range(5):
                ax.text(j, i, m[i, j], ha="center", va="center")
        short = ["amb", "ED", "24h", "clinic", "self"]
        ax.set_xticks(range(5), short)
        ax.set_yticks(range(5), short)
        ax.set_xlabel("predicted")
        ax.set_ylabel("gold")
        ax.set_title(f"{name}: disposition confusion")
        files.append(_save(fig, out / f"{name}_disposition_confusion.png"))
    u3 = [r for r in ok if r.get("gold_urgency3")]
    if u3:
        levels = ["em", "ne", "sc"]
        acc = [np.mean([r["pred_urgency3"] == lv for r in u3 if r["gold_urgency3"] == lv] or [0]) for lv in levels]
        under = np.mean([{"em": 0, "ne": 1, "sc": 2}[r["pred_urgency3"]] > {"em": 0, "ne": 1, "sc": 2}[r["gold_urgency3"]] for r in u3])
        over = np.mean([{"em": 0, "ne": 1, "sc": 2}[r["pred_urgency3"]] < {"em": 0, "ne": 1, "sc": 2}[r["gold_urgency3"]] for r in u3])
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.bar(levels + ["under", "over"], list(acc) + [under, over], color=["C0"] * 3 + ["C3", "C1"])
        ax.set_ylim(0, 1)
        ax.set_title(f"{name}: per-level accuracy, under/over-triage")
        files.append(_save(fig, out / f"{name}_urgency_levels.png"))
    risk = [r for r in ok if r.get("gold_urgency3") and r.get("p_emergency") is not None]
    if len(risk) >= 20:  # reliability diagram of the acuity model's P(emergency)
        p = np.array([r["p_emergency"] for r in risk])
        y = np.array([r["gold_urgency3"] == "em" for r in risk], float)
        edges = np.unique(np.quantile(p, np.linspace(0, 1, 11)))
        idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, max(len(edges) - 2, 0))
        xs = [p[idx == b].mean() for b in range(len(edges) - 1) if (idx == b).any()]
        ys = [y[idx == b].mean() for b in range(len(edges) - 1) if (idx == b).any()]
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect")
        ax.plot(xs, ys, "o-", label="acuity model (deciles)")
        ax.set_xlabel("predicted P(emergency)")
        ax.set_ylabel("observed emergency share")
        ax.set_title(f"{name}: calibration")
        ax.legend()
        files.append(_save(fig, out / f"{name}_calibration.png"))
    dept = [r for r in ok if r.get("gold_departments") and r.get("pred_departments")]
    if dept:
        codes = sorted({r["gold_departments"][0] for r in dept} | {r["pred_departments"][0] for r in dept})
        m = np.zeros((len(codes), len(codes)), int)
        for r in dept:
            m[codes.index(r["gold_departments"][0]), codes.index(r["pred_departments"][0])] += 1
        fig, ax = plt.subplots(figsize=(8, 7))
        ax.imshow(np.log1p(m), cmap="viridis")
        ax.set_xticks(range(len(codes)), codes, rotation=90, fontsize=7)
        ax.set_yticks(range(len(codes)), codes, fontsize=7)
        ax.set_xlabel("predicted top department")
        ax.set_ylabel("gold department")
        ax.set_title(f"{name}: department confusion (log counts)")
        files.append(_save(fig, out / f"{name}_department_heatmap.png"))
    lat = [r["latency_s"] * 1000 for r in rows if "latency_s" in r]
    if lat:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.hist(lat, bins=30)
        ax.set_xlabel("latency per case (ms)")
        ax.set_title(f"{name}: latency")
        files.append(_save(fig, out / f"{name}_latency.png"))
    return files


def _save(fig: Any, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path.name


def latency_stats(rows: list[dict[str, Any]]) -> dict[str, float]:
    """p50/p95 latency in ms and cases/s."""
    import numpy as np

    lat = np.array([r["latency_s"] for r in rows if "latency_s" in r] or [0.0])
    return {"p50_ms": float(np.percentile(lat, 50) * 1000), "p95_ms": float(np.percentile(lat, 95) * 1000),
            "cases_per_s": float(len(lat) / lat.sum()) if lat.sum() else 0.0}


def markdown(results: dict[str, dict[str, Any]], extra: dict[str, str], out: Path) -> Path:
    """Write ``report.md`` with the metric table, anchors and plots."""
    lines = ["# Triage Assistant evaluation (dev sets)", "",
             "All figures are on development sets (labelled *dev*); 95 % Wilson intervals.", ""]
    lines += ["| set | cases | errors | disposition (5) | urgency (3) | emergency recall | emergency precision | others sent to emergency | under-triage | over-triage | dept top-1 | dept top-3 | p50 ms | p95 ms |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, res in results.items():
        m, lat = res["metrics"], res["latency"]
        lines.append(f"| {name} (dev) | {m['cases']} | {m['errors']} | {fmt(m['disposition5'])} | {fmt(m['urgency3'])} | "
                     f"{fmt(m['emergency_recall'])} | {fmt(m['emergency_precision'])} | {fmt(m['others_sent_to_em'])} | "
                     f"{fmt(m['under_triage'])} | {fmt(m['over_triage'])} | "
                     f"{fmt(m['department_top1'])} | {fmt(m['department_top3'])} | {lat['p50_ms']:.0f} | {lat['p95_ms']:.0f} |")
    lines += ["", "## Published anchors (not our data; different case sets)", "",
              "| anchor | accuracy | note |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in ANCHORS]
    for title, body in extra.items():
        lines += ["", f"## {title}", "", body]
    lines += ["", "## Plots", ""]
    for name, res in results.items():
        lines += [f"![{f}]({f})" for f in res.get("plots", [])]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
