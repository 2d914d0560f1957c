"""fluxcd/pkg/envsubst v1.7.0, the `${var}` expander kustomize-controller v1.9 (Flux 2.9) runs over each object's
YAML text in its post-build step: a port of its scanner, parser and functions (parse/scan.go, parse/parse.go,
template.go, funcs.go, path/match.go), kept in their shape so that a reader can check one against the other.

What it means for the manifests, all from that code:
- only `${...}` is an expression; a bare `$var` stays as written, and `$$` becomes `$` anywhere in the text;
- `${var}`, `${#var}`, `${var^}`, `${var^^}`, `${var,}`, `${var,,}`, `${var:n}`, `${var:n:len}`, `${var#p}`,
  `${var##p}`, `${var%p}`, `${var%%p}`, `${var/p/r}`, `${var//p/r}`, `${var/#p/r}`, `${var/%p/r}`, and the
  defaults `${var=d}`, `${var:=d}`, `${var:-d}`, `${var:?d}`, `${var:+d}`, which all give `d` when the value is
  empty or unset (toDefault), nested expressions allowed in `d`;
- `${var-d}` is not parsed ("missing closing brace"), nor is a name that does not start the expression;
- in strict mode (kustomize-controller's StrictPostBuildSubstitutions gate, on by default since v1.9) a variable
  without a value fails the evaluation, unless a default operator is used; the arguments are evaluated first.

Offsets: each top-level node keeps where it stands in the text, so that a caller can name the field a failing
expression comes from. Differences from the Go code: strings are Python strings, so `${#var}` and `${var:n:len}`
count UTF-8 bytes as Go does but the trim patterns match characters (the same for ASCII).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field

# parse/parse.go errors, with their Go texts (they are what Flux prints).
BAD_SUBSTITUTION = "bad substitution"
MISSING_CLOSING_BRACE = "missing closing brace"
PARSE_VARIABLE_NAME = "unable to parse variable name"
PARSE_FUNC_SUBSTITUTION = "unable to parse substitution within function"
PARSE_DEFAULT_FUNCTION = "unable to parse default function"
# template.go errVarNotSet
VAR_NOT_SET = "variable not set (strict mode)"


class EnvsubstError(Exception):
    """A parse error of the text; `offset` is where the expression that failed starts."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


# --- parse/scan.go ----------------------------------------------------------------------------------------------

_EOF = "\x00"  # Go's eof is rune(0): a NUL in the text ends it too
_T_ILLEGAL, _T_EOF, _T_IDENT, _T_LBRACK, _T_RBRACK = range(5)
_SCAN_IDENT, _SCAN_LBRACK, _SCAN_RBRACK, _SCAN_ESCAPE = 1, 2, 4, 8
_DOLLAR, _BACKSLASH = 1, 2
_ESCAPE_ALL = _DOLLAR | _BACKSLASH

Accept = Callable[[str, int], bool]


def _accept_rune(r: str, i: int) -> bool:
    return True


def _accept_ident(r: str, i: int) -> bool:
    # unicode.IsLetter, unicode.IsDigit (Nd only), '_'
    return r.isalpha() or unicodedata.category(r) == "Nd" or r == "_"


def _accept_colon(r: str, i: int) -> bool:
    return r == ":"


def _accept_one_hash(r: str, i: int) -> bool:
    return r == "#" and i == 1


def _accept_not_closing(r: str, i: int) -> bool:
    return r != "}"


def _accept_hash_func(r: str, i: int) -> bool:
    return r == "#" and i < 3


def _accept_percent_func(r: str, i: int) -> bool:
    return r == "%" and i < 3


def _accept_default_func(r: str, i: int) -> bool:
    return (i == 1 and r == ":") or (i == 2 and r in "=-?+")


def _accept_replace_func(r: str, i: int) -> bool:
    return (i == 1 and r == "/") or (i == 2 and r in "/#%")


def _accept_one_equal(r: str, i: int) -> bool:
    return i == 1 and r == "="


def _accept_one_colon(r: str, i: int) -> bool:
    return i == 1 and r == ":"


def _reject_colon_close(r: str, i: int) -> bool:
    return r not in (":", "}")


def _accept_slash(r: str, i: int) -> bool:
    return r == "/"


def _accept_not_slash(r: str, i: int) -> bool:
    return r != "/"


def _accept_casing_func(r: str, i: int) -> bool:
    return r in (",", "^") and i < 3


