"""Exception types of citystream: every error says what was wrong, where, and what is allowed."""

from __future__ import annotations


class CitystreamError(Exception):
    """Base class of every error raised by citystream."""


class PlanError(CitystreamError):
    """The dataflow cannot be built: a wrong column, type, option or graph shape.

    Raised when the graph is built, never while it runs. The message names the operator
    and, where one is involved, the column.
    """

    def __init__(self, operator: str, message: str, column: str | None = None) -> None:
        self.operator = operator
        self.column = column
        where = f"operator '{operator}'" + (f", column '{column}'" if column else "")
        super().__init__(f"{where}: {message}")


class OptionError(CitystreamError):
    """An option has a value outside what is allowed; the message names both."""

    def __init__(self, option: str, value: object, allowed: str) -> None:
        self.option = option
        super().__init__(f"option '{option}' = {value!r} is not allowed; expected {allowed}")


class JobFailed(CitystreamError):
    """A running job failed: the message names the task and the cause."""

    def __init__(self, task: str, cause: BaseException) -> None:
        self.task = task
        self.cause = cause
        super().__init__(f"task '{task}' failed: {type(cause).__name__}: {cause}")
