"""Compare notebook outputs as nbval sees them: exactly, or within a tolerance that the cell declares.

This module is the one comparison used by ``make test`` (the nbval plugin,
:mod:`labhelpers.nbtools.plugin`), by the grader (:mod:`labhelpers.nbtools.reproduce`, where the
tolerance is read from the *reference* notebook's cell, never from the submission) and by
``benchmarks/numeric_spread.py``.

nbval's view of a cell (:func:`comparable`): streams merged, the keys nbval skips dropped
(:data:`SKIP_COMPARE`), strings sanitized with ``labhelpers/nbtools/nbval_sanitize.cfg``
(:func:`sanitize_patterns`).

The default is exact. A code cell whose printed values are derived from training declares how far a
re-run on another machine may move them, with a comment line that students and graders both see::

    # tolerance: abs=0.0002
    # tolerance: abs=0.0002 ints=1

* ``abs``: every printed number with a fraction or an exponent (``0.6410``, ``8.84e+06``) may differ
  by at most this much, in the units it is printed in;
* ``rel``: ... or by at most this fraction of the stored value (a number passes if either holds);
* ``ints``: every printed integer may differ by at most this much (default 0: exact).

Everything else must match exactly: the words, the number of values, the table layout up to the
width of white-space runs (a column widens when a value gains a digit). A fabricated or missing
table row, an edited label, or a number moved beyond its tolerance is a difference. Digits inside
names (``seq_blocks_2``, ``h1``) are part of the text, not numbers.
"""
from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass
from pathlib import Path

from .cells import cell_label, code_indices

SANITIZE_FILE = Path(__file__).with_name("nbval_sanitize.cfg")
# what nbval (without --nbdime) leaves out of the comparison; PNG bytes depend on fonts and versions
SKIP_COMPARE = ("metadata", "traceback", "prompt_number", "output_type", "name", "execution_count",
                "application/vnd.jupyter.widget-view+json", "image/png", "image/jpeg")
_DECLARATION = re.compile(r"^[ \t]*#[ \t]*tolerance:(.*)$", re.IGNORECASE | re.MULTILINE)
_NUMBER = re.compile(r"(?<![\w.])-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![\w.])")
_SPACE = re.compile(r"\s+")
_KEYS = ("abs", "rel", "ints")


@dataclass(frozen=True)
class Tolerance:
    """How far printed numbers may move: floats by ``abs`` or ``rel``, integers by ``ints``."""

    abs: float = 0.0
    rel: float = 0.0
    ints: int = 0

    @property
    def exact(self) -> bool:
        return not (self.abs or self.rel or self.ints)

    def __str__(self) -> str:
        parts = [f"{k}={getattr(self, k):g}" for k in _KEYS if getattr(self, k)]
        return "tolerance " + " ".join(parts) if parts else "exact"

    def allows(self, stored: str, rerun: str) -> bool:
        """True if the printed number ``rerun`` is within tolerance of ``stored``."""
        if _is_int(stored) and _is_int(rerun):
            return abs(int(stored) - int(rerun)) <= self.ints
        a, b = float(stored), float(rerun)
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return abs(a - b) <= max(self.abs, self.rel * abs(a)) * (1 + 1e-9)


EXACT = Tolerance()


def _is_int(text: str) -> bool:
    return not any(c in text for c in ".eE")


def declared(source: str, where: str = "cell") -> Tolerance:
    """The tolerance a cell's source declares (``# tolerance: abs=... rel=... ints=...``), else exact."""
    found = _DECLARATION.findall(source)
    if not found:
        return EXACT
    if len(found) > 1:
        raise ValueError(f"{where}: {len(found)} '# tolerance:' lines; declare one per cell")
    values = {}
    for item in found[0].split():
        key, _, value = item.partition("=")
        if key not in _KEYS or not value:
            raise ValueError(f"{where}: '# tolerance:' item {item!r}; write key=value with keys {', '.join(_KEYS)}, "
                             "e.g. '# tolerance: abs=0.0002'")
        try:
            number = int(value) if key == "ints" else float(value)
        except ValueError:
            raise ValueError(f"{where}: '# tolerance:' {key}={value!r} is not a number"
                             f"{' (an integer)' if key == 'ints' else ''}") from None
        if not number >= 0 or math.isinf(number):
            raise ValueError(f"{where}: '# tolerance:' {key}={value} must be a finite number >= 0")
        values[key] = number
    return Tolerance(**values)


def skeleton(text: str) -> tuple[list[str], list[str]]:
    """(the text with every number replaced by '#' and white space folded, per line; the numbers)."""
    lines, numbers = [], []
    for line in text.splitlines():
        numbers += _NUMBER.findall(line)
        lines.append(_SPACE.sub(" ", _NUMBER.sub("#", line)).strip())
    return lines, numbers


def text_difference(stored: str, rerun: str, tolerance: Tolerance = EXACT) -> str | None:
    """None if ``rerun`` matches ``stored`` under ``tolerance``, else a one-line description."""
    if stored == rerun:
        return None
    if tolerance.exact:
        return _first_line_difference(stored, rerun)
    old_lines, old_numbers = skeleton(stored)
    new_lines, new_numbers = skeleton(rerun)
    if old_lines != new_lines:
        return _first_line_difference(stored, rerun) + " (the text around the numbers differs)"
    for old, new in zip(old_numbers, new_numbers):
        if not tolerance.allows(old, new):
            return f"stored {old}, re-run gives {new}: beyond the cell's {tolerance}"
    return None


def _first_line_difference(stored: str, rerun: str) -> str:
    old_lines, new_lines = stored.splitlines() or [""], rerun.splitlines() or [""]
    for number, (a, b) in enumerate(zip(old_lines + [""] * len(new_lines), new_lines + [""] * len(old_lines)), 1):
        if a != b:
            return f"line {number}: stored {shorten(a)!r}, re-run gives {shorten(b)!r}"
    return "the outputs differ"


def shorten(text: str, n: int = 70) -> str:
    """``text`` cut to ``n`` characters with '...' (for one-line reports)."""
    return text if len(text) <= n else text[:n - 3] + "..."


def outputs_difference(stored: dict, rerun: dict, tolerance: Tolerance = EXACT) -> str | None:
    """Compare two flattened outputs ``{mime type or stream: [values]}``; None if they match."""
    for key in sorted(set(stored) | set(rerun)):
        old, new = stored.get(key, []), rerun.get(key, [])
        if len(old) != len(new):
            return f"{key}: {len(old)} stored output(s), the re-run gives {len(new)}"
        for a, b in zip(old, new):
            diff = text_difference(a, b, tolerance) if isinstance(a, str) and isinstance(b, str) else \
                (None if a == b else "the outputs differ")
            if diff:
                return f"{key}: {diff}"
    return None


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
                flat.setdefault(key, []).append(sanitize(value, patterns))
    return flat


def sanitize(value, patterns):
    """A stored output value with the sanitize ``patterns`` applied (strings only; lists of lines joined)."""
    if isinstance(value, list):  # nbformat may keep multi-line strings as lists
        value = "".join(value)
    if not isinstance(value, str):
        return value
    for regex, replace in patterns:
        value = re.sub(regex, replace, value)
    return value


def first_difference(stored: dict, rerun: dict, tolerance=None) -> str | None:
    """None if equal (within ``tolerance``, a :class:`Tolerance`), else a one-line description."""
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
