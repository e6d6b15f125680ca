"""Expressions: evaluation of col/lit/call on a batch, and output_type checks against a schema."""

import pyarrow as pa
import pytest

from engine import call, col, fn, lit
from engine.expr import ExprError, as_array

BATCH = pa.record_batch({"a": [1, 2, 3], "b": [10, 20, None], "s": ["x", "yz", None], "f": [0.25, 0.5, 1.5]})


def values(expr):
    return as_array(expr.evaluate(BATCH), BATCH.num_rows).to_pylist()


def test_col_reads_the_column():
    assert values(col("a")) == [1, 2, 3]
    assert col("a").columns() == {"a"}


def test_lit_is_a_scalar_repeated_over_the_batch():
    assert lit(7).evaluate(BATCH).as_py() == 7
    assert values(lit(7)) == [7, 7, 7]
    assert lit(7).columns() == set()


def test_arithmetic_and_comparisons():
    assert values(col("a") * 2) == [2, 4, 6]
    assert values(2 * col("a")) == [2, 4, 6]
    assert values(col("a") + col("b")) == [11, 22, None]
    assert values(10 - col("a")) == [9, 8, 7]
    assert values(-col("a")) == [-1, -2, -3]
    assert values(col("f") / 0.25) == [1.0, 2.0, 6.0]
    assert values(col("a") > 1) == [False, True, True]
    assert values(col("a") == 2) == [False, True, False]
    assert values(col("a") != 2) == [True, False, True]
    assert values(col("a") <= 2) == [True, True, False]


def test_boolean_logic_is_kleene():
    assert values((col("a") > 1) & (col("b") > 15)) == [False, True, None]
    assert values((col("a") > 2) | (col("b") > 15)) == [False, True, True]
    assert values(~(col("a") > 1)) == [True, False, False]


def test_null_checks_isin_between_cast():
    assert values(col("b").is_null()) == [False, False, True]
    assert values(col("b").is_valid()) == [True, True, False]
    assert values(col("a").isin([1, 3])) == [True, False, True]
    assert values(col("f").between(0.3, 1.0)) == [False, True, False]
    assert values(col("a").cast(pa.float64())) == [1.0, 2.0, 3.0]


def test_call_any_compute_function():
    assert values(call("utf8_upper", col("s"))) == ["X", "YZ", None]
    assert values(call("utf8_length", col("s"))) == [1, 2, None]
    assert values(call("round", col("f") * 3, ndigits=1)) == [0.8, 1.5, 4.5]
    assert call("add", col("a"), col("b")).columns() == {"a", "b"}


def test_fn_wraps_a_python_function_of_the_batch():
    double = fn(lambda batch: pa.compute.multiply(batch.column("a"), 2), reads=["a"])
    assert values(double) == [2, 4, 6]
    assert double.columns() == {"a"}


def test_output_type_of_valid_expressions():
    schema = BATCH.schema
    assert col("a").output_type(schema) == pa.int64()
    assert (col("a") * 2).output_type(schema) == pa.int64()
    assert (col("f") > 0.3).output_type(schema) == pa.bool_()
    assert call("utf8_upper", col("s")).output_type(schema) == pa.string()
    assert (col("a") / 2.0).output_type(schema) == pa.float64()


def test_output_type_unknown_column_names_the_column():
    with pytest.raises(ExprError) as error:
        (col("a") + col("missing")).output_type(BATCH.schema)
    assert error.value.column == "missing"
    assert "missing" in str(error.value)
    assert "['a', 'b', 's', 'f']" in str(error.value)


def test_output_type_wrong_type_is_an_error():
    with pytest.raises(ExprError) as error:
        (col("s") + 1).output_type(BATCH.schema)
    assert "does not fit the column types" in str(error.value)
    with pytest.raises(ExprError):
        call("utf8_upper", col("a")).output_type(BATCH.schema)


def test_evaluating_an_unknown_column_raises():
    with pytest.raises(ExprError) as error:
        col("nope").evaluate(BATCH)
    assert error.value.column == "nope"
