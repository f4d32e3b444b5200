"""Capacity allocation: match triage demand signals to clinic slots, beds and imaging.

Pure optimisation over in-memory inputs (no database access):

* :func:`allocate` - batch LP (bipartite b-matching, integral by total unimodularity)
  solved with HiGHS, with shadow prices of binding capacity constraints;
* :func:`greedy_allocate` - priority-order first-fit baseline;
* :func:`book_one` - live booking of one new signal;
* :mod:`assistant.allocation.checks` - feasibility / urgency-order checks and metrics.
"""

from assistant.allocation.booking import book_one
from assistant.allocation.checks import (
    capacity_violations,
    urgency_order_violations,
    urgency_weighted_wait,
)
from assistant.allocation.compat import ResourceTable
from assistant.allocation.greedy import greedy_allocate
from assistant.allocation.lp import allocate
from assistant.allocation.models import (
    DEFAULT_NEIGHBOURS,
    DEFAULT_SHARED,
    AllocationResult,
    AllocationStatus,
    AllocationWeights,
    Assignment,
    BindingConstraint,
    ObjectiveTerms,
    Resource,
    UnmetReason,
    UnmetSignal,
)

__all__ = [
    "DEFAULT_NEIGHBOURS",
    "DEFAULT_SHARED",
    "AllocationResult",
    "AllocationStatus",
    "AllocationWeights",
    "Assignment",
    "BindingConstraint",
    "ObjectiveTerms",
    "Resource",
    "ResourceTable",
    "UnmetReason",
    "UnmetSignal",
    "allocate",
    "book_one",
    "capacity_violations",
    "greedy_allocate",
    "urgency_order_violations",
    "urgency_weighted_wait",
]
