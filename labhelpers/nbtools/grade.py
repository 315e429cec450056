"""The grader: five checks of an executed student notebook against the executed reference, and the report.

The checks (:data:`CHECKS`): it ran top to bottom (:func:`check_order`), no cell errored
(:func:`check_errors`), the self-checks passed (:func:`check_self_checks`, and again in the re-run),
the outputs reproduce (:func:`labhelpers.nbtools.reproduce.check_reproduces`), and the locked cells are
unchanged (:func:`check_locked`). Cells are paired by cell id (:func:`labhelpers.nbtools.cells.pair_cells`).
Everything that decides the verdict comes from the reference notebook.
"""
from __future__ import annotations

from pathlib import Path

from ..numerics import PLATFORM_MIME, fresh_platform_info, platform_line
from .cells import (BEGIN, LABS, code_indices, is_locked, is_solution, lab_path, pair_cells, passed_lines, problem, read,
                    task_of_cells)
from .compare import shorten
from .release import STUB, strip_solutions
from .reproduce import check_reproduces
from .sandbox import isolation_available


def check_order(nb) -> list[dict]:
    """Non-empty code cells must carry execution counts 1, 2, 3 ... in notebook order (a fresh top-to-bottom run)."""
    problems, expected = [], 1
    for index in code_indices(nb):
        cell = nb.cells[index]
        if not cell.source.strip():
            continue
        count = cell.get("execution_count")
        if count is None:
            problems.append(problem(nb, index, "was not run: use Restart Kernel and Run All Cells"))
            continue
        if count != expected:
            problems.append(problem(nb, index, f"ran out of order: In [{count}] where In [{expected}] was "
                                                "expected; use Restart Kernel and Run All Cells"))
        expected += 1
    return problems


def check_errors(nb) -> list[dict]:
    """Cells whose stored outputs hold an error."""
    return [problem(nb, i, f"raised {out.get('ename')}: {out.get('evalue')}")
            for i in code_indices(nb) for out in nb.cells[i].get("outputs", []) if out.get("output_type") == "error"]


def self_check_sources(reference) -> list[str]:
    """Sources of the reference's self-check cells: code cells whose stored output prints '... passed'."""
    return [cell.source for cell in reference.cells if cell.cell_type == "code" and passed_lines(cell)]


def check_self_checks(nb, reference) -> list[dict]:
    """Every self-check cell of the reference is in ``nb`` (its lines outside the solution unchanged, in order)
    and printed as many 'passed' lines as in the reference."""
    problems, used = [], set()
    for ref_cell in (c for c in reference.cells if c.cell_type == "code" and passed_lines(c)):
        wanted = _released_lines(ref_cell.source)
        same = _in_order if is_solution(ref_cell) else (lambda a, b: a == b)  # a cell without a solution: as released
        index = next((i for i in code_indices(nb) if i not in used and same(wanted, _released_lines(nb.cells[i].source))), None)
        if index is None:
            problems.append({"cell": f"self-check `{shorten(wanted[-1] if wanted else '', 50)}`", "index": None,
                             "task": None, "message": "is missing or was edited (self-check lines must stay as released)"})
            continue
        used.add(index)
        if len(passed_lines(nb.cells[index])) < len(passed_lines(ref_cell)):
            problems.append(problem(nb, index, "did not print its 'passed' line(s)"))
    return problems


def _released_lines(source: str) -> list[str]:
    """A cell's non-blank lines outside solution blocks (what the student notebook shows, minus the stub)."""
    stripped = strip_solutions(source) if BEGIN in source else source
    return [line.rstrip() for line in stripped.splitlines() if line.strip() and line.strip() not in (STUB, "# YOUR CODE HERE")]


def _in_order(wanted: list[str], lines: list[str]) -> bool:
    remaining = iter(lines)
    return all(line in remaining for line in wanted)


def _normalized(source: str) -> list[str]:
    return [line.rstrip() for line in source.strip().splitlines()]


def check_locked(nb, reference, pairs: dict[int, int]) -> list[dict]:
    """Reference code cells must all be present; those that are no solution (:func:`is_solution`) unchanged,
    and so must the reference's locked markdown cells (:func:`is_locked`, paired by cell id).

    Whether a cell is a solution is read from the reference, never from the submission. Self-check cells
    are left to :func:`check_self_checks`; answer cells are the student's and never compared. The report
    names the submission's cell and never quotes the reference's source.
    """
    problems = []
    for r in code_indices(reference):
        ref_cell = reference.cells[r]
        if r not in pairs:
            problems.append({"cell": f"reference cell {code_indices(reference).index(r)}", "index": None, "task": None,
                             "message": "is missing from the submission (released cells must not be deleted)"})
        elif not is_solution(ref_cell) and not passed_lines(ref_cell) \
                and _normalized(nb.cells[pairs[r]].source) != _normalized(ref_cell.source):
            problems.append(problem(nb, pairs[r], "was edited, but it is a locked cell: restore it as released"))
    return problems + _check_locked_markdown(nb, reference)


def _check_locked_markdown(nb, reference) -> list[dict]:
    by_id = {cell.get("id"): i for i, cell in enumerate(nb.cells) if cell.get("id")}
    problems = []
    for ref_cell in (c for c in reference.cells if is_locked(c)):
        index = by_id.get(ref_cell.get("id"))
        if index is None:
            problems.append({"cell": f"markdown cell {ref_cell.get('id')}", "index": None, "task": None,
                             "message": "is missing from the submission (released cells must not be deleted)"})
        elif _normalized(nb.cells[index].source) != _normalized(ref_cell.source):
            problems.append(problem(nb, index, "was edited, but it is a locked (question) cell: restore it as released"))
    return problems


