"""YAML as Flux and Kubernetes' Go clients write and read it (sigs.k8s.io/yaml over go-yaml v2), which is not
how PyYAML reads it: go-yaml v2 reads `1e3` as a float and a date as a string, where PyYAML reads a string and a
date. Used in two places:

- Every kustomize and Helm output the tool reads (`kubernetes_objects`): kustomize-controller reads its build with
  fluxcd/pkg ssa ReadObjects and helm-controller its render with the kube client's Builder; both go through
  sigs.k8s.io/yaml YAMLToJSON (go-yaml v2's resolution, map keys made strings), then JSON, where a whole float
  becomes an integer.
- kustomize-controller's post-build step, around envsubst (fluxcd/pkg kustomize v1.35 kustomize_varsub.go,
  SubstituteVariables):

1. `res.AsYAML()`: the object as JSON, then sigs.k8s.io/yaml JSONToYAML, i.e. go-yaml v2's Marshal
   (go.yaml.in/yaml/v2 v2.4.4 encode.go `stringv`): a string is plain when go-yaml v2 would read it back as a
   string, a literal block when it holds a newline, double-quoted otherwise; the emitter (a port of libyaml, as
   PyYAML's is) may still quote a plain string, and folds lines at 80 columns.
2. envsubst on that text (envsubst.py).
3. sigs.k8s.io/yaml YAMLToJSON: go-yaml v2's Unmarshal with its YAML 1.1 resolution (resolve.go: `y`, `yes`,
   `on` are booleans, `0x1F` and `012` integers, `1e3` a float, a timestamp stays a string), map keys made
   strings (convertToJSONableObject).
4. `res.UnmarshalJSON`: every JSON number becomes a float64 (encoding/json), which reaches the API server as
   encoding/json writes it: a whole number below 1e21 as digits (an integer to Kubernetes), any other as a float.
   So 1.0 becomes 1, and an integer beyond 2^53 loses precision, in every object a substitution runs on.

So an unquoted `replicas: ${n}` with n = "3" becomes the integer 3, and so does a quoted `"${n}"` in Git: the
quotes are gone after step 1. Flux's documented way to keep a string is `${quote}${n}${quote}` with quote = '"'.
"""

from __future__ import annotations

import datetime
import math
import re
from decimal import Decimal
from typing import Any

import yaml

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_BaseDumper = getattr(yaml, "CDumper", yaml.Dumper)

_STR, _BOOL, _NULL, _INT, _FLOAT, _TIMESTAMP = "str", "bool", "null", "int", "float", "timestamp"
_MAP: dict[str, tuple[str, Any]] = {}
for _values, _entry in (
        (("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"), (_BOOL, True)),
        (("n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"), (_BOOL, False)),
        (("", "~", "null", "Null", "NULL"), (_NULL, None)),
        ((".nan", ".NaN", ".NAN"), (_FLOAT, math.nan)),
        ((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), (_FLOAT, math.inf)),
        (("-.inf", "-.Inf", "-.INF"), (_FLOAT, -math.inf)),
        ):
    for _value in _values:
        _MAP[_value] = _entry

_YAML_STYLE_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_BASE60_FLOAT = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?")
# strconv.ParseInt(s, 0, 64) / ParseUint: a base prefix, or a leading 0 for octal.
_GO_INT = re.compile(r"([+-]?)(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)")
_DATE = r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})"
_CLOCK = r"([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2})(?:\.[0-9]+)?"
# resolve.go allowedTimestampFormats, as time.Parse reads them.
_TIMESTAMPS = (re.compile(_DATE + "[Tt]" + _CLOCK + r"(?:Z|[+-][0-9]{2}:[0-9]{2})"),
               re.compile(_DATE + " " + _CLOCK), re.compile(_DATE))