class _Scanner:
    def __init__(self, buf: str) -> None:
        self.buf = buf
        self.pos = 0
        self.start = 0
        self.width = 0
        self.mode = 0
        self.escape_chars = 0
        self.accept: Accept = _accept_rune
        # Characters skip() removed so far: buffer index + removed = offset in the original text.
        self.removed = 0

    def read(self) -> str:
        if self.pos >= len(self.buf):
            self.width = 0
            return _EOF
        self.width = 1
        self.pos += 1
        return self.buf[self.pos - 1]

    def unread(self) -> None:
        self.pos -= self.width

    def skip(self) -> None:
        self.buf = self.buf[:self.pos - 1] + self.buf[self.pos:]
        self.removed += 1

    def peek(self) -> str:
        r = self.read()
        self.unread()
        return r

    def string(self) -> str:
        return self.buf[self.start:self.pos]

    def scan(self) -> int:
        self.start = self.pos
        r = self.read()
        if r == _EOF:
            return _T_EOF
        if self._scan_lbrack(r):
            return _T_LBRACK
        if self._scan_rbrack(r):
            return _T_RBRACK
        if self._scan_ident(r):
            return _T_IDENT
        return _T_ILLEGAL

    def _scan_ident(self, r: str) -> bool:
        if not self.mode & _SCAN_IDENT:
            return False
        if self._scan_escaped(r):
            self.skip()
        elif not self.accept(r, self.pos - self.start):
            return False
        while True:
            r = self.read()
            if r == _EOF:
                self.unread()
                break
            if self._scan_lbrack(r):
                self.unread()
                self.unread()
                break
            if self._scan_escaped(r):
                self.skip()
                continue
            if not self.accept(r, self.pos - self.start):
                self.unread()
                break
        return True

    def _scan_lbrack(self, r: str) -> bool:
        if not self.mode & _SCAN_LBRACK:
            return False
        if r == "$":
            if self.read() == "{":
                return True
            self.unread()
        return False

    def _scan_rbrack(self, r: str) -> bool:
        return bool(self.mode & _SCAN_RBRACK) and r == "}"

    def _scan_escaped(self, r: str) -> bool:
        if not self.mode & _SCAN_ESCAPE:
            return False
        if r == "$" and self.escape_chars & _DOLLAR and self.peek() == "$":
            return True
        if r == "\\" and self.escape_chars & _BACKSLASH:
            return self.peek() in ("/", "\\")
        return False


# --- parse/node.go and parse/parse.go ---------------------------------------------------------------------------

@dataclass
class Text:
    value: str
    start: int = 0
    end: int = 0


@dataclass
class Func:
    param: str
    name: str = ""
    args: list[Text | Func] = field(default_factory=list)
    start: int = 0
    end: int = 0


