"""Regional balancing across hospitals and community health centres (HiGHS LP).

Demand of each district and disposition class (population x the daily rates of
``knowledge_base/region_policy.yaml``) is assigned to sites:

* **emergencies** always go to the nearest site with an emergency department (never
  balanced away: 急慢分治);
* **non-urgent classes** go to the services the policy lists for them, primary care
  (community health centres, CHC) first: the LP minimises travel minutes + a policy cost
  for a service that is not the class's first choice + a high cost for a patient left
  unserved today, within each site's daily capacity and the policy's maximum travel time.

The baseline sends every patient to the nearest site offering the class's first-choice
service, whatever its capacity. Reported: travel-time percentiles per district
(patient-weighted) and the spread of occupancy (load / capacity) over sites.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session, sessionmaker

from assistant.hospital.db import write_session
from assistant.operations.history import ensure_ops_tables, kb_yaml
from assistant.operations.lp import LinearModel
from assistant.operations.models import RegionDistrict, RegionSite, RegionSiteCapacity, RegionTravel

NON_URGENT = ("consultation_24", "consultation", "self_care")


@dataclass
class Region:
    """The region as plain data (from the tables or the demo)."""

    districts: dict[str, dict[str, Any]]         # code -> name_en, name_zh, population
    sites: dict[str, dict[str, Any]]             # code -> name_en, name_zh, kind, district, address
    capacity: dict[tuple[str, str], int]         # (site, service) -> patients / day
    booked: dict[tuple[str, str], int]           # (site, service) -> booked today
    travel: dict[tuple[str, str], float]         # (district, site) -> minutes


@dataclass
class RegionResult:
    """An assignment of the day's demand: flows, travel percentiles and occupancy."""

    method: str
    flows: dict[tuple[str, str, str, str], float]  # (district, class, site, service) -> patients
    unserved: float
    travel_p50: dict[str, float]
    travel_p90: dict[str, float]
    travel_p90_all: float
    occupancy: dict[str, float]                    # "site/service" -> load / capacity
    occupancy_sd: float
    occupancy_max: float
    over_capacity: float
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"method": self.method, "unserved": round(self.unserved, 1),
                "travel_p90_all": round(self.travel_p90_all, 1),
                "travel_p50": {k: round(v, 1) for k, v in self.travel_p50.items()},
                "travel_p90": {k: round(v, 1) for k, v in self.travel_p90.items()},
                "occupancy": {k: round(v, 3) for k, v in self.occupancy.items()},
                "occupancy_sd": round(self.occupancy_sd, 4), "occupancy_max": round(self.occupancy_max, 3),
                "over_capacity": round(self.over_capacity, 1)}


# --------------------------------------------------------------------- demo region
_DISTRICTS = (  # code, en, zh, population, x km, y km
    ("D1", "Central", "中心区", 320_000, 0, 0), ("D2", "East Riverside", "东江区", 260_000, 9, 2),
    ("D3", "North Hills", "北山区", 180_000, 2, 12), ("D4", "West Gate", "西门区", 240_000, -10, 1),
    ("D5", "South Port", "南港区", 210_000, 1, -11), ("D6", "New Town", "新城区", 150_000, 16, -8),
)
_SITES = (  # code, en, zh, kind, district, x, y, {service: capacity}
    ("H1", "Demo General Hospital", "示范综合医院", "hospital", "D1", 0.5, 0.5, {"ed": 400, "specialist": 900}),
    ("H2", "North Hills People's Hospital", "北山区人民医院", "hospital", "D3", 2, 11, {"ed": 160, "specialist": 450}),
    ("H3", "South Port Hospital", "南港医院", "hospital", "D5", 0, -10, {"ed": 150, "specialist": 400}),
    ("C1", "Central Community Health Centre", "中心区社区卫生服务中心", "chc", "D1", -1, 1, {"primary": 400}),
    ("C2", "East Riverside Community Health Centre", "东江社区卫生服务中心", "chc", "D2", 9, 3, {"primary": 300}),
    ("C3", "North Hills Community Health Centre", "北山社区卫生服务中心", "chc", "D3", 3, 13, {"primary": 220}),
    ("C4", "West Gate Community Health Centre", "西门社区卫生服务中心", "chc", "D4", -10, 0, {"primary": 260}),
    ("C5", "South Port Community Health Centre", "南港社区卫生服务中心", "chc", "D5", 2, -12, {"primary": 280}),
    ("C6", "New Town Community Health Centre", "新城社区卫生服务中心", "chc", "D6", 15, -8, {"primary": 160}),
)


