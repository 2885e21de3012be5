"""The goal record and the goal entries of a report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fmrecon_bench.config import BenchConfig

# judge(rows of the table, this goal's measurement or {}, cfg, machine) -> goal entries
Judge = Callable[[list[dict], dict, BenchConfig, dict], list[dict]]


@dataclass(frozen=True)
class Goal:
    """One performance goal: what it measures and how it is judged.

    ``measure`` runs in a fresh process (the task named ``key``, see
    :mod:`fmrecon_bench.tasks`) with the arguments ``arguments(cfg, device)``
    and returns a JSON-able dict, kept in the run's extras under ``key``;
    None for a goal judged on the table's rows alone. ``describe(cfg)`` is
    the progress line. ``judge`` turns the measurement (and the rows) into
    the goal's report entries. ``before_table``: measured before the table
    (on a machine that has not yet run anything heavy), else after it.
    """

    number: int
    key: str
    judge: Judge
    measure: Callable[..., dict] | None = None
    arguments: Callable[[BenchConfig, str], dict] | None = None
    describe: Callable[[BenchConfig], str] | None = None
    before_table: bool = False


def entry(gid: str, goal: str, figure, target: str, met, unit: str = "", note: str = "",
          detail: dict | None = None) -> dict:  # fmt: skip
    """One line of the goals table: ``figure`` against ``target``, ``met``
    True/False, or None when the target does not apply or nothing was measured."""
    return {"id": gid, "goal": goal, "figure": figure, "target": target, "met": met,
            "unit": unit, "note": note, "detail": detail or {}}  # fmt: skip


def missing(gid: str, goal: str, target: str, why: str, unit: str = "") -> dict:
    """A goal without a figure, and why."""
    return entry(gid, goal, None, target, None, unit, note=why)


def not_measured(gid: str, goal: str, target: str, measured: dict, unit: str = "") -> dict | None:
    """The entry of a goal whose measurement is absent, was skipped or failed;
    None when there is a measurement to judge."""
    if not measured:
        return missing(gid, goal, target, "not run", unit)
    if "skipped" in measured:
        return missing(gid, goal, target, f"skipped: {measured['skipped']}", unit)
    if "error" in measured:
        return missing(gid, goal, target, f"failed: {measured['error']}", unit)
    return None
