"""POST /v1/graphql: the Hasura endpoint older servers answer "who am I" through.

A server without /api/v1 is asked for the user with a GraphQL query instead
(the official client's `query UserInfo { users { name username firstname id
info: emails { email features { ... } } } }`). This module answers queries
over the `users` root field with the emulator's one user, as Hasura would for
a caller allowed to see their own row only: fields, aliases and nested
selections are honoured, arguments are accepted and ignored, and anything else
(another root field, fragments, directives, mutations) is a Hasura-style
error: HTTP 200 with `{"errors": [...]}` and no `data`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from jhfs_emulator.context import USERNAME, json_answer

USER_ID = 1
USER = {
    "id": USER_ID,
    "username": USERNAME,
    "name": "Emulator User",
    "firstname": "Emulator",
    "emails": [{"email": f"{USERNAME}@example.org", "features": []}],
}
ROOT_FIELDS = {"users": [USER]}

# Names, punctuation and string literals; blanks, commas and comments separate them.
_TOKEN = re.compile(r'[_A-Za-z][_0-9A-Za-z]*|"(?:[^"\\\n]|\\.)*"|\.\.\.|-?[0-9][0-9.eE+-]*|\S')
_IGNORED = re.compile(r"(?:[\s,]|#[^\n]*)+")


class GraphQLError(ValueError):
    """A query Hasura refuses; `code` is its extensions.code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Field:
    key: str  # the alias, or the field name: the key in the answer
    name: str
    selection: tuple[Field, ...]


def _tokens(query: str) -> list[str]:
    tokens, position = [], 0
    while position < len(query):
        blank = _IGNORED.match(query, position)
        if blank is not None:
            position = blank.end()
            continue
        token = _TOKEN.match(query, position)
        assert token is not None  # \S matches any character that is not blank
        tokens.append(token.group())
        position = token.end()
    return tokens


class _Parser:
    """The subset of GraphQL the user query needs: one query of fields with arguments."""

    def __init__(self, query: str) -> None:
        self._tokens = _tokens(query)
        self._next = 0

    def _peek(self) -> str | None:
        return self._tokens[self._next] if self._next < len(self._tokens) else None

    def _take(self) -> str:
        token = self._peek()
        if token is None:
            raise GraphQLError("parse-failed", "unexpected end of the query")
        self._next += 1
        return token

    def _expect(self, wanted: str) -> None:
        token = self._take()
        if token != wanted:
            raise GraphQLError("parse-failed", f"expected {wanted!r}, found {token!r}")

    def operation(self) -> tuple[Field, ...]:
        if self._peek() != "{":
            kind = self._take()
            if kind != "query":
                raise GraphQLError("validation-failed", f"unsupported operation {kind!r}")
            if self._peek() not in ("{", "(", None):
                self._take()  # the operation's name
            if self._peek() == "(":
                self._skip_parentheses()  # variable definitions
        selection = self._selection()
        if self._peek() is not None:
            raise GraphQLError("parse-failed", "one operation per request")
        return selection

    def _selection(self) -> tuple[Field, ...]:
        self._expect("{")
        fields = []
        while self._peek() != "}":
            fields.append(self._field())
        self._take()
        if not fields:
            raise GraphQLError("parse-failed", "an empty selection set")
        return tuple(fields)

    def _field(self) -> Field:
        name = self._name()
        key = name
        if self._peek() == ":":
            self._take()
            name = self._name()
        if self._peek() == "(":
            self._skip_parentheses()  # arguments: the one user is every filter's answer
        selection = self._selection() if self._peek() == "{" else ()
        return Field(key, name, selection)

    def _name(self) -> str:
        token = self._take()
        if not re.fullmatch(r"[_A-Za-z][_0-9A-Za-z]*", token):
            raise GraphQLError("parse-failed", f"expected a field, found {token!r}")
        return token

    def _skip_parentheses(self) -> None:
        self._expect("(")
        depth = 1
        while depth:
            token = self._take()
            depth += {"(": 1, ")": -1}.get(token, 0)


def _resolve(value: Any, selection: tuple[Field, ...], type_name: str) -> Any:
    if isinstance(value, list):
        return [_resolve(item, selection, type_name) for item in value]
    answer = {}
    for field in selection:
        if field.name not in value:
            raise GraphQLError(
                "validation-failed", f"field '{field.name}' not found in type: '{type_name}'"
            )
        inner = value[field.name]
        if isinstance(inner, list | dict) != bool(field.selection):
            raise GraphQLError(
                "validation-failed", f"field '{field.name}' has a wrong selection set"
            )
        if field.selection:
            inner = _resolve(inner, field.selection, field.name)
        answer[field.key] = inner
    return answer


def _error(code: str, message: str) -> web.Response:
    error = {"extensions": {"path": "$", "code": code}, "message": message}
    return json_answer({"errors": [error]})


async def graphql(request: web.Request) -> web.Response:
    try:
        body: Any = json.loads(await request.read())
    except ValueError:
        return _error("invalid-json", "the body is not JSON")
    query = body.get("query") if isinstance(body, dict) else None
    if not isinstance(query, str):
        return _error("parse-failed", "the body needs a string query")
    try:
        data = _resolve(ROOT_FIELDS, _Parser(query).operation(), "query_root")
    except GraphQLError as error:
        return _error(error.code, str(error))
    return json_answer({"data": data})
