"""Notebooks and cells: reading a lab notebook, naming its cells, its parameters and its tasks.

Conventions the lab notebooks follow (and :mod:`labhelpers.nbtools` relies on):

- the first code cell is tagged ``parameters`` (``seed``, ``fast``, ``progress``, ``out_dir`` ...);
- notebooks run with cwd = ``notebooks/`` in a fresh kernel of *this* interpreter;
- cells whose source starts with ``# NBVAL_IGNORE_OUTPUT`` (timings) are not compared;
- self-check cells print a line ending in ``passed`` (:func:`passed_lines`); each follows the solution cell
  it checks (nbgrader test cells, :mod:`labhelpers.nbtools.nbgrader_meta`);
- solution code sits between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` lines
  (:mod:`labhelpers.nbtools.release`);
- a written answer is a markdown cell starting with ``**Answer.**`` whose metadata is nbgrader's
  manually graded solution cell (``{"nbgrader": {"solution": true, "grade": true, ...}}``);
  :func:`is_solution` is the one test of "the student writes this cell" (release and grade);
- a task starts at a markdown heading ``## Task <n>: ...``.

Cells are named as nbval names them: ``Cell k`` counts *code* cells from 0. Reports add the
execution count ``In [n]`` and the cell's first line, which is what a student sees (:func:`cell_label`,
:func:`problem`).
"""
from __future__ import annotations

import ast
import copy
import re
from pathlib import Path

import nbformat

from .. import validate

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
ANSWER = "**Answer.**"
LABS = {"lab3": "lab3_quantization_search.ipynb", "lab4": "lab4_architecture_search.ipynb"}
PACKAGE_DIR = Path(__file__).resolve().parent.parent  # labhelpers/
_TASK = re.compile(r"^\s*#{1,6}\s*(Task\s*\d+)", re.IGNORECASE | re.MULTILINE)
_PASSED = re.compile(r"\bpassed\W*$", re.IGNORECASE)


def repo_dir() -> Path:
    """The project root (the parent of the ``labhelpers`` package)."""
    return PACKAGE_DIR.parent


def lab_path(lab) -> Path:
    """Path of a lab notebook from ``3``, ``"3"`` or ``"lab3"``; FileNotFoundError if absent."""
    name = lab if str(lab).startswith("lab") else f"lab{lab}"
    validate.one_of("lab", name, tuple(LABS))
    path = repo_dir() / "notebooks" / LABS[name]
    if not path.exists():
        raise FileNotFoundError(f"{name}: notebook {path} does not exist (yet)")
    return path
