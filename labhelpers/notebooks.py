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
from .tolerance import EXACT, declared, outputs_difference, shorten

LABS = {"lab3": "lab3_quantization_search.ipynb", "lab4": "lab4_architecture_search.ipynb"}
SANITIZE_FILE = Path(__file__).with_name("nbval_sanitize.cfg")
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = 'raise NotImplementedError("replace this line with your solution")'
# what nbval (without --nbdime) leaves out of the comparison; PNG bytes depend on fonts and versions
SKIP_COMPARE = ("metadata", "traceback", "prompt_number", "output_type", "name", "execution_count",
                "application/vnd.jupyter.widget-view+json", "image/png", "image/jpeg")
_TASK = re.compile(r"^\s*#{1,6}\s*(Task\s*\d+)", re.IGNORECASE | re.MULTILINE)
_PASSED = re.compile(r"\bpassed\W*$", re.IGNORECASE)
# parameters naming where a lab writes its files -> the committed folder that `refresh` publishes them to
OUTPUT_PARAMETERS = {"out_dir": "imgs", "checkpoint_dir": "checkpoints"}


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

MAX_OUTPUT_BYTES = 20_000_000      # a re-run whose cells print more than this in all is stopped
PROJECT_FOLDERS = ("configs", "checkpoints", "data")  # what a sandbox copies from the project


def _kernel_manager_class(jail: Path | None = None):
    """A kernel manager that always starts this interpreter, whatever kernelspec a notebook names.

    With ``jail`` (a sandbox root), the kernel runs under bubblewrap (:func:`_jailed`): the whole file
    system read-only except ``jail``, its own process and network namespaces (every process it starts
    dies with it), and HOME and TMPDIR inside the jail.
    """
    from jupyter_client.manager import AsyncKernelManager
    from nbval.kernel import CURRENT_ENV_KERNEL_NAME, NbvalKernelspecManager

    class ThisInterpreterKernel(AsyncKernelManager):
        def __init__(self, **kwargs):
            kwargs.update(kernel_name=CURRENT_ENV_KERNEL_NAME, kernel_spec_manager=NbvalKernelspecManager())
            if os.name == "posix":  # local sockets: no unencrypted-TCP warning, nothing on the network
                kwargs.setdefault("transport", "ipc")
                kwargs.setdefault("ip", _ipc_path(jail))  # absolute: the kernel's cwd differs from ours
            if jail:  # keep every file of the jailed kernel (sockets, connection file) inside its sandbox
                kwargs.setdefault("connection_file", _ipc_path(jail) + ".json")
            super().__init__(**kwargs)

        def format_kernel_cmd(self, extra_arguments=None):
            cmd = super().format_kernel_cmd(extra_arguments)
            return _jailed(cmd, jail) if jail else cmd

    return ThisInterpreterKernel


def _ipc_path(jail: Path | None = None) -> str:
    import uuid

    from jupyter_core.paths import jupyter_runtime_dir

    folder = Path(jail) / ".ipc" if jail else Path(jupyter_runtime_dir())
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder / f"labhelpers-{uuid.uuid4().hex[:12]}-ipc")


def _jailed(cmd: list[str], jail: Path) -> list[str]:
    """``cmd`` under bubblewrap: read-only file system but ``jail`` (HOME and TMPDIR inside it), own pid and network.

    /tmp stays visible read-only (a tmpfs over it would hide an interpreter or project that lives there).
    """
    home = jail / ".home"
    return ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
            "--bind", str(jail), str(jail), "--unshare-pid", "--unshare-net", "--die-with-parent", "--new-session",
            "--setenv", "HOME", str(home), "--setenv", "TMPDIR", str(home / "tmp"),
            "--setenv", "MPLCONFIGDIR", str(home / ".matplotlib"),
            "--setenv", "IPYTHONDIR", str(home / ".ipython"),
            # the grader's pid means nothing in the kernel's pid namespace (--die-with-parent does that job);
            # 1 = no parent poller and no console banner on the grader's stdout
            "--setenv", "JPY_PARENT_PID", "1", "--"] + list(cmd)


def isolation_available() -> bool:
    """True if bubblewrap can start a jailed process here."""
    import subprocess

    if not shutil.which("bwrap"):
        return False
    probe = subprocess.run(["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--unshare-pid", "true"],
                           capture_output=True)
    return probe.returncode == 0