def demo_region(seed: int = 5) -> Region:
    """The seeded demo region: 6 districts, 3 hospitals, 6 community health centres.

    Travel minutes = 6 + 2.5 x straight-line km x a seeded road factor in [1.1, 1.4]
    (demo assumption for city traffic).
    """
    rng = random.Random(seed)
    districts = {c: {"name_en": en, "name_zh": zh, "population": pop} for c, en, zh, pop, _, _ in _DISTRICTS}
    sites = {c: {"name_en": en, "name_zh": zh, "kind": kind, "district": d,
                 "address_en": f"{en}, {districts[d]['name_en']} district", "address_zh": f"{districts[d]['name_zh']}{zh}"}
             for c, en, zh, kind, d, _, _, _ in _SITES}
    capacity = {(c, svc): cap for c, *_, caps in _SITES for svc, cap in caps.items()}
    travel = {}
    for dc, *_, dx, dy in _DISTRICTS:
        for sc, *_, sx, sy, _ in _SITES:
            km = math.hypot(dx - sx, dy - sy)
            travel[dc, sc] = round(6 + 2.5 * km * rng.uniform(1.1, 1.4), 1)
    return Region(districts, sites, capacity, {k: 0 for k in capacity}, travel)


def write_region(factory: sessionmaker[Session], region: Region) -> None:
    """Replace the region tables with ``region`` (one transaction)."""
    ensure_ops_tables(factory)
    with write_session(factory) as s:
        for model in (RegionTravel, RegionSiteCapacity, RegionSite, RegionDistrict):
            s.execute(delete(model))
        s.execute(insert(RegionDistrict), [{"code": c, **d} for c, d in region.districts.items()])
        s.execute(insert(RegionSite), [
            {"code": c, "name_en": v["name_en"], "name_zh": v["name_zh"], "kind": v["kind"],
             "district_code": v["district"], "address_en": v["address_en"], "address_zh": v["address_zh"]}
            for c, v in region.sites.items()])
        s.execute(insert(RegionSiteCapacity), [
            {"site_code": c, "service": svc, "daily_capacity": cap, "booked_today": region.booked.get((c, svc), 0)}
            for (c, svc), cap in region.capacity.items()])
        s.execute(insert(RegionTravel), [{"district_code": d, "site_code": c, "minutes": m}
                                         for (d, c), m in region.travel.items()])


def load_region(factory: sessionmaker[Session], *, seed_demo: bool = True) -> Region:
    """Read the region tables; write the demo region first when empty and ``seed_demo``.

    Raises:
        ValueError: no region and ``seed_demo`` is False.
    """
    ensure_ops_tables(factory)
    with factory() as s:
        districts = s.scalars(select(RegionDistrict)).all()
        if not districts:
            if not seed_demo:
                raise ValueError("no region tables: run `assistant ops region --demo`")
            write_region(factory, demo_region())
            return load_region(factory, seed_demo=False)
        sites = s.scalars(select(RegionSite)).all()
        caps = s.scalars(select(RegionSiteCapacity)).all()
        travel = s.scalars(select(RegionTravel)).all()
        return Region(
            {d.code: {"name_en": d.name_en, "name_zh": d.name_zh, "population": d.population} for d in districts},
            {x.code: {"name_en": x.name_en, "name_zh": x.name_zh, "kind": x.kind, "district": x.district_code,
                      "address_en": x.address_en, "address_zh": x.address_zh} for x in sites},
            {(c.site_code, c.service): c.daily_capacity for c in caps},
            {(c.site_code, c.service): c.booked_today for c in caps},
            {(t.district_code, t.site_code): t.minutes for t in travel},
        )


