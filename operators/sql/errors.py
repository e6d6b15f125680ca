"""SQL errors: what was wrong, where (line, column and the offending text), and what is allowed."""

from __future__ import annotations

from sqlglot import exp

from engine.errors import CitystreamError


class SqlError(CitystreamError):
    """A user's SQL cannot be compiled: a syntax error, an unsupported construct, an unknown
    name or a type that does not fit. ``line``/``column`` are 1-based (0 when unknown)."""

    def __init__(self, message: str, line: int = 0, column: int = 0, snippet: str = "", hint: str = "") -> None:
        self.reason = message
        self.line = line
        self.column = column
        self.snippet = snippet
        self.hint = hint
        where = f"line {line}, column {column}: " if line else ""
        text = f"SQL error at {where}{message}" if where else f"SQL error: {message}"
        if snippet:
            text += f"\n{snippet}"
        if hint:
            text += f"\n{hint}"
        super().__init__(text)


def span(node: exp.Expr | None) -> tuple[int, int] | None:
    """The character range [start, end] of a parsed node in its SQL text, from the positions
    sqlglot keeps on its tokens (identifiers, literals, function names)."""
    if node is None:
        return None
    starts, ends = [], []
    for child in node.walk():
        meta = child.meta_get("start"), child.meta_get("end")
        if meta[0] is not None and meta[1] is not None:
            starts.append(meta[0])
            ends.append(meta[1])
    if not starts:
        return None
    return min(starts), max(ends)


class SourceText:
    """The SQL text being compiled, to turn node positions into line, column and a caret
    under the offending text."""

    def __init__(self, text: str, path: str | None = None) -> None:
        self.text = text
        self.path = path

    def position(self, offset: int) -> tuple[int, int]:
        line = self.text.count("\n", 0, offset) + 1
        column = offset - (self.text.rfind("\n", 0, offset) + 1) + 1
        return line, column

    def excerpt(self, start: int, end: int) -> str:
        line, column = self.position(start)
        line_start = self.text.rfind("\n", 0, start) + 1
        line_end = self.text.find("\n", start)
        source_line = self.text[line_start : line_end if line_end >= 0 else len(self.text)]
        width = max(1, min(end, line_start + len(source_line) - 1) - start + 1)
        gutter = f"{line:>4} | "
        return f"{gutter}{source_line}\n{' ' * (len(gutter) + column - 1)}{'^' * width}"

    def error(self, message: str, node: exp.Expr | None = None, hint: str = "") -> SqlError:
        """An error located at ``node`` (line, column, the text with a caret under it); a node
        without a position of its own (NULL, a keyword) is located by its nearest parent."""
        where = span(node)
        parent = node.parent if node is not None else None
        while where is None and parent is not None:
            where, parent = span(parent), parent.parent
        if where is None:
            return SqlError(message, hint=hint)
        line, column = self.position(where[0])
        offending = self.text[where[0] : where[1] + 1]
        if node is not None and offending and offending not in message:
            message = f"{message} (at '{offending}')"
        return SqlError(message, line, column, self.excerpt(*where), hint)

    def error_at(self, message: str, line: int, column: int, hint: str = "", width: int = 1) -> SqlError:
        """An error at a line and column (1-based), ``width`` characters wide."""
        lines = self.text.splitlines() or [""]
        offset = min(sum(len(x) + 1 for x in lines[: max(line - 1, 0)]) + max(column - 1, 0), max(len(self.text) - 1, 0))
        return SqlError(message, line, column, self.excerpt(offset, offset + width - 1), hint)

    def error_at_offset(self, message: str, offset: int, width: int, hint: str = "") -> SqlError:
        """An error at a character offset of the text."""
        line, column = self.position(offset)
        return SqlError(message, line, column, self.excerpt(offset, offset + width - 1), hint)