def execute(nb, cwd, timeout_per_cell=None, progress=False, desc="cells", keep_going=(), jail=None,
            max_output_bytes=None):
    """Run a cleared copy of ``nb`` top to bottom in a fresh kernel (cwd ``cwd``), stopping at the first error.

    Cells whose index is in ``keep_going`` may fail without stopping the run (their error stays in
    their outputs). ``jail``: run the kernel under bubblewrap with only that folder writable.
    ``max_output_bytes``: stop when the cells' outputs grow past this size. A kernel that dies is a
    failure of the cell that was running. Returns ``(executed_nb, failure)``; ``failure`` is None or
    ``{"index", "label", "message"}``.
    """
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    from tqdm.auto import tqdm

    nb = clear_outputs(nb)
    timeout_per_cell = None if timeout_per_cell is None else max(1, math.ceil(timeout_per_cell))  # nbclient: int s
    client = _client_class()(nb, timeout=timeout_per_cell, kernel_manager_class=_kernel_manager_class(jail),
                             record_timing=False, resources={"metadata": {"path": str(cwd)}},
                             max_output_bytes=max_output_bytes)
    failure = None
    try:
        with client.setup_kernel(cleanup_kc=True):
            for index in tqdm(code_indices(nb), desc=desc, unit="cell", disable=not progress, leave=False):
                try:
                    client.execute_cell(nb.cells[index], index)
                except CellTimeoutError:
                    failure = _failure(nb, index, f"exceeded the {timeout_per_cell} s time limit per cell")
                except CellExecutionError as exc:
                    if index not in keep_going:
                        failure = _failure(nb, index, f"raised {exc.ename}: {exc.evalue}")
                except DeadKernelError:
                    failure = _failure(nb, index, "killed the kernel (it died while this cell ran)")
                except _OutputLimit as exc:
                    failure = _failure(nb, index, str(exc))
                if failure:
                    break
    except DeadKernelError:  # while shutting down a kernel that died in the last cell
        failure = failure or _failure(nb, code_indices(nb)[-1], "killed the kernel")
    return nb, failure


class _OutputLimit(Exception):
    pass


def _client_class():
    """nbclient's NotebookClient with a cap on the total size of the outputs (a cell that floods stdout)."""
    from nbclient import NotebookClient

    class CappedClient(NotebookClient):
        def __init__(self, nb, max_output_bytes=None, **kwargs):
            super().__init__(nb, **kwargs)
            self.max_output_bytes, self.output_bytes = max_output_bytes, 0

        def output(self, outs, msg, display_id, cell_index):
            self.output_bytes += len(json.dumps(msg.get("content", {}), default=str))
            if self.max_output_bytes and self.output_bytes > self.max_output_bytes:
                raise _OutputLimit(f"printed more than {self.max_output_bytes / 1e6:g} MB of output")
            return super().output(outs, msg, display_id, cell_index)

    return CappedClient


def _failure(nb, index, message) -> dict:
    return {"index": index, "label": cell_label(nb, index), "message": message}


@contextlib.contextmanager
def sandbox(notebook_dir):
    """A temporary copy of the project around ``notebook_dir``, for runs that must not write into it.

    The project's ``configs/``, ``checkpoints/`` and ``data/`` next to ``notebook_dir`` are copied (not
    linked), so a run that writes them changes only the copy; nothing else of the project or of the
    reference's folder is; ``imgs/`` and ``runs/`` start empty. Yields the cwd to execute in; its parent
    is the sandbox root.
    """
    notebook_dir = Path(notebook_dir).resolve()
    with tempfile.TemporaryDirectory(prefix="labhelpers-") as tmp:
        root, cwd = Path(tmp), Path(tmp) / "notebooks"
        cwd.mkdir()
        for name in PROJECT_FOLDERS:
            source = notebook_dir.parent / name
            if source.is_dir() and not source.is_symlink():
                shutil.copytree(source, root / name, symlinks=False,
                                ignore=shutil.ignore_patterns(".*", "__pycache__", "openml", "cache"))
        for name in ("imgs", "runs", ".home", ".home/tmp"):
            (root / name).mkdir()
        _seed_matplotlib_cache(root / ".home" / ".matplotlib")
        yield cwd


def _seed_matplotlib_cache(target: Path) -> None:
    """Copy matplotlib's font cache, so a jailed kernel neither rebuilds it nor warns about it."""
    try:
        import matplotlib

        shutil.copytree(matplotlib.get_cachedir(), target, dirs_exist_ok=True)
    except (OSError, ImportError):
        target.mkdir(parents=True, exist_ok=True)


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