CHECKS = ("ran top to bottom", "no cell errored", "self-checks passed", "outputs reproduce", "locked cells unchanged")
MAX_NOTEBOOK_BYTES = 50_000_000


def grade(submission, lab=None, reference=None, timeout_per_cell=300, progress=False, isolate=True) -> dict:
    """Grade an executed notebook: the checks of ``CHECKS``; ``report["passed"]`` only if all pass.

    ``reference``: the executed lab notebook (default: from ``lab``, else guessed from the submission's
    file name). Everything that decides the verdict comes from the reference: its cells are paired
    with the submission's (:func:`pair_cells`), its locked cells must be unchanged (:func:`check_locked`),
    its self-checks run again after the student's cells (:func:`labhelpers.nbtools.reproduce.graded_notebook`),
    and its ``NBVAL_IGNORE_OUTPUT`` marks and ``# tolerance:`` lines say what is compared and how. The
    submission is read as JSON; its code runs only in a fresh kernel, in a sandbox copy of the project,
    jailed with bubblewrap when ``isolate`` (see :func:`labhelpers.nbtools.sandbox.jailed`).
    """
    submission = Path(submission)
    if submission.is_file() and submission.stat().st_size > MAX_NOTEBOOK_BYTES:
        raise ValueError(f"submission: {submission} is {submission.stat().st_size / 1e6:.0f} MB; "
                         f"at most {MAX_NOTEBOOK_BYTES / 1e6:g} MB are graded (clear large outputs)")
    if isolate and not isolation_available():
        raise ValueError("grade: bubblewrap is needed to run a submission jailed: apt-get install bubblewrap "
                         "(or pass --no-isolation to run it unjailed, only for work you trust)")
    nb = read(submission)
    ref_path = Path(reference) if reference else lab_path(lab or _guess_lab(submission))
    ref = read(ref_path)
    if not self_check_sources(ref):
        raise ValueError(f"reference: {ref_path} has no executed self-check cells (a line ending in 'passed')")
    pairs = pair_cells(nb, ref)
    static_checks = check_self_checks(nb, ref)
    reproduce, rerun_checks = check_reproduces(nb, ref_path.parent, timeout_per_cell, progress, ref, jail=isolate,
                                               pairs=pairs)
    flagged = {p["index"] for p in static_checks}
    found = {
        CHECKS[0]: check_order(nb),
        CHECKS[1]: check_errors(nb),
        CHECKS[2]: static_checks + [p for p in rerun_checks if p["index"] not in flagged],
        CHECKS[3]: reproduce,
        CHECKS[4]: check_locked(nb, ref, pairs),
    }
    checks = [{"check": name, "passed": not problems, "problems": problems} for name, problems in found.items()]
    return {"submission": str(submission), "reference": str(ref_path), "passed": all(c["passed"] for c in checks),
            "checks": checks, "tasks": _task_summary(nb, checks),
            "platform": {"re-run": fresh_platform_info(), "isolated": bool(isolate),
                         "submission": submission_platform(nb)}}


def submission_platform(nb) -> str:
    """Where the submission's outputs were computed, as one line: the notebook's ``labhelpers.platform``
    metadata, else the last output of :func:`labhelpers.numerics.show_platform`; "not recorded" otherwise.
    It is the submission's own claim, shown to read a tolerance failure, never used to pass one."""
    recorded = nb.metadata.get("labhelpers", {}).get("platform")
    shown = [o["data"][PLATFORM_MIME] for c in nb.cells if c.cell_type == "code"
             for o in c.get("outputs", []) if PLATFORM_MIME in o.get("data", {})]
    found = recorded or (shown[-1] if shown else None)
    if not found:
        return "not recorded"
    text = platform_line(found) if isinstance(found, dict) else str(found)
    return text if len(text) <= 300 else text[:297] + "..."


def _guess_lab(path: Path) -> str:
    for lab in LABS:
        if lab in path.name.lower().replace("_", "").replace("-", ""):
            return lab
    raise ValueError(f"lab: cannot tell the lab from the file name {path.name!r}; pass --lab 3 or --lab 4")


def _task_summary(nb, checks) -> list[dict]:
    tasks = list(dict.fromkeys(task_of_cells(nb)))
    summary = {t: {"task": t, "passed": True, "problems": []} for t in tasks}
    for check in checks:
        for p in check["problems"]:
            entry = summary.get(p["task"]) or summary.setdefault("other", {"task": "other", "passed": True, "problems": []})
            entry["passed"] = False
            entry["problems"].append(f"{check['check']}: {p['cell']} {p['message']}")
    return list(summary.values())


def format_report(report: dict) -> str:
    """The per-check and per-task report as plain text."""
    lines = [f"Grading {report['submission']} (reference {report['reference']})", ""]
    for check in report["checks"]:
        lines.append(f"  [{'PASS' if check['passed'] else 'FAIL'}] {check['check']}")
        lines += [f"         {p['cell']} {p['message']}" for p in check["problems"]]
    lines += ["", "Per task:"]
    for task in report["tasks"]:
        lines.append(f"  [{'PASS' if task['passed'] else 'FAIL'}] {task['task']}")
        lines += [f"         {p}" for p in task["problems"]]
    platform = report.get("platform", {})
    if platform:
        lines += ["", f"Re-run on: {platform_line(platform['re-run'])}; {'jailed (bubblewrap)' if platform['isolated'] else 'NOT isolated'}",
                  f"Submission's platform: {platform['submission']}"]
    lines += ["", f"Verdict: {'PASS' if report['passed'] else 'FAIL'}"]
    return "\n".join(lines)
