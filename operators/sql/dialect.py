"""The SQL dialect citystream reads: sqlglot's RisingWave (Postgres) grammar, which knows
``WATERMARK FOR`` and ``WITH (...)`` options, plus Flink's window table functions, whose
``TABLE t`` and ``DESCRIPTOR(col)`` arguments no sqlglot dialect parses."""

from __future__ import annotations

from typing import Any

from sqlglot import exp
from sqlglot.dialects.risingwave import RisingWave
from sqlglot.parsers.risingwave import RisingWaveParser
from sqlglot.tokens import TokenType

WINDOW_FUNCTIONS = ("TUMBLE", "HOP", "SESSION", "CUMULATE")


class _Parser(RisingWaveParser):
    def _parse_window_function(self, name: str) -> exp.Expr:
        """TUMBLE(TABLE t [PARTITION BY k | (k1, k2)], DESCRIPTOR(ts), size) in a FROM clause, or
        TUMBLE(ts, size) in a GROUP BY (the group-window form): the arguments as they come,
        the table argument as an ``exp.Table`` (partition columns in its ``partition`` arg)."""
        token = self._tokens[self._index - 2]  # the function's name (the parser is past its "(")
        args: list[exp.Expr] = []
        if self._match(TokenType.TABLE):
            table = self._parse_table_parts()
            if self._match(TokenType.PARTITION_BY) or self._match_text_seq("PARTITION", "BY"):
                # One column, or several in parentheses (a bare list would swallow the next arguments).
                if self._match(TokenType.L_PAREN):
                    keys = self._parse_csv(self._parse_column)
                    self._match_r_paren()
                else:
                    keys = [self._parse_column()]  # type: ignore[list-item]
                table.set("partition", exp.Tuple(expressions=keys))  # type: ignore[union-attr]
            args.append(table)  # type: ignore[arg-type]
            if not self._match(TokenType.COMMA):
                return self._window_call(name, args, token)
        args.extend(self._parse_csv(lambda: self._parse_lambda()))
        return self._window_call(name, args, token)

    def _window_call(self, name: str, args: list[Any], token: Any) -> exp.Expr:
        call = self.expression(exp.Anonymous(this=name, expressions=[a for a in args if a is not None]))
        return call.update_positions(token)

    # SESSION is a keyword token (SET SESSION ...); as a function name it is the window.
    FUNC_TOKENS = {*RisingWaveParser.FUNC_TOKENS, TokenType.SESSION}  # noqa: RUF012

    FUNCTION_PARSERS = {  # noqa: RUF012 - the parser's own table, extended
        **RisingWaveParser.FUNCTION_PARSERS,
        **{name: (lambda n: lambda self: self._parse_window_function(n))(name) for name in WINDOW_FUNCTIONS},
    }


class Citystream(RisingWave):
    """citystream's SQL: Flink SQL's streaming constructs on a Postgres-like grammar."""

    Parser = _Parser