class _Parser:
    def __init__(self, text: str) -> None:
        self.s = _Scanner(text)
        self.func_start = 0

    def fail(self, message: str) -> EnvsubstError:
        return EnvsubstError(message, self.func_start)

    def parse_any(self) -> list[Text | Func]:
        """parseAny, iterative: Go recurses once per token and joins left and right, the same sequence."""
        s = self.s
        nodes: list[Text | Func] = []
        while True:
            s.accept = _accept_rune
            s.mode = _SCAN_IDENT | _SCAN_LBRACK | _SCAN_ESCAPE
            s.escape_chars = _DOLLAR
            start = s.pos + s.removed
            token = s.scan()
            if token == _T_IDENT:
                nodes.append(Text(s.string(), start, s.pos + s.removed))
            elif token == _T_EOF:
                return nodes
            elif token == _T_LBRACK:
                self.func_start = start
                node = self.parse_func()
                node.start, node.end = start, s.pos + s.removed
                nodes.append(node)
            else:
                raise self.fail(BAD_SUBSTITUTION)

    def parse_func(self) -> Func:
        s = self.s
        s.escape_chars = _ESCAPE_ALL
        if s.peek() == "#":
            return self.parse_len_func()
        s.accept = _accept_ident
        s.mode = _SCAN_IDENT
        if s.scan() != _T_IDENT:
            raise self.fail(PARSE_VARIABLE_NAME)
        name = s.string()
        following = s.peek()
        if following == ":":
            return self.parse_default_or_substr(name)
        if following == "=":
            return self.parse_default_func(name)
        if following in (",", "^"):
            return self.parse_casing_func(name)
        if following == "/":
            return self.parse_replace_func(name)
        if following == "#":
            return self.parse_remove_func(name, _accept_hash_func)
        if following == "%":
            return self.parse_remove_func(name, _accept_percent_func)
        s.accept = _accept_ident
        s.mode = _SCAN_RBRACK
        if s.scan() != _T_RBRACK:
            raise self.fail(MISSING_CLOSING_BRACE)
        return Func(name)

    def parse_param(self, accept: Accept, mode: int) -> Text | Func:
        s = self.s
        s.accept = accept
        s.mode = mode | _SCAN_LBRACK
        token = s.scan()
        if token == _T_LBRACK:
            return self.parse_func()
        if token in (_T_IDENT, _T_RBRACK):
            return Text(s.string())
        raise self.fail(PARSE_FUNC_SUBSTITUTION)

    def parse_default_or_substr(self, name: str) -> Func:
        s = self.s
        s.read()
        r = s.peek()
        s.unread()
        if r in ("=", "-", "?", "+"):
            return self.parse_default_func(name)
        return self.parse_substr_func(name)

    def parse_substr_func(self, name: str) -> Func:
        s = self.s
        node = Func(name)
        s.accept = _accept_one_colon
        s.mode = _SCAN_IDENT
        if s.scan() != _T_IDENT:
            raise self.fail(BAD_SUBSTITUTION)
        node.name = s.string()
        node.args.append(self.parse_param(_reject_colon_close, _SCAN_IDENT))
        s.accept = _accept_colon
        s.mode = _SCAN_IDENT | _SCAN_RBRACK
        token = s.scan()
        if token == _T_RBRACK:
            return node
        if token != _T_IDENT:
            raise self.fail(BAD_SUBSTITUTION)
        node.args.append(self.parse_param(_accept_not_closing, _SCAN_IDENT))
        self.consume_rbrack()
        return node

    def parse_remove_func(self, name: str, accept: Accept) -> Func:
        s = self.s
        node = Func(name)
        s.accept = accept
        s.mode = _SCAN_IDENT
        if s.scan() != _T_IDENT:
            raise self.fail(BAD_SUBSTITUTION)
        node.name = s.string()
        node.args.append(self.parse_param(_accept_not_closing, _SCAN_IDENT))
        self.consume_rbrack()
        return node

    def parse_replace_func(self, name: str) -> Func:
        s = self.s
        node = Func(name)
        s.accept = _accept_replace_func
        s.mode = _SCAN_IDENT
        if s.scan() != _T_IDENT:
            raise self.fail(BAD_SUBSTITUTION)
        node.name = s.string()
        node.args.append(self.parse_param(_accept_not_slash, _SCAN_IDENT | _SCAN_ESCAPE))
        s.accept = _accept_slash
        s.mode = _SCAN_IDENT
        if s.scan() != _T_IDENT:
            raise self.fail(BAD_SUBSTITUTION)
        if s.peek() == "}":
            self.consume_rbrack()
            return node
        node.args.append(self.parse_param(_accept_not_closing, _SCAN_IDENT | _SCAN_ESCAPE))
        self.consume_rbrack()
        return node

    def parse_default_func(self, name: str) -> Func:
        s = self.s
        node = Func(name)
        s.accept = _accept_one_equal if s.peek() == "=" else _accept_default_func
        s.mode = _SCAN_IDENT
        if s.scan() != _T_IDENT:
            raise self.fail(PARSE_DEFAULT_FUNCTION)
        node.name = s.string()
        while True:
            if s.peek() == "}":
                self.consume_rbrack()
                return node
            node.args.append(self.parse_param(_accept_not_closing, _SCAN_IDENT))

    def parse_casing_func(self, name: str) -> Func:
        s = self.s
        node = Func(name)
        s.accept = _accept_casing_func
        s.mode = _SCAN_IDENT
        if s.scan() != _T_IDENT:
            raise self.fail(BAD_SUBSTITUTION)
        node.name = s.string()
        self.consume_rbrack()
        return node

    def parse_len_func(self) -> Func:
        s = self.s
        node = Func("")
        s.accept = _accept_one_hash
        s.mode = _SCAN_IDENT
        if s.scan() != _T_IDENT:
            raise self.fail(BAD_SUBSTITUTION)
        node.name = s.string()
        s.accept = _accept_ident
        s.mode = _SCAN_IDENT
        if s.scan() != _T_IDENT:
            raise self.fail(BAD_SUBSTITUTION)
        node.param = s.string()
        self.consume_rbrack()
        return node

    def consume_rbrack(self) -> None:
        self.s.mode = _SCAN_RBRACK
        if self.s.scan() != _T_RBRACK:
            raise self.fail(BAD_SUBSTITUTION)


def parse(text: str) -> list[Text | Func]:
    """The text's top-level nodes; EnvsubstError on a malformed expression (Flux fails the whole object)."""
    return _Parser(text).parse_any()


