"""Headless runs, reproducible outputs, grading and the student release of the lab notebooks.

Conventions the lab notebooks follow (and this module relies on):

- the first code cell is tagged ``parameters`` (``seed``, ``fast``, ``progress``, ``out_dir`` ...);
- notebooks run with cwd = ``notebooks/`` in a fresh kernel of *this* interpreter;
- cells whose source starts with ``# NBVAL_IGNORE_OUTPUT`` (timings) are not compared;
- self-check cells print a line ending in ``passed``;
- solution code sits between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` lines;
- a task starts at a markdown heading ``## Task <n>: ...``.

Cells are named as nbval names them: ``Cell k`` counts *code* cells from 0. Reports add the
execution count ``In [n]`` and the cell's first line, which is what a student sees.
"""
from __future__ import annotations

import ast
import contextlib
import copy
import datetime
import json
import logging
import math
import os
import re
import shutil
import tempfile
from pathlib import Path

import nbformat

from . import validate

LABS = {"lab3": "lab3_quantization_search.ipynb", "lab4": "lab4_architecture_search.ipynb"}
SANITIZE_FILE = Path(__file__).with_name("nbval_sanitize.cfg")
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = 'raise NotImplementedError("replace this line with your solution")'
# what nbval (without --nbdime) leaves out of the comparison; PNG bytes depend on fonts and versions
SKIP_COMPARE = ("metadata", "traceback", "prompt_number", "output_type", "name", "execution_count",
                "application/vnd.jupyter.widget-view+json", "image/png", "image/jpeg")
_TASK = re.compile(r"^\s*#{1,6}\s*(Task\s*\d+)", re.IGNORECASE | re.MULTILINE)
_PASSED = re.compile(r"\bpassed\W*$", re.IGNORECASE)


# ---------------------------------------------------------------- notebooks and cells

def repo_dir() -> Path:
    """The project root (the parent of the ``labhelpers`` package)."""
    return Path(__file__).resolve().parent.parent


def lab_path(lab) -> Path:
    """Path of a lab notebook from ``3``, ``"3"`` or ``"lab3"``; FileNotFoundError if absent."""
    name = lab if str(lab).startswith("lab") else f"lab{lab}"
    if name not in LABS:
        raise ValueError(f"lab: unknown lab {lab!r}; allowed: {', '.join(LABS)} (or 3, 4)")
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


# ---------------------------------------------------------------- execution

def _kernel_manager_class():
    """A kernel manager that always starts this interpreter, whatever kernelspec a notebook names."""
    from jupyter_client.manager import AsyncKernelManager
    from nbval.kernel import CURRENT_ENV_KERNEL_NAME, NbvalKernelspecManager

    class ThisInterpreterKernel(AsyncKernelManager):
        def __init__(self, **kwargs):
            kwargs.update(kernel_name=CURRENT_ENV_KERNEL_NAME, kernel_spec_manager=NbvalKernelspecManager())
            if os.name == "posix":  # local sockets: no unencrypted-TCP warning, nothing on the network
                kwargs.setdefault("transport", "ipc")
                kwargs.setdefault("ip", _ipc_path())  # absolute: the kernel's cwd differs from ours
            super().__init__(**kwargs)

    return ThisInterpreterKernel


def _ipc_path() -> str:
    import uuid

    from jupyter_core.paths import jupyter_runtime_dir

    Path(jupyter_runtime_dir()).mkdir(parents=True, exist_ok=True)
    return str(Path(jupyter_runtime_dir()) / f"labhelpers-{uuid.uuid4().hex[:12]}-ipc")


