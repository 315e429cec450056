"""A throwaway PostgreSQL server for the tests: ``initdb`` into a temporary folder, loopback only.

The session fixture ``postgres_url`` yields ``postgresql+psycopg2://postgres:<random>@127.0.0.1:<port>/labtest``
and deletes the cluster afterwards. As root it runs the server as the ``postgres`` user (initdb refuses
root). Without PostgreSQL the tests are skipped, except under ``CI=true``, where they fail: CI must
test against a real server (.ci/run installs Debian's ``postgresql`` package).
"""
from __future__ import annotations

import glob
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

DATABASE = "labtest"


def postgres_bin() -> Path | None:
    """The folder of initdb/pg_ctl: on PATH, or Debian's /usr/lib/postgresql/<newest>/bin."""
    if found := shutil.which("initdb"):
        return Path(found).resolve().parent  # Debian: a symlink into /usr/lib/postgresql/<v>/bin
    candidates = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    newest = max(candidates, key=lambda p: int(re.search(r"/(\d+)/bin/", p).group(1)), default=None)
    return Path(newest).parent if newest else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _missing(reason: str):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI=true requires a real PostgreSQL server", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_url():
    bindir = postgres_bin()
    if bindir is None:
        _missing("PostgreSQL is not installed (no initdb on PATH or in /usr/lib/postgresql/*/bin); "
                 "`apt-get install postgresql` or run .ci/run as root")
    root = os.geteuid() == 0
    if root and shutil.which("runuser") is None:
        _missing("running as root needs runuser to start PostgreSQL as the postgres user")
    as_owner = ["runuser", "-u", "postgres", "--"] if root else []
    home = Path(tempfile.mkdtemp(prefix="labhelpers-pg-"))
    password = secrets.token_hex(16)
    (home / "pw").write_text(password)
    if root:
        for path in (home, home / "pw"):
            shutil.chown(path, "postgres", "postgres")
    data, port = home / "data", _free_port()
    try:
        _run(as_owner + [bindir / "initdb", "-D", data, "-U", "postgres", f"--pwfile={home / 'pw'}",
                         "--auth=scram-sha-256", "--no-locale", "-E", "UTF8", "--no-sync"])
        options = (f"-c listen_addresses=127.0.0.1 -p {port} -k {home} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off")
        _run(as_owner + [bindir / "pg_ctl", "-D", data, "-l", home / "server.log", "-o", options, "-w", "-t", "60", "start"])
        _run([bindir / "createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", DATABASE],
             env={**os.environ, "PGPASSWORD": password})
        yield f"postgresql+psycopg2://postgres:{password}@127.0.0.1:{port}/{DATABASE}"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(as_owner + [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                           capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


def _run(argv, **kwargs) -> None:
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, **kwargs)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(map(str, argv[:3]))}... failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")
