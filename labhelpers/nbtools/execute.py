"""Running a notebook top to bottom in a fresh kernel of this interpreter (nbclient).

:func:`kernel_manager_class` always starts this interpreter, optionally jailed
(:func:`labhelpers.nbtools.sandbox.jailed`); :func:`execute` runs the cells, caps the total output
(a cell that floods stdout), and reports a timeout, an error or a dead kernel as the failure of the
cell that was running. Batch runs with papermill are in :mod:`labhelpers.nbtools.runlabs`.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

from .cells import cell_label, clear_outputs, code_indices
from .sandbox import jailed


def kernel_manager_class(jail: Path | None = None):
    """A kernel manager that always starts this interpreter, whatever kernelspec a notebook names.

    With ``jail`` (a sandbox root), the kernel runs under bubblewrap (:func:`labhelpers.nbtools.sandbox.jailed`): the whole file
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
            return jailed(cmd, jail) if jail else cmd

    return ThisInterpreterKernel


def _ipc_path(jail: Path | None = None) -> str:
    import uuid

    from jupyter_core.paths import jupyter_runtime_dir

    folder = Path(jail) / ".ipc" if jail else Path(jupyter_runtime_dir())
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder / f"labhelpers-{uuid.uuid4().hex[:12]}-ipc")


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
    client = _client_class()(nb, timeout=timeout_per_cell, kernel_manager_class=kernel_manager_class(jail),
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
