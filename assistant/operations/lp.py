"""A small row/column builder over HiGHS (``highspy``) for the operations models."""

from __future__ import annotations

from collections.abc import Sequence

import highspy
import numpy as np

INF = highspy.kHighsInf
_BANNER_DONE = False


def _new_highs() -> highspy.Highs:
    """A silent HiGHS instance. The first one of a process prints a licence banner on C
    stdout before options can be set; it is sent to /dev/null so ``--json`` stays clean."""
    global _BANNER_DONE
    if _BANNER_DONE:
        return highspy.Highs()
    import os
    import sys

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            h = highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    _BANNER_DONE = True
    return h


class LinearModel:
    """Minimise ``c @ x`` subject to row bounds; columns may be integer."""

    def __init__(self) -> None:
        self.cost: list[float] = []
        self.lb: list[float] = []
        self.ub: list[float] = []
        self.integer: list[bool] = []
        self.rows: list[tuple[float, float, list[int], list[float]]] = []

    def var(self, cost: float = 0.0, lb: float = 0.0, ub: float = INF, integer: bool = False) -> int:
        """Add a column; returns its index."""
        self.cost.append(cost)
        self.lb.append(lb)
        self.ub.append(ub)
        self.integer.append(integer)
        return len(self.cost) - 1

    def row(self, idx: Sequence[int], coef: Sequence[float], lb: float = -INF, ub: float = INF) -> int:
        """Add ``lb <= sum coef * x[idx] <= ub``; returns the row index."""
        self.rows.append((lb, ub, list(idx), list(coef)))
        return len(self.rows) - 1

    def solve(self, *, relax: bool = False, time_limit: float = 60.0, mip_gap: float = 0.01) -> tuple[np.ndarray, np.ndarray, float]:
        """Solve with HiGHS.

        Args:
            relax: ignore integrality (LP; row duals are then the shadow prices).
            time_limit: seconds.
            mip_gap: relative MIP optimality gap at which HiGHS stops.

        Returns:
            (column values, row duals (zeros for a MIP), objective).

        Raises:
            RuntimeError: not optimal (infeasible, unbounded, time limit without a solution).
        """
        h = _new_highs()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("log_to_console", False)
        h.setOptionValue("time_limit", float(time_limit))
        h.setOptionValue("mip_rel_gap", float(mip_gap))
        lp = highspy.HighsLp()
        n = len(self.cost)
        lp.num_col_ = n
        lp.num_row_ = len(self.rows)
        lp.col_cost_ = np.array(self.cost, dtype=float)
        lp.col_lower_ = np.array(self.lb, dtype=float)
        lp.col_upper_ = np.array(self.ub, dtype=float)
        lp.row_lower_ = np.array([r[0] for r in self.rows], dtype=float)
        lp.row_upper_ = np.array([r[1] for r in self.rows], dtype=float)
        # column-wise sparse matrix
        cols: list[list[tuple[int, float]]] = [[] for _ in range(n)]
        for i, (_, _, idx, coef) in enumerate(self.rows):
            for j, a in zip(idx, coef, strict=True):
                cols[j].append((i, a))
        start, index, value = [0], [], []
        for entries in cols:
            for i, a in entries:
                index.append(i)
                value.append(a)
            start.append(len(index))
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = np.array(start, dtype=np.int32)
        lp.a_matrix_.index_ = np.array(index, dtype=np.int32)
        lp.a_matrix_.value_ = np.array(value, dtype=float)
        if not relax and any(self.integer):
            lp.integrality_ = [highspy.HighsVarType.kInteger if b else highspy.HighsVarType.kContinuous
                               for b in self.integer]
        h.passModel(lp)
        h.run()
        status = h.getModelStatus()
        if status != highspy.HighsModelStatus.kOptimal:
            sol = h.getSolution()
            if not (status == highspy.HighsModelStatus.kTimeLimit and sol.value_valid):
                raise RuntimeError(f"HiGHS: {h.modelStatusToString(status)}")
        sol = h.getSolution()
        duals = np.array(sol.row_dual, dtype=float) if sol.dual_valid else np.zeros(len(self.rows))
        return np.array(sol.col_value, dtype=float), duals, float(h.getInfo().objective_function_value)