def execute(nb, cwd, timeout_per_cell=None, progress=False, desc="cells"):
    """Run a cleared copy of ``nb`` top to bottom in a fresh kernel (cwd ``cwd``), stopping at the first error.

    Returns ``(executed_nb, failure)``; ``failure`` is None or ``{"index", "label", "message"}``.
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError
    from tqdm.auto import tqdm

    nb = clear_outputs(nb)
    timeout_per_cell = None if timeout_per_cell is None else max(1, math.ceil(timeout_per_cell))  # nbclient: int s
    client = NotebookClient(nb, timeout=timeout_per_cell, kernel_manager_class=_kernel_manager_class(),
                            record_timing=False, resources={"metadata": {"path": str(cwd)}})
    failure = None
    with client.setup_kernel(cleanup_kc=True):
        for index in tqdm(code_indices(nb), desc=desc, unit="cell", disable=not progress, leave=False):
            try:
                client.execute_cell(nb.cells[index], index)
            except CellTimeoutError:
                failure = _failure(nb, index, f"exceeded the {timeout_per_cell} s time limit per cell")
            except CellExecutionError as exc:
                failure = _failure(nb, index, f"raised {exc.ename}: {exc.evalue}")
            if failure:
                break
    return nb, failure


def _failure(nb, index, message) -> dict:
    return {"index": index, "label": cell_label(nb, index), "message": message}


@contextlib.contextmanager
def sandbox(notebook_dir):
    """A temporary copy of the project around ``notebook_dir``, for runs that must not write into it.

    Folders and files next to ``notebook_dir`` (checkpoints, configs ...) and its non-notebook files
    are copied, so a run that writes them changes only the copy; ``data/`` (large, read-only input)
    is linked; ``imgs/`` and ``runs/`` start empty. Yields the cwd to execute in.
    """
    notebook_dir = Path(notebook_dir).resolve()
    with tempfile.TemporaryDirectory(prefix="labhelpers-") as tmp:
        root, cwd = Path(tmp), Path(tmp) / notebook_dir.name
        cwd.mkdir()
        _copy_entries(notebook_dir.parent, root, skip={notebook_dir.name, "imgs", "runs"})
        _copy_entries(notebook_dir, cwd, skip={"imgs", "runs"}, skip_suffix=".ipynb")
        for name in ("imgs", "runs"):
            (root / name).mkdir()
        yield cwd


def _copy_entries(source: Path, target: Path, skip, skip_suffix=None) -> None:
    for entry in source.iterdir():
        if entry.name.startswith(".") or entry.name in skip or (skip_suffix and entry.suffix == skip_suffix):
            continue
        if entry.name == "data":
            (target / entry.name).symlink_to(entry, target_is_directory=True)
        elif entry.is_dir():
            shutil.copytree(entry, target / entry.name, symlinks=True,
                            ignore=shutil.ignore_patterns(".*", "__pycache__", "*.egg-info"))
        else:
            shutil.copy2(entry, target / entry.name)


# ---------------------------------------------------------------- comparing outputs (as nbval does)

def sanitize_patterns(path=SANITIZE_FILE) -> list[tuple[str, str]]:
    """The ``regex:``/``replace:`` pairs of an nbval sanitize file (the one nbval uses in the tests)."""
    from nbval.plugin import get_sanitize_patterns

    return get_sanitize_patterns(Path(path).read_text())


def comparable(outputs, patterns) -> dict[str, list]:
    """nbval's view of a cell's outputs: streams merged, skipped keys dropped, strings sanitized."""
    from nbval.plugin import coalesce_streams

    flat: dict[str, list] = {}
    for out in coalesce_streams(copy.deepcopy(list(outputs))):
        items = dict(out.get("data", {})) if "data" in out else {}
        items.update({k: v for k, v in out.items() if k != "data"})
        if out.get("output_type") == "stream":
            items[out.get("name", "stream")] = items.pop("text", "")
        for key, value in items.items():
            if key not in SKIP_COMPARE:
                flat.setdefault(key, []).append(_sanitize(value, patterns))
    return flat


def _sanitize(value, patterns):
    if isinstance(value, list):  # nbformat may keep multi-line strings as lists
        value = "".join(value)
    if not isinstance(value, str):
        return value
    for regex, replace in patterns:
        value = re.sub(regex, replace, value)
    return value


def first_difference(stored: dict, rerun: dict) -> str | None:
    """None if equal, else a one-line description of the first difference."""
    for key in sorted(set(stored) | set(rerun)):
        old, new = stored.get(key, []), rerun.get(key, [])
        if old != new:
            return f"{key}: stored {_first_diff_line(old, new)}"
    return None


def _first_diff_line(old: list, new: list) -> str:
    old_lines = "\n".join(map(str, old)).splitlines() or [""]
    new_lines = "\n".join(map(str, new)).splitlines() or [""]
    for a, b in zip(old_lines + [""] * len(new_lines), new_lines + [""] * len(old_lines)):
        if a != b:
            return f"{_short(a)!r}, re-run gives {_short(b)!r}"
    return "differs"


def _short(text: str, n=70) -> str:
    return text if len(text) <= n else text[:n - 3] + "..."


def output_problems(nb) -> list[str]:
    """Debris that must not be stored: progress bars, figure/object reprs, memory addresses, widgets."""
    problems = []
    for index in code_indices(nb):
        for out in nb.cells[index].get("outputs", []):
            problem = _output_problem(out)
            if problem:
                problems.append(f"{cell_label(nb, index)}: {problem}")
    return problems


def _output_problem(out) -> str | None:
    data = out.get("data", {})
    text = out.get("text", "") if out.get("output_type") == "stream" else data.get("text/plain", "")
    text = "".join(text) if isinstance(text, list) else text
    if "application/vnd.jupyter.widget-view+json" in data:
        return "a widget (tqdm.auto progress bar?)"
    if "\r" in text or re.search(r"\d+%\|", text) or re.search(r"\d(it|s)/s\]", text):
        return "progress-bar output"
    if re.search(r"\bat 0x[0-9a-fA-F]{4,}", text):
        return "a memory address in the output"
    if not any(k.startswith("image/") for k in data) and re.search(r"<(Figure size|matplotlib\.)", text):
        return "a figure/artist repr without the figure (end the plot line with ';')"
    return None


# ---------------------------------------------------------------- batch runs (papermill)

def parse_value(text: str):
    """A ``-p name value`` value: Python/JSON literal (int, float, bool, None, list, str) or a plain string."""
    lowered = {"true": True, "false": False, "none": None, "null": None}
    if text.lower() in lowered:
        return lowered[text.lower()]
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def read_params_file(path) -> dict:
    """Parameters from a YAML file: ``name: value`` for all labs, optionally ``lab3: {...}`` sections."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"params file: no file {path}")
    try:
        params = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise ValueError(f"params file: {path} is not valid YAML{line} ({getattr(exc, 'problem', None) or exc}); "
                         "write 'name: value' lines") from None
    if not isinstance(params, dict):
        raise ValueError(f"params file: {path} must hold a mapping 'name: value', got {type(params).__name__}")
    _check_sections(params, f"params file {path}")
    return params