def read(path) -> nbformat.NotebookNode:
    """Read a notebook file as JSON (nothing in it is imported or unpickled)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"notebook: no file {path}")
    try:
        nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
        if nb.get("nbformat") != 4:
            raise ValueError(f"it is nbformat version {nb.get('nbformat')!r}, not 4; open and save it in Jupyter")
        nbformat.validate(nb)
        return nb
    except Exception as exc:  # nbformat raises several unrelated types (and multi-line dumps) for broken files
        raise ValueError(f"notebook: {path} is not a valid .ipynb file ({_why_invalid(exc)})") from None


def _why_invalid(exc) -> str:
    """One short line: where the schema check failed, else the first line of the message."""
    at = "/".join(map(str, getattr(exc, "absolute_path", None) or []))
    if at:
        return f"{type(exc).__name__}: {at} does not match the nbformat 4 schema"
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first if len(first) <= 120 else first[:117] + '...'}"


def is_solution(cell) -> bool:
    """True for a cell the student writes: code with a ``### BEGIN SOLUTION`` block, or nbgrader ``solution: true``.

    Release stubs such cells and the grader never compares their source. Call it on the *reference*'s
    cell: a submission's own metadata never turns a locked cell into a solution.
    """
    nbgrader = cell.get("metadata", {}).get("nbgrader", {})
    return nbgrader.get("solution") is True or (cell.cell_type == "code" and BEGIN in cell.source)


def solution_blocks(source: str) -> list[tuple[int, int]]:
    """``(begin, end)`` line numbers (from 1) of each ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` block."""
    blocks, start = [], None
    for number, line in enumerate(source.splitlines(), 1):
        start = number if line.strip() == BEGIN else start
        if line.strip() == END:
            blocks.append((start, number))
    return blocks


def statement_spans(source: str) -> list[tuple[int, int, bool]]:
    """``(first, last, in_solution)`` for each top-level statement: its line numbers (from 1), and whether it
    overlaps a solution block. SyntaxError if the source is not Python."""
    blocks = solution_blocks(source)
    return [(node.lineno, node.end_lineno, any(node.lineno <= end and begin <= node.end_lineno for begin, end in blocks))
            for node in ast.parse(source).body]


def is_answer(cell) -> bool:
    """A written answer: a markdown solution cell (its reference text is replaced on release)."""
    return cell.cell_type == "markdown" and is_solution(cell)


def is_locked(cell) -> bool:
    """A markdown cell nbgrader locks (``locked: true``) and that is no answer: the student must not edit it."""
    return cell.cell_type == "markdown" and not is_solution(cell) \
        and cell.get("metadata", {}).get("nbgrader", {}).get("locked") is True


def code_indices(nb) -> list[int]:
    """Indices (in ``nb.cells``) of the code cells, in order."""
    return [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]


def cell_label(nb, index: int, execution_count=None) -> str:
    """``Cell k (In [n]) `first line``` for the cell at ``nb.cells[index]``."""
    cell = nb.cells[index]
    k = sum(c.cell_type == "code" for c in nb.cells[:index])
    count = execution_count if execution_count is not None else cell.get("execution_count")
    lines = [line for line in cell.source.splitlines() if line.strip()]
    first = lines[0].strip() if lines else ""
    first = first if len(first) <= 60 else first[:57] + "..."
    return f"Cell {k} (In [{count if count is not None else ' '}]) `{first}`"


def task_of_cells(nb) -> list[str]:
    """For each cell, the task it belongs to: ``Task <n>`` after that heading, else ``setup``."""
    task, out = "setup", []
    for cell in nb.cells:
        match = _TASK.search(cell.source) if cell.cell_type == "markdown" else None
        task = match.group(1).title().replace("  ", " ") if match else task
        out.append(task)
    return out


def parameters_index(nb, where="notebook") -> int:
    """Index of the cell tagged ``parameters``; ValueError if there is none (papermill only warns)."""
    for i, cell in enumerate(nb.cells):
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            if cell.cell_type != "code":
                raise ValueError(f"{where}: the cell tagged 'parameters' is {cell.cell_type}, it must be code")
            return i
    raise ValueError(f"{where}: no cell is tagged 'parameters'; tag the first code cell "
                     "(seed, fast, progress, out_dir ...) so papermill can override it")


def declared_parameters(nb, where="notebook") -> dict:
    """Names and default values assigned in the ``parameters`` cell (values as source text)."""
    source = nb.cells[parameters_index(nb, where)].source
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ValueError(f"{where}: the parameters cell is not valid Python ({exc.msg}, line {exc.lineno})") from None
    return {t.id: ast.get_source_segment(source, node.value) for node in tree.body
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target]) if isinstance(t, ast.Name)}


def output_checked(cell) -> bool:
    """False for cells nbval does not compare (``NBVAL_IGNORE_OUTPUT`` / ``NBVAL_SKIP``, as comment or tag)."""
    markers = {"NBVAL_IGNORE_OUTPUT", "NBVAL_SKIP", "PYTEST_VALIDATE_IGNORE_OUTPUT"}
    comments = {line.strip().lstrip("#").strip() for line in cell.source.splitlines() if line.strip().startswith("#")}
    tags = {t.upper().replace("-", "_") for t in cell.get("metadata", {}).get("tags", [])}
    return not (markers & (comments | tags))


def clear_outputs(nb) -> nbformat.NotebookNode:
    """A copy of ``nb`` with no outputs, execution counts or execution metadata."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            for key in ("execution", "papermill", "collapsed", "scrolled"):
                cell.metadata.pop(key, None)
    nb.metadata.pop("papermill", None)
    nb.metadata.pop("widgets", None)
    return nb



def passed_lines(cell) -> list[str]:
    """The lines of a cell's stdout that end in 'passed' (what a self-check prints)."""
    text = "".join("".join(o.get("text", "")) for o in cell.get("outputs", []) if o.get("name") == "stdout")
    return [line for line in text.splitlines() if _PASSED.search(line.strip())]


def problem(nb, index, message) -> dict:
    """One finding about ``nb.cells[index]``: ``{"cell": label, "index", "task", "message"}``."""
    return {"cell": cell_label(nb, index), "index": index, "task": task_of_cells(nb)[index], "message": message}


def check_targets(sources, out: Path, extra, force: bool) -> None:
    """Refuse to write over a source notebook (ever) or over existing output files (unless ``force``)."""
    targets = [out / p.name for p in sources]
    same = [t for t, p in zip(targets, sources) if t.exists() and t.resolve() == p.resolve()]
    if same:
        raise FileExistsError(f"--out {out}: {same[0]} is the notebook being read; choose another folder "
                              "(run-labs --in-place refreshes the committed notebooks)")
    validate.refuse_overwrite(f"--out {out}", [*targets, *extra], force)


def pair_cells(nb, reference) -> dict[int, int]:
    """Reference code-cell index -> submission cell index: by cell id (nbformat 4.5), else by position.

    A reference cell without a partner was deleted; a submission cell without one was added.
    """
    ref_code, sub_code = code_indices(reference), code_indices(nb)
    ids: dict[str, int] = {}
    for i in sub_code:
        ids.setdefault(nb.cells[i].get("id") or "", i)
    if all(reference.cells[r].get("id") for r in ref_code) and any(ids):
        return {r: ids[reference.cells[r].id] for r in ref_code if reference.cells[r].id in ids}
    return dict(zip(ref_code, sub_code)) if len(ref_code) == len(sub_code) else {}