def district_demand(region: Region, policy: dict[str, Any] | None = None) -> dict[tuple[str, str], float]:
    """Expected patients per (district, class) today: population x daily rate per 1,000."""
    rates = (policy or kb_yaml("region_policy.yaml"))["daily_rate_per_1000"]
    return {(d, k): v["population"] / 1000 * float(rates[k]) for d, v in region.districts.items() for k in rates}


def _offering(region: Region, service: str) -> list[str]:
    return sorted(c for (c, svc), cap in region.capacity.items() if svc == service and cap > 0)


def _nearest(region: Region, district: str, sites: list[str]) -> str:
    return min(sites, key=lambda c: (region.travel.get((district, c), math.inf), c))


def _emergency_flows(region: Region, demand: dict[tuple[str, str], float]) -> dict[tuple[str, str, str, str], float]:
    eds = _offering(region, "ed")
    return {(d, "emergency", _nearest(region, d, eds), "ed"): n
            for (d, k), n in demand.items() if k == "emergency" and n > 0 and eds}


def nearest_site(region: Region, demand: dict[tuple[str, str], float] | None = None,
                 policy: dict[str, Any] | None = None) -> RegionResult:
    """Baseline: every patient to the nearest site offering the class's first-choice service."""
    policy = policy or kb_yaml("region_policy.yaml")
    demand = demand or district_demand(region, policy)
    flows = _emergency_flows(region, demand)
    unserved = 0.0
    for (d, k), n in demand.items():
        if k == "emergency" or n <= 0:
            continue
        service = policy["classes"][k][0]
        sites = _offering(region, service)
        if not sites:
            unserved += n
            continue
        site = _nearest(region, d, sites)
        flows[d, k, site, service] = flows.get((d, k, site, service), 0.0) + n
    return _result("nearest_site", region, flows, unserved)


def balance_region(region: Region, demand: dict[tuple[str, str], float] | None = None,
                   policy: dict[str, Any] | None = None) -> RegionResult:
    """Assign today's demand with the LP (see the module docstring).

    Args:
        region: from :func:`load_region` or :func:`demo_region`.
        demand: (district, class) -> patients; default :func:`district_demand`.
        policy: ``region_policy.yaml`` contents.

    Returns:
        :class:`RegionResult` (method ``lp``).

    Raises:
        RuntimeError: the solver failed.
    """
    policy = policy or kb_yaml("region_policy.yaml")
    demand = demand or district_demand(region, policy)
    m = LinearModel()
    extra = float(policy["not_first_choice_minutes"])
    limit = float(policy["max_travel_minutes"])
    cols: dict[tuple[str, str, str, str], int] = {}
    load: dict[tuple[str, str], list[int]] = {}
    unserved = []
    for (d, k), n in demand.items():
        if k == "emergency" or n <= 0:
            continue
        idx = []
        for rank, service in enumerate(policy["classes"][k]):
            for site in _offering(region, service):
                minutes = region.travel.get((d, site))
                if minutes is None or minutes > limit:
                    continue
                cols[d, k, site, service] = m.var(minutes + (extra if rank else 0.0))
                load.setdefault((site, service), []).append(cols[d, k, site, service])
                idx.append(cols[d, k, site, service])
        u = m.var(float(policy["unserved_minutes"]))
        unserved.append(u)
        m.row(idx + [u], [1.0] * (len(idx) + 1), lb=n, ub=n)
    for (site, service), idx in load.items():
        free = max(0, region.capacity[site, service] - region.booked.get((site, service), 0))
        m.row(idx, [1.0] * len(idx), ub=float(free))
    values, _, _ = m.solve(relax=True)
    flows = _emergency_flows(region, demand)
    flows.update({key: float(values[v]) for key, v in cols.items() if values[v] > 1e-6})
    return _result("lp", region, flows, float(sum(values[u] for u in unserved)))