def _check_sections(params: dict, where: str) -> None:
    """A ``lab3:`` / ``lab4:`` section must be a mapping of parameter names to values."""
    for lab in LABS:
        if lab in params and not isinstance(params[lab] or {}, dict):
            raise ValueError(f"{where}: section {lab!r} must be a mapping 'name: value', got {params[lab]!r}")


def lab_parameters(lab: str, declared: dict, params: dict) -> dict:
    """The overrides that apply to ``lab``: shared ones it declares, then its own ``lab3:`` section."""
    own = params.get(lab, {}) or {}
    shared = {k: v for k, v in params.items() if k not in LABS and k in declared}
    unknown = sorted(set(own) - set(declared))
    if unknown:
        raise ValueError(f"parameter {unknown[0]!r} for {lab}: not declared in its parameters cell; "
                         f"allowed: {', '.join(declared)}")
    return {**shared, **own}


def new_run_dir(root="runs") -> Path:
    """``runs/<YYYYmmdd-HHMMSS>`` (with a suffix if it exists), created."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path, n = Path(root) / stamp, 1
    while path.exists():
        path, n = Path(root) / f"{stamp}-{n}", n + 1
    path.mkdir(parents=True)
    return path


def run_notebook(path, out_dir, parameters=None, progress=True, timeout_per_cell=None) -> dict:
    """Execute one notebook with papermill (cwd = its folder, fresh kernel) into ``out_dir``.

    Figures go to ``out_dir/imgs`` through the notebook's ``out_dir`` parameter. Returns
    ``{"notebook", "output", "parameters", "error"}``; ``error`` names the cell that failed.
    """
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    path, out_dir = Path(path).resolve(), Path(out_dir).resolve()
    nb = read(path)
    declared = declared_parameters(nb, path.name)
    params = dict(parameters or {})
    if "out_dir" in declared:
        params.setdefault("out_dir", str(out_dir / "imgs"))
        (out_dir / "imgs").mkdir(parents=True, exist_ok=True)
    output = out_dir / path.name
    result = {"notebook": str(path), "output": str(output), "parameters": params, "error": None}
    try:
        with _quiet("papermill"):  # its regex parameter parser warns on lines ast (above) reads fine
            papermill.execute_notebook(path, output, parameters=params, cwd=path.parent,
                                       kernel_manager_class=_kernel_manager_class(), execution_timeout=timeout_per_cell,
                                       progress_bar={"desc": path.stem} if progress else False)
    except papermill.PapermillExecutionError as exc:
        index = exc.cell_index - (1 if params and exc.cell_index > parameters_index(nb) else 0)
        result["error"] = f"{path.name}: {cell_label(nb, index, exc.exec_count)} raised {exc.ename}: {exc.evalue}"
    except (CellTimeoutError, DeadKernelError) as exc:
        why = f"exceeded the {timeout_per_cell:g} s time limit" if isinstance(exc, CellTimeoutError) else "killed the kernel"
        result["error"] = f"{path.name}: {_running_cell(output, nb, params)} {why}"
    return result


@contextlib.contextmanager
def _quiet(logger_name: str):
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _running_cell(output: Path, nb, params) -> str:
    """Label of the last cell papermill started, from its last save of ``output``."""
    try:
        cells = read(output).cells
    except (FileNotFoundError, ValueError):
        return "a cell"
    started = [i for i, c in enumerate(cells) if c.get("metadata", {}).get("papermill", {}).get("start_time")]
    if not started:
        return "a cell"
    index = started[-1] - (1 if params and started[-1] > parameters_index(nb) else 0)
    return cell_label(nb, index)


def run_labs(labs=None, parameters=None, out=None, progress=True, timeout_per_cell=None, notebooks=None,
             force=False) -> tuple[Path, list]:
    """Execute the labs headless into a run folder; returns ``(run_dir, results)``.

    ``labs``: names from ``LABS`` (default all); ``notebooks``: explicit paths instead (tests).
    ``parameters``: overrides (``name: value`` for every lab that declares the name, or a
    ``lab3: {...}`` section). Every notebook is checked (parameters tag, names) before any runs.
    An ``out`` folder holding any file the run would write (notebooks, run.json, imgs/) is refused
    unless ``force``; the source notebooks themselves are never overwritten (use :func:`refresh`).
    """
    paths = [Path(p) for p in notebooks] if notebooks else [lab_path(lab) for lab in (labs or LABS)]
    params = dict(parameters or {})
    _check_sections(params, "parameters")
    plans = [(p, _plan(p, params)) for p in paths]
    _check_all_used(params, plans)
    if out:
        out = validate.output_dir("--out", out)
        imgs = [f for f in (out / "imgs").glob("*") if f.is_file()] if (out / "imgs").is_dir() else []
        _check_targets(paths, out, [*imgs, out / "run.json"], force)
    run_dir = Path(out) if out else new_run_dir(repo_dir() / "runs")
    run_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for i, (path, own) in enumerate(plans, 1):
        print(f"[{i}/{len(plans)}] {path.name} -> {run_dir / path.name}", flush=True)
        results.append(run_notebook(path, run_dir, own, progress=progress, timeout_per_cell=timeout_per_cell))
    (run_dir / "run.json").write_text(json.dumps(results, indent=2, default=str))
    return run_dir, results


def _check_targets(sources, out: Path, extra, force: bool) -> None:
    """Refuse to write over a source notebook (ever) or over existing output files (unless ``force``)."""
    targets = [out / p.name for p in sources]
    same = [t for t, p in zip(targets, sources) if t.exists() and t.resolve() == p.resolve()]
    if same:
        raise FileExistsError(f"--out {out}: {same[0]} is the notebook being read; choose another folder "
                              "(run-labs --in-place refreshes the committed notebooks)")
    validate.refuse_overwrite(f"--out {out}", [*targets, *extra], force)


def _plan(path: Path, params: dict) -> dict:
    nb = read(path)
    lab = next((k for k, v in LABS.items() if v == path.name), path.stem)
    return lab_parameters(lab, declared_parameters(nb, path.name), params)


def _check_all_used(params: dict, plans) -> None:
    used = {k for _, own in plans for k in own}
    unused = sorted(k for k in params if k not in LABS and k not in used)
    if unused:
        names = ", ".join(p.name for p, _ in plans)
        raise ValueError(f"parameter {unused[0]!r}: no notebook declares it ({names}); "
                         "see each notebook's cell tagged 'parameters'")


def refresh(path, timeout_per_cell=None, progress=True) -> dict | None:
    """Re-execute a notebook in place with its default parameters (how the committed outputs are made).

    The notebook is only rewritten when every cell ran; returns the failure otherwise.
    """
    path = Path(path).resolve()
    nb = read(path)
    parameters_index(nb, path.name)
    executed, failure = execute(nb, path.parent, timeout_per_cell, progress=progress, desc=path.stem)
    if failure is None:
        nbformat.write(executed, path)
    return failure


# ---------------------------------------------------------------- grading

def check_order(nb) -> list[dict]:
    """Non-empty code cells must carry execution counts 1, 2, 3 ... in notebook order (a fresh top-to-bottom run)."""
    problems, expected = [], 1
    for index in code_indices(nb):
        cell = nb.cells[index]
        if not cell.source.strip():
            continue
        count = cell.get("execution_count")
        if count is None:
            problems.append(_problem(nb, index, "was not run: use Restart Kernel and Run All Cells"))
            continue
        if count != expected:
            problems.append(_problem(nb, index, f"ran out of order: In [{count}] where In [{expected}] was "
                                                "expected; use Restart Kernel and Run All Cells"))
        expected += 1
    return problems


def check_errors(nb) -> list[dict]:
    """Cells whose stored outputs hold an error."""
    return [_problem(nb, i, f"raised {out.get('ename')}: {out.get('evalue')}")
            for i in code_indices(nb) for out in nb.cells[i].get("outputs", []) if out.get("output_type") == "error"]


def self_check_sources(reference) -> list[str]:
    """Sources of the reference's self-check cells: code cells whose stored output prints '... passed'."""
    return [cell.source for cell in reference.cells if cell.cell_type == "code" and _passed_lines(cell)]


