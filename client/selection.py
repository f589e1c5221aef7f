"""Which files of a folder ``upload`` sends: ``--include``/``--exclude`` rules, rsync-like.

Rules are tried in the order given on the command line; the first whose
pattern matches a file decides (include or exclude). A file no rule
matches is uploaded, except when every rule is an ``--include``: then only
what they match is sent (``--include '*.py'`` means "only Python files").

A pattern matches the file's path relative to the folder named on the
command line (``notes/a.txt`` for ``upload docs`` and ``docs/notes/a.txt``;
a file named on the command line is matched by its base name):

    *        any characters except '/'
    ?        one character except '/'
    [abc]    one of the characters (``[!abc]`` none of them)
    **       any characters, '/' included (``**/`` also matches no folder)

A pattern without '/' matches the base name or any folder name on the way
(``*.log``, ``node_modules``); a pattern with '/' matches the whole relative
path, or a folder it starts with (``docs/api`` takes ``docs/api/x.md``); a
leading '/' changes nothing, a trailing '/' matches folders only (``build/``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

INCLUDE = "include"
EXCLUDE = "exclude"


@dataclass(frozen=True)
class Rule:
    kind: str  # INCLUDE or EXCLUDE
    pattern: str

    @cached_property
    def _regex(self) -> re.Pattern[str]:
        return re.compile(translate(self.pattern.strip("/")))

    @property
    def folders_only(self) -> bool:
        return self.pattern.endswith("/")

    @property
    def anchored(self) -> bool:
        return "/" in self.pattern.strip("/")

    def matches(self, relative: str) -> bool:
        parts = relative.split("/")
        if self.anchored:
            # The whole path, or one of its folders (a prefix of whole components).
            ends = range(1, len(parts)) if self.folders_only else range(1, len(parts) + 1)
            return any(self._regex.fullmatch("/".join(parts[:end])) for end in ends)
        names = parts[:-1] if self.folders_only else parts
        return any(self._regex.fullmatch(name) for name in names)


@dataclass(frozen=True)
class Selection:
    rules: tuple[Rule, ...] = ()

    @classmethod
    def of(cls, rules: Iterable[tuple[str, str]]) -> Selection:
        """From ``(kind, pattern)`` pairs in command-line order."""
        return cls(tuple(Rule(kind, pattern) for kind, pattern in rules))

    @property
    def default(self) -> bool:
        """Whether a file no rule matches is taken."""
        return not self.rules or any(r.kind == EXCLUDE for r in self.rules)

    def wants(self, relative: str) -> bool:
        for rule in self.rules:
            if rule.matches(relative):
                return rule.kind == INCLUDE
        return self.default

    def __bool__(self) -> bool:
        return bool(self.rules)


def translate(pattern: str) -> str:
    """A glob pattern as a regular expression (for ``fullmatch``), with ``**`` crossing folders."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif char == "*":
            out.append("[^/]*")
            i += 1
        elif char == "?":
            out.append("[^/]")
            i += 1
        elif char == "[" and (end := pattern.find("]", i + 2 if pattern.startswith("[!", i) else i + 1)) != -1:
            body = pattern[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(char))
            i += 1
    return "".join(out)
