"""The sandbox a re-run happens in, and the bubblewrap jail around its kernel.

:func:`sandbox` makes a temporary copy of the project's ``configs/``, ``checkpoints/`` and ``data/``
next to an empty ``notebooks/`` cwd; :func:`jailed` wraps a kernel command so that only that copy is
writable. :mod:`labhelpers.nbtools.execute` starts kernels with it; the grader
(:mod:`labhelpers.nbtools.reproduce`) re-runs submissions in both.
"""
from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path

PROJECT_FOLDERS = ("configs", "checkpoints", "data")  # what a sandbox copies from the project


def jailed(cmd: list[str], jail: Path) -> list[str]:
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