# --- funcs.go and path/match.go ---------------------------------------------------------------------------------

_GO_ATOI = re.compile(r"[+-]?[0-9]+")


def _atoi(text: str) -> int | None:
    if not _GO_ATOI.fullmatch(text):
        return None
    value = int(text)
    return value if -(2 ** 63) <= value < 2 ** 63 else None


def _to_len(s: str, *args: str) -> str:
    return str(len(s.encode()))


def _to_lower(s: str, *args: str) -> str:
    return s.lower()


def _to_upper(s: str, *args: str) -> str:
    return s.upper()


def _to_lower_first(s: str, *args: str) -> str:
    return s[:1].lower() + s[1:]


def _to_upper_first(s: str, *args: str) -> str:
    return s[:1].upper() + s[1:]


def _to_default(s: str, *args: str) -> str:
    return "".join(args) if not s and args else s


def _to_substr(s: str, *args: str) -> str:
    if not args:
        return s
    data = s.encode()
    pos = _atoi(args[0])
    if pos is None:
        return s
    if pos < 0:
        pos = max(len(data) + pos, 0)
    if len(args) == 1:
        return data[pos:].decode(errors="surrogateescape") if pos < len(data) else ""
    length = _atoi(args[1])
    if length is None:
        return s
    if pos + length >= len(data):
        return data[pos:].decode(errors="surrogateescape") if pos < len(data) else ""
    return data[pos:pos + length].decode(errors="surrogateescape")


def _replace_all(s: str, *args: str) -> str:
    if not args:
        return s
    return s.replace(args[0], args[1] if len(args) > 1 else "")


def _replace_first(s: str, *args: str) -> str:
    if not args:
        return s
    return s.replace(args[0], args[1] if len(args) > 1 else "", 1)


def _replace_prefix(s: str, *args: str) -> str:
    if len(args) != 2:
        return s
    return s.replace(args[0], args[1], 1) if s.startswith(args[0]) else s


def _replace_suffix(s: str, *args: str) -> str:
    if len(args) != 2:
        return s
    return s.removesuffix(args[0]) + args[1] if s.endswith(args[0]) else s


def _trim_shortest(s: str, pattern: str) -> str:
    shortest = ""
    for i in range(len(s)):
        matched = _match(pattern, s[:len(s) - i])
        if matched is None:
            return s
        if matched:
            shortest = s[:len(s) - i]
    return s.removeprefix(shortest) if shortest else s


def _trim_longest(s: str, pattern: str) -> str:
    for i in range(len(s)):
        matched = _match(pattern, s[:len(s) - i])
        if matched is None:
            return s
        if matched:
            return s.removeprefix(s[:len(s) - i])
    return s


def _trim_shortest_prefix(s: str, *args: str) -> str:
    return _trim_shortest(s, args[0]) if args else s


def _trim_shortest_suffix(s: str, *args: str) -> str:
    return _trim_shortest(s[::-1], args[0][::-1])[::-1] if args else s


def _trim_longest_prefix(s: str, *args: str) -> str:
    return _trim_longest(s, args[0]) if args else s


def _trim_longest_suffix(s: str, *args: str) -> str:
    return _trim_longest(s[::-1], args[0][::-1])[::-1] if args else s


class _BadPattern(Exception):
    pass


def _match(pattern: str, name: str) -> bool | None:
    """path.Match of the envsubst fork (a trailing * matches the rest, '/' included); None: a bad pattern."""
    try:
        return _match_pattern(pattern, name)
    except _BadPattern:
        return None


def _match_pattern(pattern: str, name: str) -> bool:
    while pattern:
        star, chunk, pattern = _scan_chunk(pattern)
        if star and chunk == "":
            return True
        rest, ok = _match_chunk(chunk, name)
        if ok and (not rest or pattern):
            name = rest
            continue
        if star:
            for i in range(len(name)):
                rest, ok = _match_chunk(chunk, name[i + 1:])
                if ok:
                    if not pattern and rest:
                        continue
                    name = rest
                    break
            else:
                return False
            continue
        return False
    return not name


def _scan_chunk(pattern: str) -> tuple[bool, str, str]:
    star = False
    while pattern and pattern[0] == "*":
        pattern = pattern[1:]
        star = True
    in_range = False
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            if i + 1 < len(pattern):
                i += 1
        elif c == "[":
            in_range = True
        elif c == "]":
            in_range = False
        elif c == "*" and not in_range:
            break
        i += 1
    return star, pattern[:i], pattern[i:]


