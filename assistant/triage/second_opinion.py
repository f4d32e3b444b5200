"""Optional LLM second opinion for a capable model (``settings.llm_capable``).

Through schema-constrained output the model may (a) move one of the candidate
departments to the top and (b) say the case looks more urgent. It can never lower the
disposition, never remove a red flag and never move EMERG off the top of an emergency.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import BaseModel, Field, create_model

from assistant.domain import DepartmentScore, Disposition

log = logging.getLogger(__name__)
PROMPT = "second_opinion"


def second_opinion(backend: Any, text: str, departments: list[DepartmentScore],
                   disposition: Disposition, catalog: dict[str, Any]) -> tuple[list[DepartmentScore], Disposition]:
    """Return possibly re-ranked departments and a possibly *raised* disposition."""
    from assistant.prompts import load_prompt

    codes = [d.code for d in departments]
    Choice = create_model(  # noqa: N806 - a schema class
        "SecondOpinion",
        department=(Literal[tuple(codes)], ...),  # type: ignore[valid-type]
        more_urgent=(bool, ...),
        reason=(str, Field(max_length=120)),
        __base__=BaseModel,
    )
    prompt = load_prompt(PROMPT)
    options = "\n".join(f"- {c}: {catalog[c].name_en}" for c in codes)
    try:
        out = backend.generate(
            [{"role": "system", "content": prompt.render("system")},
             {"role": "user", "content": prompt.render("user", complaint=text[:1500], options=options,
                                                       disposition=disposition.value)}],
            schema=Choice, max_new_tokens=96,
        )
    except Exception as exc:  # noqa: BLE001 - the rules' answer stands
        log.info("second opinion failed: %s", type(exc).__name__)
        return departments, disposition
    if not disposition.is_emergency:
        departments = sorted(departments, key=lambda d: d.code != out.department)
    if out.more_urgent and not disposition.is_emergency and disposition.rank > Disposition.CONSULTATION_24.rank:
        disposition = Disposition.CONSULTATION_24
    return departments, disposition