def _go_int(text: str) -> int | None:
    match = _GO_INT.fullmatch(text)
    if not match:
        return None
    sign, digits = match.groups()
    if digits[:2].lower() in ("0x", "0o", "0b"):
        value = int(digits, 0)
    else:
        value = int(digits, 8) if len(digits) > 1 and digits[0] == "0" else int(digits)
    value = -value if sign == "-" else value
    if -(2 ** 63) <= value < 2 ** 63:
        return value
    # ParseUint: no sign, up to 2^64 - 1.
    return value if not sign and value < 2 ** 64 else None


def _is_timestamp(text: str) -> bool:
    for form in _TIMESTAMPS:
        match = form.fullmatch(text)
        if match:
            year, month, day, *clock = (int(part) for part in match.groups()[:6])
            try:
                datetime.datetime(year, month, day, *clock)  # type: ignore[arg-type]  # clock: hour, minute, second
            except ValueError:
                return False
            return True
    return False


def resolve(text: str) -> tuple[str, Any]:
    """go-yaml v2 resolve("", text) for a plain scalar: its kind and value."""
    hint = text[:1]
    # The table is consulted only for what may start one of its entries (resolveTable): "<<" is a string.
    if (not hint or hint in "+-yYnNtTfFoO~." or hint.isascii() and hint.isdigit()) and text in _MAP:
        return _MAP[text]
    if hint == ".":
        if "_" not in text:
            try:
                value = float(text)
            except ValueError:
                return _STR, text
            if not math.isinf(value):
                return _FLOAT, value
    elif hint and (hint.isdigit() and hint.isascii() or hint in "+-"):
        if _is_timestamp(text):
            return _TIMESTAMP, text
        plain = text.replace("_", "")
        number = _go_int(plain)
        if number is not None:
            return _INT, number
        if _YAML_STYLE_FLOAT.fullmatch(plain):
            value = float(plain)
            if not math.isinf(value):
                return _FLOAT, value
    return _STR, text


def go_format_float(value: float) -> str:
    """strconv.FormatFloat(value, 'g', -1, 64), as go-yaml writes a float: an exponent below 1e-4 and from 1e6."""
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    digits, exponent = _shortest(value)
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    if exponent < -4 or exponent >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    return sign + _fixed(digits, exponent)


def _shortest(value: float) -> tuple[str, int]:
    """The shortest digits that read back as |value| (Python's repr finds the same as Go's), and the decimal
    exponent of the first one."""
    if value == 0:
        return "0", 0
    number = Decimal(repr(abs(value))).normalize()
    return "".join(str(d) for d in number.as_tuple().digits), number.adjusted()


def _fixed(digits: str, exponent: int) -> str:
    """The shortest digits without exponent (Go's %f with precision -1): zeros filled in, never more digits."""
    if exponent >= len(digits) - 1:
        return digits + "0" * (exponent - len(digits) + 1)
    if exponent >= 0:
        return digits[:exponent + 1] + "." + digits[exponent + 1:]
    return "0." + "0" * (-exponent - 1) + digits


def _go_json_float(value: float) -> str:
    """encoding/json's float64: plain digits from 1e-6 up to 1e21, the exponent form outside."""
    if value == 0 or 1e-6 <= abs(value) < 1e21:
        return ("-" if value < 0 else "") + _fixed(*_shortest(value))
    return go_format_float(value)


# --- step 1: JSONToYAML --------------------------------------------------------------------------------------------

def _scalar(value: str, style: str | None) -> yaml.ScalarEvent:
    return yaml.ScalarEvent(None, None, (True, True), value, style=style)


def _string_event(text: str) -> yaml.ScalarEvent:
    if "\n" in text:
        return _scalar(text, "|")
    kind, _ = resolve(text)
    plain = kind == _STR and not _BASE60_FLOAT.fullmatch(text)
    return _scalar(text, None if plain else '"')


