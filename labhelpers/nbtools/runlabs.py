"""Batch runs of the lab notebooks: ``run-labs`` (papermill into a run folder) and ``--in-place`` (:func:`refresh`).

Parameters come from ``-p name value`` (:func:`parse_value`) and a YAML file (:func:`read_params_file`),
shared by every lab that declares the name or given per lab in a ``lab3:`` section
(:func:`lab_parameters`); every notebook is checked before any runs. :func:`refresh` re-executes a
committed notebook with its defaults (:func:`labhelpers.nbtools.execute.execute`) and publishes its
figures and checkpoints.
"""
from __future__ import annotations

import ast
import datetime
import json
import shutil
from pathlib import Path

import nbformat

from .. import validate
from ..numerics import quiet
from .cells import LABS, cell_label, check_targets, declared_parameters, lab_path, parameters_index, read, repo_dir
from .execute import execute, kernel_manager_class

# parameters naming where a lab writes its files -> the committed folder that `refresh` publishes them to
OUTPUT_PARAMETERS = {"out_dir": "imgs", "checkpoint_dir": "checkpoints"}


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
        with quiet("papermill"):  # its regex parameter parser warns on lines ast (above) reads fine
            papermill.execute_notebook(path, output, parameters=params, cwd=path.parent,
                                       kernel_manager_class=kernel_manager_class(), execution_timeout=timeout_per_cell,
                                       progress_bar={"desc": path.stem} if progress else False)
    except papermill.PapermillExecutionError as exc:
        index = exc.cell_index - (1 if params and exc.cell_index > parameters_index(nb) else 0)
        result["error"] = f"{path.name}: {cell_label(nb, index, exc.exec_count)} raised {exc.ename}: {exc.evalue}"
    except (CellTimeoutError, DeadKernelError) as exc:
        why = f"exceeded the {timeout_per_cell:g} s time limit" if isinstance(exc, CellTimeoutError) else "killed the kernel"
        result["error"] = f"{path.name}: {_running_cell(output, nb, params)} {why}"
    return result


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
        check_targets(paths, out, [*written, out / "run.json"], force)
    run_dir = Path(out) if out else new_run_dir(repo_dir() / "runs")
    run_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for i, (path, own) in enumerate(plans, 1):
        print(f"[{i}/{len(plans)}] {path.name} -> {run_dir / path.name}", flush=True)
        results.append(run_notebook(path, run_dir, own, progress=progress, timeout_per_cell=timeout_per_cell))
    (run_dir / "run.json").write_text(json.dumps(results, indent=2, default=str))
    return run_dir, results


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