def first_difference(stored: dict, rerun: dict, tolerance=None) -> str | None:
    """None if equal (within ``tolerance``, a :class:`labhelpers.tolerance.Tolerance`), else a one-line description."""
    return outputs_difference(stored, rerun, tolerance or EXACT)


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
    for name, folder in OUTPUT_PARAMETERS.items():  # figures and checkpoints go to the run folder
        if name in declared:
            params.setdefault(name, str(out_dir / folder))
            (out_dir / folder).mkdir(parents=True, exist_ok=True)
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
        written = [f for folder in OUTPUT_PARAMETERS.values() for f in sorted((out / folder).glob("*")) if f.is_file()]
        _check_targets(paths, out, [*written, out / "run.json"], force)
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
    outputs = _output_folders(nb, path)
    for folder in outputs:
        shutil.rmtree(folder, ignore_errors=True)  # only this run's files get published
    executed, failure = execute(nb, path.parent, timeout_per_cell, progress=progress, desc=path.stem)
    if failure is None:
        nbformat.write(executed, path)
        for folder, target in outputs.items():
            for item in sorted(folder.glob("*")) if folder.is_dir() else []:
                shutil.copy2(item, target / item.name)
    return failure


def _output_folders(nb, path: Path) -> dict[Path, Path]:
    """Folders the notebook writes by default (``out_dir``, ``checkpoint_dir``) -> committed folder to publish into."""
    declared = declared_parameters(nb, path.name)
    out = {}
    for name, committed in OUTPUT_PARAMETERS.items():
        if name in declared:
            folder = (path.parent / ast.literal_eval(declared[name])).resolve()
            target = repo_dir() / committed
            if folder != target:
                out[folder] = target
    return out


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
        same = _in_order if BEGIN in ref_cell.source else (lambda a, b: a == b)  # a cell without a solution: as released
        index = next((i for i in code_indices(nb) if i not in used and same(wanted, _released_lines(nb.cells[i].source))), None)
        if index is None:
            problems.append({"cell": f"self-check `{shorten(wanted[-1] if wanted else '', 50)}`", "index": None,
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


def _normalized(source: str) -> list[str]:
    return [line.rstrip() for line in source.strip().splitlines()]


def check_locked(nb, reference, pairs: dict[int, int]) -> list[dict]:
    """Reference code cells must all be present; cells without a solution block (locked) unchanged.

    Self-check cells are left to :func:`check_self_checks`. The report names the submission's cell and
    never quotes the reference's source.
    """
    problems = []
    for r in code_indices(reference):
        ref_cell = reference.cells[r]
        if r not in pairs:
            problems.append({"cell": f"reference cell {code_indices(reference).index(r)}", "index": None, "task": None,
                             "message": "is missing from the submission (released cells must not be deleted)"})
        elif BEGIN not in ref_cell.source and not _passed_lines(ref_cell) \
                and _normalized(nb.cells[pairs[r]].source) != _normalized(ref_cell.source):
            problems.append(_problem(nb, pairs[r], "was edited, but it is a locked cell: restore it as released"))
    return problems


_FRESH_CHECKS = """import importlib.util as _grader_util
_grader_spec = _grader_util.spec_from_file_location("labhelpers_checks_for_grading", {path!r})
checks = _grader_util.module_from_spec(_grader_spec)
_grader_spec.loader.exec_module(checks)
"""


def _check_statements(source: str) -> str:
    """The top-level statements of a reference cell that hold no solution block: its self-check lines."""
    lines, blocks, start = source.splitlines(), [], None
    for number, line in enumerate(lines, 1):
        start = number if line.strip() == BEGIN else start
        if line.strip() == END:
            blocks.append((start, number))
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return source
    kept = [node for node in body if not any(node.lineno <= end and begin <= node.end_lineno for begin, end in blocks)]
    return "\n".join("\n".join(lines[node.lineno - 1:node.end_lineno]) for node in kept)


def graded_notebook(nb, reference, pairs: dict[int, int]):
    """What the grader re-runs: the submission, with the reference's self-checks put back after its cells.

    After each cell paired with a reference self-check cell, a grader cell runs the reference's
    self-check lines again (:func:`_check_statements`), with ``checks`` imported afresh from the
    installed file, so that neither a string-wrapped check, nor a printed 'passed', nor a replaced
    ``checks`` module counts. Returns ``(notebook, where, checks)``: ``where`` maps each submission
    cell index to its index in the graded notebook, ``checks`` each reference self-check cell to its
    grader cell.
    """
    graded = copy.deepcopy(nb)
    fresh = _FRESH_CHECKS.format(path=str(Path(__file__).with_name("checks.py")))
    extra = {i: r for r, i in pairs.items() if _passed_lines(reference.cells[r])}
    cells, where, checks = [], {}, {}
    for i, cell in enumerate(graded.cells):
        where[i] = len(cells)
        cells.append(cell)
        if i in extra:
            checks[extra[i]] = len(cells)
            cells.append(nbformat.v4.new_code_cell(fresh + _check_statements(reference.cells[extra[i]].source)))
    graded.cells = cells
    return graded, where, checks


def check_reproduces(nb, notebook_dir, timeout_per_cell=None, progress=False, reference=None, jail=True,
                     pairs=None) -> tuple[list, list]:
    """Re-run the submission (as :func:`graded_notebook` builds it) in a sandbox, compare its checked outputs.

    Which cells are compared, and how (exact, or within a ``# tolerance:``), comes from the paired
    reference cell; cells the submission added are compared exactly. ``pairs``: :func:`pair_cells`
    (computed if not given). Returns ``(reproduce problems, self-check problems found by the re-run)``.
    """
    reference = reference if reference is not None else nb
    pairs = pair_cells(nb, reference) if pairs is None else pairs
    by_submission = {i: r for r, i in pairs.items()}
    graded, where, checks = graded_notebook(nb, reference, pairs)
    keep_going = set(checks.values())
    with sandbox(notebook_dir) as cwd:
        rerun, failure = execute(graded, cwd, timeout_per_cell, progress=progress, desc="re-running",
                                 keep_going=keep_going, jail=cwd.parent if jail else None,
                                 max_output_bytes=MAX_OUTPUT_BYTES)
    patterns, problems = sanitize_patterns(), []
    for index in code_indices(nb):
        if failure and where[index] >= failure["index"]:
            break
        cell, rules = nb.cells[index], reference.cells[by_submission[index]] if index in by_submission else None
        if cell.get("execution_count") is None or (rules is not None and not output_checked(rules)):
            continue
        tolerance = declared(rules.source, cell_label(nb, index)) if rules is not None else EXACT
        diff = first_difference(comparable(cell.outputs, patterns), comparable(rerun.cells[where[index]].outputs, patterns),
                                tolerance)
        if diff:
            problems.append(_problem(nb, index, f"output differs from a fresh re-run: {diff}"))
    if failure:
        index = max((i for i in code_indices(nb) if where[i] <= failure["index"]), default=code_indices(nb)[0])
        problems.append(_problem(nb, index, f"re-execution stopped here: {failure['message']}"))
    return problems, _rerun_self_checks(nb, reference, rerun, pairs, checks, failure)


def _rerun_self_checks(nb, reference, rerun, pairs, checks, failure) -> list[dict]:
    problems = []
    for r, g in checks.items():
        if failure and g >= failure["index"]:
            continue
        errors = [o for o in rerun.cells[g].outputs if o.get("output_type") == "error"]
        if errors or len(_passed_lines(rerun.cells[g])) < len(_passed_lines(reference.cells[r])):
            why = f" ({errors[0].get('ename')}: {shorten(str(errors[0].get('evalue')), 200)})" if errors else ""
            problems.append(_problem(nb, pairs[r], f"the reference's self-check, re-run by the grader after this "
                                                   f"cell, did not pass{why}"))
    return problems


def _problem(nb, index, message) -> dict:
    return {"cell": cell_label(nb, index), "index": index, "task": task_of_cells(nb)[index], "message": message}


CHECKS = ("ran top to bottom", "no cell errored", "self-checks passed", "outputs reproduce", "locked cells unchanged")
MAX_NOTEBOOK_BYTES = 50_000_000


def grade(submission, lab=None, reference=None, timeout_per_cell=300, progress=False, isolate=True) -> dict:
    """Grade an executed notebook: the checks of ``CHECKS``; ``report["passed"]`` only if all pass.

    ``reference``: the executed lab notebook (default: from ``lab``, else guessed from the submission's
    file name). Everything that decides the verdict comes from the reference: its cells are paired
    with the submission's (:func:`pair_cells`), its locked cells must be unchanged (:func:`check_locked`),
    its self-checks run again after the student's cells (:func:`graded_notebook`), and its
    ``NBVAL_IGNORE_OUTPUT`` marks and ``# tolerance:`` lines say what is compared and how. The submission is read as JSON; its code runs only in a fresh kernel, in a
    sandbox copy of the project, jailed with bubblewrap when ``isolate`` (see :func:`_jailed`).
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
    from .numerics import fresh_platform_info

    return {"submission": str(submission), "reference": str(ref_path), "passed": all(c["passed"] for c in checks),
            "checks": checks, "tasks": _task_summary(nb, checks),
            "platform": {"re-run": fresh_platform_info(), "isolated": bool(isolate),
                         "submission": nb.metadata.get("labhelpers", {}).get("platform", "not recorded")}}


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
        rerun = ", ".join(f"{k} {v}" for k, v in platform["re-run"].items())
        lines += ["", f"Re-run on: {rerun}; {'jailed (bubblewrap)' if platform['isolated'] else 'NOT isolated'}",
                  f"Submission's platform: {platform['submission']}"]
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