def check_self_checks(nb, reference) -> list[dict]:
    """Every self-check cell of the reference is in ``nb`` (its lines outside the solution unchanged, in order)
    and printed as many 'passed' lines as in the reference."""
    problems, used = [], set()
    for ref_cell in (c for c in reference.cells if c.cell_type == "code" and _passed_lines(c)):
        wanted = _released_lines(ref_cell.source)
        index = next((i for i in code_indices(nb) if i not in used and _in_order(wanted, _released_lines(nb.cells[i].source))), None)
        if index is None:
            problems.append({"cell": f"self-check `{_short(wanted[-1] if wanted else '', 50)}`", "index": None,
                             "task": None, "message": "is missing or was edited (self-check lines must stay as released)"})
            continue
        used.add(index)
        if len(_passed_lines(nb.cells[index])) < len(_passed_lines(ref_cell)):
            problems.append(_problem(nb, index, "did not print its 'passed' line(s)"))
    return problems


def _released_lines(source: str) -> list[str]:
    """A cell's non-blank lines outside solution blocks (what the student notebook shows, minus the stub)."""
    stripped = strip_solutions(source) if BEGIN in source else source
    return [line.rstrip() for line in stripped.splitlines() if line.strip() and line.strip() not in (STUB, "# YOUR CODE HERE")]