def _events(value: Any, out: list[yaml.Event]) -> None:
    if isinstance(value, dict):
        out.append(yaml.MappingStartEvent(None, None, True, flow_style=not value))
        for key, item in value.items():
            _events(key if isinstance(key, str) else _json_key(key), out)
            _events(item, out)
        out.append(yaml.MappingEndEvent())
    elif isinstance(value, list):
        out.append(yaml.SequenceStartEvent(None, None, True, flow_style=not value))
        for item in value:
            _events(item, out)
        out.append(yaml.SequenceEndEvent())
    elif isinstance(value, bool):
        out.append(_scalar("true" if value else "false", None))
    elif value is None:
        out.append(_scalar("null", None))
    elif isinstance(value, int):
        out.append(_scalar(str(value), None))
    elif isinstance(value, float):
        # JSON writes it, go-yaml v2 reads the JSON number (an int when it has no dot or exponent) and writes that.
        kind, number = resolve(_go_json_float(value))
        out.append(_scalar(str(number) if kind == _INT else go_format_float(float(number)), None))
    elif isinstance(value, (datetime.date, datetime.datetime)):
        out.append(_string_event(value.isoformat()))
    else:
        out.append(_string_event(str(value)))


def _json_key(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int):
        return str(key)
    if isinstance(key, float):
        return go_format_float(key)
    return str(key)


def to_yaml(obj: Any) -> str:
    """The object as `res.AsYAML()` writes it (key order kept: Go sorts keys, which moves no value)."""
    events: list[yaml.Event] = [yaml.StreamStartEvent(), yaml.DocumentStartEvent(explicit=False)]
    _events(obj, events)
    events += [yaml.DocumentEndEvent(explicit=False), yaml.StreamEndEvent()]
    text = yaml.emit(events, Dumper=_BaseDumper, allow_unicode=True, width=80, indent=2)
    # libyaml ends a document whose last scalar keeps its trailing newlines (`|+`) with `...`; go-yaml v2 does not.
    return text.removesuffix("...\n") if text.endswith("\n...\n") else text


# --- step 3 and 4: YAMLToJSON, then the float64 round trip -------------------------------------------------------

class GoYamlV2Loader(_BaseLoader):  # type: ignore[misc,valid-type]
    """PyYAML's libyaml parser (go-yaml v2 is a port of libyaml: same grammar, same errors) with go-yaml v2's
    resolution of plain scalars."""

    def resolve(self, kind, value, implicit):
        if kind is yaml.ScalarNode and implicit[0]:
            # A plain `<<` key merges (decode.go isMerge); as a value it is the string "<<".
            return "tag:yaml.org,2002:merge" if value == "<<" else f"tag:go-yaml-v2:{resolve(value)[0]}"
        return yaml.resolver.Resolver.resolve(self, kind, value, implicit)

    def construct_undefined(self, node):
        # A tag go-yaml v2 cannot resolve (`!tag`) leaves the value as it is written.
        if isinstance(node, yaml.MappingNode):
            return self.construct_mapping(node)
        if isinstance(node, yaml.SequenceNode):
            return self.construct_sequence(node)
        return node.value


class _GoYamlV2PythonLoader(yaml.SafeLoader):
    """The same reading in pure Python, for the one thing libyaml's composer refuses and go-yaml v2 accepts: an
    anchor defined twice (the later one wins)."""

    resolve = GoYamlV2Loader.resolve
    construct_undefined = GoYamlV2Loader.construct_undefined

    def compose_node(self, parent, index):
        event = self.peek_event()
        if not isinstance(event, yaml.AliasEvent) and event.anchor in self.anchors:
            del self.anchors[event.anchor]
        return super().compose_node(parent, index)


def _construct(loader: GoYamlV2Loader, node: yaml.ScalarNode) -> Any:
    return resolve(node.value)[1]


