"""labhelpers.nbtools.compare: the one comparison behind `make test` (nbval) and the grader."""
from __future__ import annotations

import pytest

from labhelpers.nbtools.compare import EXACT, Tolerance, declared, outputs_difference, text_difference

TABLE = """    h1  h2  val_accuracy      bops
24  80  80        0.6415  8.84e+06
23  80  64        0.6403  7.35e+06
"""


def test_declaration_is_read_from_the_cell_source():
    assert declared("x = 1") == EXACT and EXACT.exact
    assert declared("# tolerance: abs=0.0002\nprint(x)") == Tolerance(abs=0.0002)
    assert declared("  #tolerance: abs=1e-4 rel=0.01 ints=2") == Tolerance(abs=1e-4, rel=0.01, ints=2)
    assert str(Tolerance(abs=0.001)) == "tolerance abs=0.001"


@pytest.mark.parametrize("source, message", [
    ("# tolerance: abs", "write key=value"),
    ("# tolerance: tol=0.1", "write key=value"),
    ("# tolerance: abs=x", "not a number"),
    ("# tolerance: ints=0.5", "an integer"),
    ("# tolerance: abs=-1", ">= 0"),
    ("# tolerance: abs=inf", ">= 0"),
    ("# tolerance: abs=1\n# tolerance: abs=2", "one per cell"),
])
def test_bad_declarations_are_one_line_errors(source, message):
    with pytest.raises(ValueError, match=message):
        declared(source, "Cell 3")


def test_exact_by_default():
    assert text_difference("acc 0.6415", "acc 0.6415") is None
    assert "line 1: stored 'acc 0.6415', re-run gives 'acc 0.6416'" == text_difference("acc 0.6415", "acc 0.6416")


def test_floats_within_tolerance_pass_and_beyond_fail_naming_both_values():
    tol = Tolerance(abs=0.0002)
    moved = TABLE.replace("0.6415", "0.6417").replace("0.6403", "0.6401")
    assert text_difference(TABLE, moved, tol) is None
    message = text_difference(TABLE, TABLE.replace("0.6415", "0.6615"), tol)
    assert message == "stored 0.6415, re-run gives 0.6615: beyond the cell's tolerance abs=0.0002"


def test_integers_stay_exact_unless_declared():
    assert text_difference(TABLE, TABLE.replace("80  64", "80  65"), Tolerance(abs=0.01)) == \
        "stored 64, re-run gives 65: beyond the cell's tolerance abs=0.01"
    assert text_difference(TABLE, TABLE.replace("80  64", "80  65"), Tolerance(abs=0.01, ints=1)) is None


def test_relative_tolerance():
    assert text_difference("x 100.0", "x 100.9", Tolerance(rel=0.01)) is None
    assert text_difference("x 100.0", "x 102.0", Tolerance(rel=0.01)) is not None


def test_fabricated_rows_changed_words_and_names_are_caught():
    tol = Tolerance(abs=1.0, ints=100)
    assert "text around the numbers" in text_difference(TABLE, TABLE + "25  16  16        0.7000  1.00e+06\n", tol)
    assert text_difference("best: h1=80", "best: h2=80", tol) is not None
    assert text_difference("seq_blocks_2 16", "seq_blocks_3 16", tol) is not None  # digits in names are text


def test_column_widths_may_change_with_the_digits():
    assert text_difference("a   9.99  b", "a  10.01  b", Tolerance(abs=0.05)) is None


def test_nan_only_matches_nan():
    assert text_difference("loss nan", "loss nan", Tolerance(abs=1.0)) is None
    assert text_difference("loss 0.1", "loss nan", Tolerance(abs=1.0)) is not None


def test_outputs_difference_per_mime_type():
    stored = {"stdout": ["acc 0.6415\n"], "text/plain": ["3"]}
    assert outputs_difference(stored, {"stdout": ["acc 0.6416\n"], "text/plain": ["3"]}, Tolerance(abs=0.001)) is None
    assert outputs_difference(stored, {"stdout": ["acc 0.6415\n"]}).startswith("text/plain: 1 stored output(s)")