def _in_order(wanted: list[str], lines: list[str]) -> bool:
    remaining = iter(lines)
    return all(line in remaining for line in wanted)


def _passed_lines(cell) -> list[str]:
    text = "".join("".join(o.get("text", "")) for o in cell.get("outputs", []) if o.get("name") == "stdout")
    return [line for line in text.splitlines() if _PASSED.search(line.strip())]


def check_reproduces(nb, notebook_dir, timeout_per_cell=None, progress=False) -> list[dict]:
    """Re-execute ``nb`` in a fresh kernel (in a sandbox of ``notebook_dir``) and compare checked outputs."""
    with sandbox(notebook_dir) as cwd:
        rerun, failure = execute(nb, cwd, timeout_per_cell, progress=progress, desc="re-running")
    patterns = sanitize_patterns()
    problems = []
    for index in code_indices(nb):
        if failure and index >= failure["index"]:
            break
        cell = nb.cells[index]
        if cell.get("execution_count") is None or not output_checked(cell):
            continue
        diff = first_difference(comparable(cell.outputs, patterns), comparable(rerun.cells[index].outputs, patterns))
        if diff:
            problems.append(_problem(nb, index, f"output differs from a fresh re-run: {diff}"))
    if failure:
        problems.append(_problem(nb, failure["index"], f"re-execution stopped here: {failure['message']}"))
    return problems