for _loader in (GoYamlV2Loader, _GoYamlV2PythonLoader):
    for _kind in (_BOOL, _NULL, _INT, _FLOAT):
        _loader.add_constructor(f"tag:go-yaml-v2:{_kind}", _construct)
    # types-PyYAML types a constructor by its loader class; SafeLoader's serves both loaders here.
    for _kind in (_STR, _TIMESTAMP):
        _loader.add_constructor(f"tag:go-yaml-v2:{_kind}", yaml.SafeLoader.construct_yaml_str)  # type: ignore[type-var]
    _loader.add_constructor("tag:yaml.org,2002:merge", yaml.SafeLoader.construct_yaml_str)  # type: ignore[type-var]
    _loader.add_constructor(None, _loader.construct_undefined)
    _loader.yaml_implicit_resolvers = {}


class UnsupportedValue(ValueError):
    """A value JSON cannot hold: Flux fails on it (the message is Go's)."""


def from_yaml(text: str) -> Any:
    """The first document of the text as YAMLToJSON and res.UnmarshalJSON leave it. yaml.YAMLError on broken YAML,
    UnsupportedValue on what JSON cannot hold."""
    _require_utf8(text)
    try:
        document = _first_document(GoYamlV2Loader, text)
    except yaml.composer.ComposerError as error:
        if "found duplicate anchor" not in str(error):
            raise
        document = _first_document(_GoYamlV2PythonLoader, text)
    return _jsonable(document)


def from_yaml_all(text: str) -> list[Any]:
    """Every document of a stream as Kubernetes reads what `flux build` prints (ssautil.ReadObjects: YAMLToJSON
    per document), numbers as they go to the API server."""
    loader = GoYamlV2Loader(text)
    try:
        documents = []
        while loader.check_data():
            documents.append(loader.get_data())
    finally:
        loader.dispose()
    return [_jsonable(document) for document in documents]


def _require_utf8(text: str) -> None:
    try:
        text.encode()
    except UnicodeEncodeError:
        # ${var:n:len} counts bytes and can cut a character: go-yaml's reader refuses the text.
        raise yaml.YAMLError("invalid UTF-8 in the substituted text (a substring cut a character)") from None


def _first_document(loader_class: type, text: str) -> Any:
    # go-yaml v2's Unmarshal reads the first document only.
    loader = loader_class(text)
    try:
        return loader.get_data() if loader.check_data() else None
    finally:
        loader.dispose()


def kubernetes_objects(documents: list[Any]) -> list[Any]:
    """Documents that a YAML loader with go-yaml v2's resolution read (the bounded loader's Kubernetes mode), as
    YAMLToJSON and apimachinery's JSON leave them: string keys, a whole float as an integer (1.0 is 1), an
    integer exact. UnsupportedValue on what JSON cannot hold."""
    return [_jsonable(document, exact_integers=True) for document in documents]


def _jsonable(value: Any, exact_integers: bool = False) -> Any:
    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            if key is None or isinstance(key, (dict, list, tuple)):
                raise UnsupportedValue(f"unsupported map key of type: {_go_type(key)}, key: {key!r}")
            result[key if isinstance(key, str) else _string_key(key)] = _jsonable(item, exact_integers)
        return result
    if isinstance(value, list):
        return [_jsonable(item, exact_integers) for item in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if exact_integers and isinstance(value, int):
        # apimachinery's JSON reads a number without a fraction as an int64, exactly.
        return value
    if isinstance(value, (int, float)):
        if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
            go_text = "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
            raise UnsupportedValue(f"json: unsupported value: {go_text}")
        # From here on the number is a float64 (json.Unmarshal), which goes to the API server as encoding/json
        # writes it: digits only, an integer to Kubernetes, up to 1e21.
        text = _go_json_float(float(value))
        return int(text) if re.fullmatch(r"-?[0-9]+", text) else float(value)
    return value


def _string_key(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int):
        return str(key)
    # Go formats a float key with 32-bit precision; 64-bit here (a float as a map key is unheard of).
    return go_format_float(key)


def _go_type(key: Any) -> str:
    return {type(None): "<nil>", dict: "map[interface {}]interface {}", list: "[]interface {}"}.get(
        type(key), type(key).__name__)
