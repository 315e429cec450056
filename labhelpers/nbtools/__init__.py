"""Notebook tooling: headless runs, reproducible outputs, grading and the student release of the labs.

The modules, each importing only those above it:

- :mod:`~labhelpers.nbtools.cells`: read a notebook, name its cells (``Cell k (In [n]) `first line```),
  its ``parameters`` cell, its tasks, its self-check lines; pair a submission's cells with a reference's;
- :mod:`~labhelpers.nbtools.compare`: nbval's view of a cell's outputs and the one tolerant comparison
  (exact, or within a cell's ``# tolerance:`` line), used by the nbval plugin and the grader alike;
- :mod:`~labhelpers.nbtools.sandbox`: a temporary copy of the project to run in, and the bubblewrap jail;
- :mod:`~labhelpers.nbtools.execute`: run a notebook in a fresh kernel of this interpreter (nbclient),
  with an output cap, timeouts and dead kernels reported per cell;
- :mod:`~labhelpers.nbtools.release`: the student version (solution blocks stubbed, outputs cleared);
- :mod:`~labhelpers.nbtools.nbgrader_meta`: every cell's nbgrader metadata (solution, test, answer, read-only)
  from the predicates release and grade use, and an nbgrader course's ``source/`` folder;
- :mod:`~labhelpers.nbtools.runlabs`: ``run-labs`` with papermill, and ``--in-place`` refreshes;
- :mod:`~labhelpers.nbtools.reproduce`: the grader's jailed re-run with the reference's self-checks put back;
- :mod:`~labhelpers.nbtools.grade`: the five checks and the report;
- :mod:`~labhelpers.nbtools.plugin`: the pytest plugin for nbval (``-p labhelpers.nbtools.plugin``).

Nothing is re-exported here: import the module that owns a name, e.g.
``from labhelpers.nbtools import grade; grade.grade(path, lab=3)``.
"""