def _match_chunk(chunk: str, s: str) -> tuple[str, bool]:
    while chunk:
        if not s:
            return "", False
        c = chunk[0]
        if c == "[":
            r, s = s[0], s[1:]
            chunk = chunk[1:]
            negated = bool(chunk) and chunk[0] == "^"
            if negated:
                chunk = chunk[1:]
            matched = False
            ranges = 0
            while True:
                if chunk and chunk[0] == "]" and ranges > 0:
                    chunk = chunk[1:]
                    break
                lo, chunk = _get_esc(chunk)
                hi = lo
                if chunk[0] == "-":
                    hi, chunk = _get_esc(chunk[1:])
                if lo <= r <= hi:
                    matched = True
                ranges += 1
            if matched == negated:
                return "", False
        elif c == "?":
            s, chunk = s[1:], chunk[1:]
        else:
            if c == "\\":
                chunk = chunk[1:]
                if not chunk:
                    raise _BadPattern
            if chunk[0] != s[0]:
                return "", False
            s, chunk = s[1:], chunk[1:]
    return s, True


def _get_esc(chunk: str) -> tuple[str, str]:
    if not chunk or chunk[0] in "-]":
        raise _BadPattern
    if chunk[0] == "\\":
        chunk = chunk[1:]
        if not chunk:
            raise _BadPattern
    r, rest = chunk[0], chunk[1:]
    if not rest:
        raise _BadPattern
    return r, rest


def _function(name: str, args: int) -> Callable[..., str]:
    """template.go lookupFunc."""
    if name == "#":
        return _to_len if args == 0 else _trim_shortest_prefix
    return {",": _to_lower_first, ",,": _to_lower, "^": _to_upper_first, "^^": _to_upper,
            "##": _trim_longest_prefix, "%": _trim_shortest_suffix, "%%": _trim_longest_suffix, ":": _to_substr,
            "/#": _replace_prefix, "/%": _replace_suffix, "/": _replace_first, "//": _replace_all
            }.get(name, _to_default)


_DEFAULT_OPERATORS = ("-", "+", "=", "?", ":-", ":+", ":=", ":?")


# --- template.go ------------------------------------------------------------------------------------------------

@dataclass
class Missing:
    """A variable without a value, read where no default applies: strict mode fails on the first one."""

    name: str
    # Offset of the top-level expression it is read in.
    offset: int


@dataclass
class Evaluation:
    text: str
    missing: list[Missing]
    # (start, end) in the input of each top-level expression, and what it became.
    expressions: list[tuple[int, int, str]]


class OutputBound(Exception):
    """The expanded text would be longer than the caller's bound (not Flux's: kustomize-controller has none, and runs
    out of memory instead)."""

    def __init__(self, length: int, bound: int, offset: int) -> None:
        super().__init__(f"{length:,} characters once substituted, over the {bound:,}-character bound")
        self.length, self.bound, self.offset = length, bound, offset


def evaluate(text: str, variables: dict[str, str], nodes: list[Text | Func] | None = None,
             max_length: int | None = None) -> Evaluation:
    """The text with every expression expanded. A variable without a value becomes "" (non-strict mode) and is
    listed in `missing` (what strict mode fails on), so that a caller reports them all at once. With `max_length`,
    OutputBound is raised before a longer text is joined (a large variable read many times)."""
    nodes = parse(text) if nodes is None else nodes
    length = 0
    missing: list[Missing] = []
    out: list[str] = []
    expressions: list[tuple[int, int, str]] = []

    def run(node: Text | Func, offset: int) -> str:
        if isinstance(node, Text):
            return node.value
        args = [run(arg, offset) for arg in node.args]
        exists = node.param in variables
        if not exists and node.name not in _DEFAULT_OPERATORS:
            missing.append(Missing(node.param, offset))
        return _function(node.name, len(args))(variables.get(node.param, ""), *args)

    for node in nodes:
        value = run(node, node.start)
        length += len(value)
        if max_length is not None and length > max_length:
            raise OutputBound(length, max_length, node.start)
        out.append(value)
        if isinstance(node, Func):
            expressions.append((node.start, node.end, value))
    return Evaluation("".join(out), missing, expressions)


def variable_names(text: str) -> list[str]:
    """The variables a text reads, in order, once each; [] when it does not parse (Flux would fail on it)."""
    try:
        nodes = parse(text)
    except EnvsubstError:
        return []
    names: list[str] = []

    def walk(node: Text | Func) -> None:
        if isinstance(node, Func):
            names.append(node.param)
            for arg in node.args:
                walk(arg)

    for node in nodes:
        walk(node)
    return list(dict.fromkeys(names))