def _result(method: str, region: Region, flows: dict[tuple[str, str, str, str], float],
            unserved: float) -> RegionResult:
    p50, p90 = {}, {}
    all_t, all_w = [], []
    for d in region.districts:
        t = [region.travel[d, site] for (dd, _, site, _), n in flows.items() if dd == d and n > 0]
        w = [n for (dd, _, _, _), n in flows.items() if dd == d and n > 0]
        if t:
            p50[d], p90[d] = _wpct(t, w, 50), _wpct(t, w, 90)
            all_t += t
            all_w += w
    occ = {}
    over = 0.0
    for (site, service), cap in region.capacity.items():
        if service == "ed" or cap <= 0:
            continue
        n = sum(v for (_, _, s, svc), v in flows.items() if s == site and svc == service) + region.booked.get(
            (site, service), 0)
        occ[f"{site}/{service}"] = n / cap
        over += max(0.0, n - cap)
    vals = np.array(list(occ.values())) if occ else np.zeros(1)
    return RegionResult(method, flows, unserved, p50, p90, _wpct(all_t, all_w, 90) if all_t else 0.0, occ,
                        float(vals.std()), float(vals.max()), over)


def _wpct(values: list[float], weights: list[float], q: float) -> float:
    """Weighted percentile (the smallest value whose cumulative weight reaches q %)."""
    order = np.argsort(values)
    v, w = np.asarray(values)[order], np.asarray(weights, dtype=float)[order]
    cum = np.cumsum(w) / w.sum()
    return float(v[np.searchsorted(cum, q / 100 - 1e-12)])


def community_option(region: Region, district: str, disposition: str, *, policy: dict[str, Any] | None = None
                     ) -> dict[str, str | float] | None:
    """A community health centre that can see a non-urgent patient from ``district`` today.

    Patient-facing and safe: returns only public facts about a site (name, address,
    travel minutes) and a sentence in English and Chinese; never for an emergency
    disposition (those go to the nearest emergency department). The district's own
    centre comes first when it has free capacity today, else the nearest centre with
    free capacity within the policy's maximum travel time.

    Args:
        region: from :func:`load_region`.
        district: district code (e.g. ``D2``).
        disposition: ``consultation_24`` | ``consultation`` | ``self_care`` (others: None).

    Returns:
        ``{"site", "name_en", "name_zh", "address_en", "address_zh", "minutes", "en", "zh"}`` or None.
    """
    if disposition not in NON_URGENT or district not in region.districts:
        return None
    policy = policy or kb_yaml("region_policy.yaml")
    if "primary" not in policy["classes"].get(disposition, []):
        return None
    free = [c for c in _offering(region, "primary")
            if region.capacity[c, "primary"] - region.booked.get((c, "primary"), 0) > 0
            and region.travel.get((district, c), math.inf) <= float(policy["max_travel_minutes"])]
    if not free:
        return None
    own = [c for c in free if region.sites[c]["district"] == district]
    site = own[0] if own else _nearest(region, district, free)
    s, minutes = region.sites[site], region.travel[district, site]
    where_en = "in your district" if own else "nearest to you with time today"
    where_zh = "您所在辖区的" if own else "离您最近且今天有号的"
    return {"site": site, "name_en": s["name_en"], "name_zh": s["name_zh"], "address_en": s["address_en"],
            "address_zh": s["address_zh"], "minutes": minutes,
            "en": f"The community health centre {where_en} ({s['name_en']}, about {minutes:.0f} minutes away) "
                  f"can see you today.",
            "zh": f"{where_zh}社区卫生服务中心（{s['name_zh']}，约{minutes:.0f}分钟路程）今天可以为您看诊。"}