def _problem(nb, index, message) -> dict:
    return {"cell": cell_label(nb, index), "index": index, "task": task_of_cells(nb)[index], "message": message}


CHECKS = ("ran top to bottom", "no cell errored", "self-checks passed", "outputs reproduce")


def grade(submission, lab=None, reference=None, timeout_per_cell=300, progress=False) -> dict:
    """Grade an executed notebook: the four checks of ``CHECKS``; ``report["passed"]`` only if all pass.

    ``reference``: the executed lab notebook whose self-check cells count (default: from ``lab``,
    else guessed from the submission's file name). The submission is read as JSON; its code only runs
    inside the fresh kernel of the re-execution, in a sandbox next to the reference's folder.
    """
    submission = Path(submission)
    nb = read(submission)
    ref_path = Path(reference) if reference else lab_path(lab or _guess_lab(submission))
    ref = read(ref_path)
    if not self_check_sources(ref):
        raise ValueError(f"reference: {ref_path} has no executed self-check cells (a line ending in 'passed')")
    found = {
        CHECKS[0]: check_order(nb),
        CHECKS[1]: check_errors(nb),
        CHECKS[2]: check_self_checks(nb, ref),
        CHECKS[3]: check_reproduces(nb, ref_path.parent, timeout_per_cell, progress),
    }
    checks = [{"check": name, "passed": not problems, "problems": problems} for name, problems in found.items()]
    return {"submission": str(submission), "reference": str(ref_path), "passed": all(c["passed"] for c in checks),
            "checks": checks, "tasks": _task_summary(nb, checks)}


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
    lines += ["", f"Verdict: {'PASS' if report['passed'] else 'FAIL'}"]
    return "\n".join(lines)


# ---------------------------------------------------------------- student release

def strip_solutions(source: str, where="cell") -> str:
    """Replace every ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` block by a NotImplementedError stub.

    The stub keeps the indentation of the BEGIN line; lines before it (signature, docstring) stay.
    """
    out, inside, indent = [], False, ""
    for number, line in enumerate(source.splitlines(), 1):
        marker = line.strip()
        if marker == BEGIN:
            if inside:
                raise ValueError(f"{where}: line {number} opens a solution block inside another one")
            inside, indent = True, line[: len(line) - len(line.lstrip())]
            out += [f"{indent}# YOUR CODE HERE", f"{indent}{STUB}"]
        elif marker == END:
            if not inside:
                raise ValueError(f"{where}: line {number} closes a solution block that was never opened")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{where}: a solution block is never closed with {END!r}")
    return "\n".join(out)


def student_notebook(nb, where="notebook") -> nbformat.NotebookNode:
    """The student version: solutions stubbed, outputs cleared; parameters and self-check cells kept."""
    nb = clear_outputs(nb)
    for index, cell in enumerate(nb.cells):
        if BEGIN in cell.source:
            label = f"{where} cell {index}"
            cell.source = strip_solutions(cell.source, label) if cell.cell_type == "code" \
                else _strip_markdown(cell.source, label)
    return nb


def _strip_markdown(source: str, where) -> str:
    return strip_solutions(source, where).replace(f"# YOUR CODE HERE\n{STUB}", "YOUR ANSWER HERE")


def solution_count(nb) -> int:
    """Number of solution blocks in a notebook."""
    return sum(cell.source.count(BEGIN) for cell in nb.cells)


def release(out, labs=None, notebooks=None, force=False) -> list[Path]:
    """Write the student notebooks into ``out``; ValueError if a notebook has no solution blocks.

    Existing notebooks in ``out`` are only replaced with ``force``; an instructor notebook never is.
    """
    paths = [Path(p) for p in notebooks] if notebooks else [lab_path(lab) for lab in (labs or LABS)]
    out = validate.output_dir("--out", out)
    _check_targets(paths, out, [], force)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in paths:
        nb = read(path)
        parameters_index(nb, path.name)
        if not solution_count(nb):
            raise ValueError(f"{path.name}: no '{BEGIN}' blocks, nothing to release")
        nbformat.write(student_notebook(nb, path.name), out / path.name)
        written.append(out / path.name)
    return written
