"""Jinja2 templating as Ansible does it: native values, lazy variables, Ansible's filters and tests.

``Templar(variables).render(value)`` renders every string inside ``value`` (dicts, lists, tuples,
keys too). A string that is exactly one ``{{ expr }}`` gives the expression's native value (a
list stays a list, an int an int), like ansible-core 2.19; anything else gives a string.

Why it is shaped so:
- Variables are resolved *lazily*: a variable whose value is itself a template (``url: "http://
  {{ ansible_host }}"`` in group_vars) is rendered when a template reads it, in the same
  context, with loop detection — so only the variables a template uses must be defined.
- Undefined is strict (``TemplateError`` naming the variable) except where Ansible is lenient:
  ``default``/``d``, ``is defined``/``is undefined``, and chained look-ups under them
  (``x.y.z | default(1)`` with ``x`` undefined is fine).
- One Jinja2 environment per process (building one costs milliseconds) and a cache of compiled
  templates keyed by source: a playbook renders the same few hundred strings for every host.
- ``evaluate`` is for ``when``/``changed_when``/``failed_when``/``until``/``assert that``.
- ``render_file`` is the ``template`` module's renderer: ``trim_blocks`` on, trailing newline kept,
  ``{% include %}``/``{% import %}`` found on the search path, ``#jinja2:`` header overrides.

The filters and tests are those real playbooks use (see ``docs/provisioner.md``); set operations
(``union``, ``difference``, ``intersect``) keep first-seen order where Ansible's order is a set's.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shlex
import subprocess
import threading
from collections import ChainMap
from collections.abc import Mapping
from itertools import zip_longest
from pathlib import Path
from typing import Any, Callable, Iterable

import jinja2
import jinja2.nodes as jnodes
import yaml
from jinja2.nativetypes import NativeCodeGenerator, NativeEnvironment
from jinja2.lexer import TOKEN_STRING, TOKEN_VARIABLE_BEGIN, TOKEN_VARIABLE_END, Lexer
from jinja2.runtime import Context

from clusterctl.provision.errors import TemplateError

_TEMPLATE_MARKERS = ("{{", "{%", "{#")
_CACHE_LIMIT = 8192


# ------------------------------------------------------------------ undefined
class AnsibleUndefined(jinja2.ChainableUndefined, jinja2.StrictUndefined):
    """Strict when used (printed, iterated, compared, tested for truth); chainable when looked into,
    so ``a.b.c | default(x)`` and ``a.b is defined`` work when ``a`` is undefined."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        obj = self._undefined_obj
        if isinstance(obj, _PassThrough) and self._undefined_hint is None:
            return f"{obj!r} has no attribute {self._undefined_name!r}"
        return super()._undefined_message

    def __getattr__(self, name: str) -> Any:
        if name[:2] == "__":
            raise AttributeError(name)
        return self


# -------------------------------------------------------------------- context
class _LazyContext(Context):
    """Keeps the variables lazy when Jinja hands the context to an include or import."""

    def get_all(self) -> Mapping[str, Any]:  # type: ignore[override]
        if not self.vars:
            return self.parent
        return ChainMap(self.vars, self.parent)  # type: ignore[arg-type]


class _LazyVars(Mapping):
    """The variables a template sees: values rendered on first read, then cached."""

    def __init__(self, templar: "Templar") -> None:
        self._templar = templar
        self._cache: dict[str, Any] = {}
        self._resolving: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        if key in self._cache:
            return self._cache[key]
        variables = self._templar.variables
        if key in variables:
            raw = variables[key]
            if not _needs_render(raw):
                self._cache[key] = raw  # big plain values (facts) are scanned once per Templar
                return raw
            if key in self._resolving:
                raise TemplateError(f"recursive loop detected in template: variable {key!r} refers to itself")
            self._resolving.add(key)
            try:
                value = self._templar.render(raw)
            finally:
                self._resolving.discard(key)
            self._cache[key] = value
            return value
        if key == "vars":
            return self
        if key in _ENV.globals:
            return _ENV.globals[key]
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return key in self._templar.variables or key == "vars" or key in _ENV.globals

    def __iter__(self):
        yield from self._templar.variables
        yield from (k for k in _ENV.globals if k not in self._templar.variables)

    def __len__(self) -> int:
        return len(self._templar.variables)


def _needs_render(value: Any) -> bool:
    if isinstance(value, str):
        return any(m in value for m in _TEMPLATE_MARKERS)
    if isinstance(value, Mapping) and not isinstance(value, _PassThrough):
        return any(_needs_render(k) or _needs_render(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_needs_render(v) for v in value)
    return False


class _PassThrough:
    """Marker base for lazy mappings (hostvars) that render their own values."""


# ------------------------------------------------------------------- templar
class Templar:
    """Renders values and expressions against one host's variables."""

    def __init__(self, variables: Mapping[str, Any], *, searchpath: list[str] | None = None):
        self.variables = variables
        self.searchpath = [str(p) for p in (searchpath or [])]
        self._lazy = _LazyVars(self)

    # -------------------------------------------------------------- public API
    def is_template(self, value: Any) -> bool:
        return isinstance(value, str) and any(m in value for m in _TEMPLATE_MARKERS)

    def render(self, value: Any) -> Any:
        """Render every template string inside ``value``; single-expression strings stay native."""
        if isinstance(value, str):
            if not self.is_template(value):
                return value
            return self._render_string(value)
        if isinstance(value, _PassThrough):
            return value
        if isinstance(value, Mapping):
            return {self.render(k): self.render(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.render(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self.render(v) for v in value)
        return value

    def evaluate(self, expr: Any) -> Any:
        """Evaluate a bare Jinja2 expression (``when``, ``until``, ``that``...) to a Python value.

        A bool is itself; a list is true when every item is; a string with ``{{ }}`` in it is
        rendered first (as old playbooks write ``when: "{{ x }}"``).
        """
        if isinstance(expr, bool) or expr is None:
            return expr
        if isinstance(expr, (int, float)):
            return expr
        if isinstance(expr, (list, tuple)):
            return all(truthy(self.evaluate(e)) for e in expr)
        if not isinstance(expr, str):
            raise TemplateError(f"cannot evaluate a condition of type {type(expr).__name__}: {expr!r}")
        text = expr.strip()
        if self.is_template(text):
            value = self._render_string(text)
            if isinstance(value, str) and value.strip() and _looks_like_expression(value):
                return self.evaluate(value)
            return value
        if not text:
            raise TemplateError("empty conditional expression")
        template = _compile(text, kind="expression")
        return self._run_native(template, expr)

    def evaluate_condition(self, expr: Any) -> bool:
        """``evaluate`` turned into a bool as Ansible does (``'yes'``/``'false'`` strings included)."""
        return truthy(self.evaluate(expr))

    def render_file(self, path: str | Path, *, extra_vars: Mapping[str, Any] | None = None) -> str:
        """Render a template file (the ``template`` module): trailing newlines kept, trim_blocks on."""
        path = Path(path)
        if not path.is_absolute() and not path.exists():
            for base in self.searchpath:
                candidate = Path(base) / path
                if candidate.exists():
                    path = candidate
                    break
        try:
            source = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise TemplateError(f"template {path}: cannot read: {exc.strerror or exc}") from exc
        overrides, source = _header_overrides(source)
        env_key = (tuple(self.searchpath + [str(path.parent)]), tuple(sorted(overrides.items())))
        env = _file_env(*env_key)
        template = _file_templates.get((env_key, source))
        if template is None:
            try:
                template = env.from_string(source)
            except jinja2.TemplateSyntaxError as exc:
                raise TemplateError(f"template {path}:{exc.lineno}: syntax error: {exc.message}") from exc
            with _compile_lock:
                if len(_file_templates) > 256:
                    _file_templates.clear()
                _file_templates[(env_key, source)] = template
        variables: Mapping[str, Any] = self._lazy
        file_vars = {
            "template_path": str(path),
            "template_fullpath": str(path.resolve()),
            "template_host": os.uname().nodename,
            "template_uid": _file_owner(path),
            "template_mtime": path.stat().st_mtime,
            "ansible_managed": "Ansible managed",
        }
        file_vars.update(extra_vars or {})
        variables = ChainMap({k: v for k, v in file_vars.items() if k not in self.variables or k in (extra_vars or {})}, self._lazy)
        try:
            ctx = template.new_context(variables, shared=True)  # type: ignore[arg-type]
            text = "".join(_to_text(part) for part in template.root_render_func(ctx))
            if not dict(overrides).get("keep_trailing_newline"):
                # Jinja drops the last newline of every template; Ansible puts the top-level ones back
                missing = _trailing_newlines(source) - _trailing_newlines(text)
                if missing > 0:
                    text += "\n" * missing
            return text
        except TemplateError as exc:
            raise TemplateError(f"template {path}: {exc}") from exc
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"template {path}:{_error_line(exc, template)}: undefined variable: {exc.message}") from exc
        except jinja2.TemplateError as exc:
            raise TemplateError(f"template {path}:{_error_line(exc, template)}: {exc}") from exc
        except (TypeError, ValueError, KeyError, AttributeError, ZeroDivisionError, OverflowError) as exc:
            raise TemplateError(f"template {path}:{_error_line(exc, template)}: {type(exc).__name__}: {exc}") from exc

    # -------------------------------------------------------------- internals
    def _render_string(self, value: str) -> Any:
        kind, template = _compile_string(value)
        if kind == "native":
            return self._run_native(template, value)
        try:
            ctx = template.new_context(self._lazy, shared=True)  # type: ignore[arg-type]
            text = "".join(_to_text(part) for part in template.root_render_func(ctx))
        except Exception as exc:  # noqa: BLE001 - every failure becomes one TemplateError naming the template
            raise _wrap(exc, value) from exc
        # Jinja drops a template's last newline; Ansible puts them back (`content: "x {{ y }}\n"`)
        missing = _trailing_newlines(value) - _trailing_newlines(text)
        return text + "\n" * missing if missing > 0 else text

    def _run_native(self, template: jinja2.Template, source: str) -> Any:
        try:
            ctx = template.new_context(self._lazy, shared=True)  # type: ignore[arg-type]
            parts = list(template.root_render_func(ctx))
        except Exception as exc:  # noqa: BLE001
            raise _wrap(exc, source) from exc
        if len(parts) == 1:
            value = parts[0]
            try:
                _reject_undefined(value)
            except jinja2.UndefinedError as exc:
                raise _wrap(exc, source) from exc
            return value
        return "".join(_to_text(p) for p in parts)


def _reject_undefined(value: Any, depth: int = 0) -> None:
    """A native result must not smuggle an Undefined out (``map('extract', ...)`` of a missing key)."""
    if isinstance(value, jinja2.Undefined):
        str(value)  # raises UndefinedError with its hint
    elif depth < 4 and isinstance(value, (list, tuple)):
        for item in value:
            _reject_undefined(item, depth + 1)
    elif depth < 4 and isinstance(value, dict):
        for item in value.values():
            _reject_undefined(item, depth + 1)


def _wrap(exc: Exception, source: str) -> TemplateError:
    if isinstance(exc, TemplateError):
        return TemplateError(f"{exc} (in {source!r})") if "(in " not in str(exc) else exc
    if isinstance(exc, jinja2.UndefinedError):
        return TemplateError(f"undefined variable: {exc.message} (in {source!r})")
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return TemplateError(f"template syntax error: {exc.message} (in {source!r})")
    if isinstance(exc, jinja2.TemplateError):
        return TemplateError(f"{exc} (in {source!r})")
    return TemplateError(f"{type(exc).__name__}: {exc} (in {source!r})")


def _error_line(exc: BaseException, template: jinja2.Template) -> str:
    """The template line an error happened on (Jinja's own line, or the deepest frame of the
    compiled template mapped back through its debug info)."""
    lineno = getattr(exc, "lineno", None)
    if lineno:
        return str(lineno)
    tb = exc.__traceback__
    found = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            found = tb.tb_lineno
        tb = tb.tb_next
    if found is None:
        return "?"
    try:
        return str(template.get_corresponding_lineno(found))
    except (AttributeError, IndexError, ValueError):
        return "?"


def _trailing_newlines(text: str) -> int:
    return len(text) - len(text.rstrip("\n"))


def _to_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return str(value)


def _looks_like_expression(value: str) -> bool:
    # "{{ a }} == 'x'" rendered to "b == 'x'": evaluate that; a plain word is a value, not code
    return bool(re.search(r"[=<>!]=|\b(and|or|not|is|in)\b|[<>()]", value))


def truthy(value: Any) -> bool:
    """Ansible's truth for conditions: bools, numbers, and the strings yes/no/true/false/on/off/1/0."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("yes", "on", "true", "1", "y", "t"):
            return True
        if low in ("no", "off", "false", "0", "n", "f", "", "none", "null"):
            return False
        return True
    if isinstance(value, jinja2.Undefined):
        return bool(value)  # raises: undefined in a condition is an error
    return bool(value)


# ------------------------------------------------------------ compile caches
_compile_lock = threading.Lock()
_string_cache: dict[str, tuple[str, jinja2.Template]] = {}
_expr_cache: dict[str, jinja2.Template] = {}


def _compile_string(source: str) -> tuple[str, jinja2.Template]:
    hit = _string_cache.get(source)
    if hit is not None:
        return hit
    try:
        ast = _ENV.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error: {exc.message} (in {source!r})") from exc
    kind = "string"
    body = ast.body
    if len(body) == 1 and isinstance(body[0], jnodes.Output) and len(body[0].nodes) == 1:
        node = body[0].nodes[0]
        if not isinstance(node, jnodes.TemplateData) and source.startswith("{{") and source.endswith("}}"):
            kind = "native"
    try:
        template = _ENV.from_string(ast)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error: {exc.message} (in {source!r})") from exc
    with _compile_lock:
        if len(_string_cache) > _CACHE_LIMIT:
            _string_cache.clear()
        _string_cache[source] = (kind, template)
    return kind, template


def _compile(expr: str, *, kind: str) -> jinja2.Template:
    hit = _expr_cache.get(expr)
    if hit is not None:
        return hit
    try:
        template = _PLAIN_ENV.from_string("{{ (" + expr + ") }}")
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"syntax error in expression {expr!r}: {exc.message}") from exc
    with _compile_lock:
        if len(_expr_cache) > _CACHE_LIMIT:
            _expr_cache.clear()
        _expr_cache[expr] = template
    return template


_HEADER = re.compile(r"^#jinja2:(.*)$")
_HEADER_KEYS = {
    "trim_blocks": bool, "lstrip_blocks": bool, "keep_trailing_newline": bool, "newline_sequence": str,
    "variable_start_string": str, "variable_end_string": str, "block_start_string": str,
    "block_end_string": str, "comment_start_string": str, "comment_end_string": str,
}


def _header_overrides(source: str) -> tuple[dict[str, Any], str]:
    first, sep, rest = source.partition("\n")
    m = _HEADER.match(first)
    if not m:
        return {}, source
    overrides: dict[str, Any] = {}
    for item in m.group(1).split(","):
        if ":" not in item:
            continue
        key, val = (p.strip() for p in item.split(":", 1))
        if key in _HEADER_KEYS:
            val = val.strip("\"'")
            overrides[key] = truthy(val) if _HEADER_KEYS[key] is bool else val.encode().decode("unicode_escape")
    return overrides, rest


_file_envs: dict[tuple, NativeEnvironment] = {}
_file_templates: dict[tuple, jinja2.Template] = {}


def _file_env(searchpath: tuple[str, ...], overrides: tuple) -> NativeEnvironment:
    key = (searchpath, overrides)
    env = _file_envs.get(key)
    if env is None:
        options = {"trim_blocks": True, "keep_trailing_newline": False}
        options.update(dict(overrides))
        env = _PLAIN_ENV.overlay(loader=jinja2.FileSystemLoader(list(searchpath)), **options)
        with _compile_lock:
            if len(_file_envs) > 64:
                _file_envs.clear()
            _file_envs[key] = env
    return env


def _file_owner(path: Path) -> str:
    try:
        import pwd

        return pwd.getpwuid(path.stat().st_uid).pw_name
    except (KeyError, ImportError, OSError):
        return str(path.stat().st_uid)


# -------------------------------------------------------------------- filters
class AnsibleFilterError(TemplateError):
    """A filter was given something it cannot work with."""


def _to_native_data(value: Any) -> Any:
    """Lazy mappings (hostvars) and tuples into plain JSON/YAML-able data."""
    if isinstance(value, _PassThrough) and isinstance(value, Mapping):
        # a host's variables hold `hostvars` again: leave the cycle out, as Ansible's dump does
        return {k: _to_native_data(v) for k, v in value.items() if not isinstance(v, _PassThrough) or k != "hostvars"}
    if isinstance(value, Mapping):
        return {k: _to_native_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_native_data(v) for v in value]
    if isinstance(value, jinja2.Undefined):
        str(value)  # raises
    return value


def to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    check = value.lower() if isinstance(value, str) else (str(value).lower() if isinstance(value, int) else value)
    if check in ("yes", "on", "true", "1"):
        return True
    return False


def to_json(value: Any, **kwargs: Any) -> str:
    return json.dumps(_to_native_data(value), **kwargs)


def to_nice_json(value: Any, indent: int = 4, sort_keys: bool = True, **kwargs: Any) -> str:
    kwargs.pop("separators", None)
    return json.dumps(_to_native_data(value), indent=indent, sort_keys=sort_keys, separators=(",", ": "), **kwargs)


def from_json(value: str, **kwargs: Any) -> Any:
    return json.loads(value, **kwargs)


class _YamlDumper(yaml.SafeDumper):
    """Dumps plain data the way Ansible's dumper does (no aliases for repeated objects)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def to_yaml(value: Any, *_args: Any, default_flow_style: bool | None = None, **kwargs: Any) -> str:
    return yaml.dump(_to_native_data(value), Dumper=_YamlDumper, allow_unicode=True, default_flow_style=default_flow_style, **kwargs)


def to_nice_yaml(value: Any, indent: int = 4, *_args: Any, default_flow_style: bool = False, **kwargs: Any) -> str:
    return to_yaml(value, indent=indent, default_flow_style=default_flow_style, **kwargs)


def from_yaml(value: Any) -> Any:
    if value is None or not isinstance(value, str):
        return value
    return yaml.safe_load(value)


def from_yaml_all(value: Any) -> Any:
    if value is None:
        return []
    return list(yaml.safe_load_all(value))


def b64encode(value: Any, encoding: str = "utf-8", urlsafe: bool = False) -> str:
    data = value if isinstance(value, bytes) else str(value).encode(encoding)
    return (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(data).decode("ascii")


def b64decode(value: Any, encoding: str = "utf-8", urlsafe: bool = False) -> str:
    data = value if isinstance(value, bytes) else str(value).encode("ascii")
    return (base64.urlsafe_b64decode if urlsafe else base64.b64decode)(data).decode(encoding)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def regex_replace(value: Any = "", pattern: str = "", replacement: str = "", ignorecase: bool = False,
                  multiline: bool = False, count: int = 0, mandatory_count: int = 0) -> str:
    flags = (re.I if ignorecase else 0) | (re.M if multiline else 0)
    output, subs = re.compile(pattern, flags).subn(replacement, _text(value), count=count)
    if mandatory_count and mandatory_count != subs:
        raise AnsibleFilterError(f"regex_replace: {mandatory_count} substitutions expected, {subs} made")
    return output


def regex_findall(value: Any, regex: str, multiline: bool = False, ignorecase: bool = False) -> list:
    flags = (re.I if ignorecase else 0) | (re.M if multiline else 0)
    return re.findall(regex, _text(value), flags)


def regex_search(value: Any, regex: str, *args: str, **kwargs: Any) -> Any:
    groups: list = []
    for arg in args:
        if arg.startswith("\\g"):
            groups.append(re.match(r"\\g<(\S+)>", arg).group(1))  # type: ignore[union-attr]
        elif arg.startswith("\\"):
            groups.append(int(re.match(r"\\(\d+)", arg).group(1)))  # type: ignore[union-attr]
        else:
            raise AnsibleFilterError(f"regex_search: unknown argument {arg!r}")
    flags = (re.I if kwargs.get("ignorecase") else 0) | (re.M if kwargs.get("multiline") else 0)
    match = re.search(regex, _text(value), flags)
    if not match:
        return None
    if not groups:
        return match.group()
    return [match.group(g) for g in groups]


def regex_escape(value: Any, re_type: str = "python") -> str:
    if re_type == "posix_basic":
        return re.sub(r"([].[^$*\\])", r"\\\1", _text(value))
    return re.escape(_text(value))


def get_hash(data: Any, hashtype: str = "sha1") -> str:
    try:
        h = hashlib.new(hashtype)
    except ValueError as exc:
        raise AnsibleFilterError(f"hash: unsupported hash type {hashtype!r}") from exc
    h.update(data if isinstance(data, bytes) else _text(data).encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def mandatory(value: Any, msg: str | None = None) -> Any:
    if isinstance(value, jinja2.Undefined):
        if msg is not None:
            raise AnsibleFilterError(str(msg))
        name = getattr(value, "_undefined_name", None)
        raise AnsibleFilterError(f"Mandatory variable {name!r} not defined." if name else "Mandatory variable not defined.")
    return value


def ansible_default(value: Any, default_value: Any = "", boolean: bool = False) -> Any:
    if isinstance(value, jinja2.Undefined):
        return default_value
    if boolean and not value:
        return default_value
    return value


def flatten(items: Iterable, levels: int | None = None, skip_nulls: bool = True) -> list:
    out: list = []
    for element in items:
        if skip_nulls and element in (None, "None", "null"):
            continue
        if isinstance(element, (list, tuple)):
            if levels is None:
                out.extend(flatten(element, skip_nulls=skip_nulls))
            elif levels >= 1:
                out.extend(flatten(element, levels=int(levels) - 1, skip_nulls=skip_nulls))
            else:
                out.append(element)
        else:
            out.append(element)
    return out


def merge_hash(x: Mapping, y: Mapping, recursive: bool = True, list_merge: str = "replace") -> dict:
    """Ansible's ``merge_hash``: ``y`` wins; dicts merge when ``recursive``; lists per ``list_merge``."""
    if list_merge not in ("replace", "keep", "append", "prepend", "append_rp", "prepend_rp"):
        raise AnsibleFilterError("combine: list_merge must be one of replace, keep, append, prepend, append_rp, prepend_rp")
    if not isinstance(x, Mapping) or not isinstance(y, Mapping):
        raise AnsibleFilterError(f"combine: expects dictionaries, got {type(x).__name__} and {type(y).__name__}")
    out = dict(x)
    for key, y_value in y.items():
        if key not in out:
            out[key] = y_value
            continue
        x_value = out[key]
        if isinstance(x_value, Mapping) and isinstance(y_value, Mapping):
            out[key] = merge_hash(x_value, y_value, recursive, list_merge) if recursive else y_value
        elif isinstance(x_value, list) and isinstance(y_value, list):
            if list_merge == "replace":
                out[key] = y_value
            elif list_merge == "append":
                out[key] = x_value + y_value
            elif list_merge == "prepend":
                out[key] = y_value + x_value
            elif list_merge == "append_rp":
                out[key] = [z for z in x_value if z not in y_value] + y_value
            elif list_merge == "prepend_rp":
                out[key] = y_value + [z for z in x_value if z not in y_value]
            # keep: x stays
        else:
            out[key] = y_value
    return out


def combine(*terms: Any, recursive: bool = False, list_merge: str = "replace", **kwargs: Any) -> dict:
    if kwargs:
        raise AnsibleFilterError("combine: 'recursive' and 'list_merge' are the only valid keyword arguments")
    dicts = flatten(terms, levels=1)
    if not dicts:
        return {}
    result: dict = dict(dicts[0]) if isinstance(dicts[0], Mapping) else dicts[0]
    for d in dicts[1:]:
        result = merge_hash(result, d, recursive, list_merge)
    return result


def dict2items(value: Any, key_name: str = "key", value_name: str = "value") -> list:
    if not isinstance(value, Mapping):
        raise AnsibleFilterError(f"dict2items requires a dictionary, got {type(value).__name__} instead.")
    return [{key_name: k, value_name: v} for k, v in value.items()]


def items2dict(value: Any, key_name: str = "key", value_name: str = "value") -> dict:
    if not isinstance(value, (list, tuple)):
        raise AnsibleFilterError(f"items2dict requires a list, got {type(value).__name__} instead.")
    try:
        return {item[key_name]: item[value_name] for item in value}
    except (KeyError, TypeError) as exc:
        raise AnsibleFilterError(f"items2dict requires a list of dictionaries with keys {key_name!r} and {value_name!r}") from exc


def _unique_list(items: Iterable) -> list:
    out: list = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


def unique(value: Iterable, case_sensitive: bool | None = None, attribute: str | None = None) -> list:
    if attribute is None and case_sensitive in (None, True):
        return _unique_list(value)
    seen: list = []
    out: list = []
    for item in value:
        key = item[attribute] if attribute else item
        if case_sensitive is False and isinstance(key, str):
            key = key.lower()
        if key not in seen:
            seen.append(key)
            out.append(item)
    return out


def union(a: Iterable, b: Iterable) -> list:
    return _unique_list(list(a) + list(b))


def intersect(a: Iterable, b: Iterable) -> list:
    b = list(b)
    return _unique_list(x for x in a if x in b)


def difference(a: Iterable, b: Iterable) -> list:
    b = list(b)
    return _unique_list(x for x in a if x not in b)


def symmetric_difference(a: Iterable, b: Iterable) -> list:
    a, b = list(a), list(b)
    return _unique_list([x for x in a if x not in b] + [x for x in b if x not in a])


def quote(value: Any) -> str:
    return shlex.quote(_text(value))


def ternary(value: Any, true_val: Any, false_val: Any, none_val: Any = None) -> Any:
    if value is None and none_val is not None:
        return none_val
    return true_val if bool(value) else false_val


def do_zip(*args: Iterable) -> list:
    return [list(t) for t in zip(*args)]


def do_zip_longest(*args: Iterable, fillvalue: Any = None) -> list:
    return [list(t) for t in zip_longest(*args, fillvalue=fillvalue)]


def to_int(value: Any, default: int = 0, base: int = 10) -> int:
    try:
        if isinstance(value, str):
            return int(value.strip(), base)
        return int(value)
    except (TypeError, ValueError):
        try:
            return int(float(value))
        except (TypeError, ValueError):
            return default


def path_join(paths: Any) -> str:
    if isinstance(paths, str):
        return paths
    return os.path.join(*paths)


def subelements(obj: Any, subkey: Any, skip_missing: bool = False) -> list:
    elements = list(obj.values()) if isinstance(obj, Mapping) else list(obj)
    keys = subkey.split(".") if isinstance(subkey, str) else list(subkey)
    out: list = []
    for element in elements:
        values = element
        for k in keys:
            try:
                values = values[k]
            except KeyError as exc:
                if skip_missing:
                    values = []
                    break
                raise AnsibleFilterError(f"subelements: could not find {k!r} key in {values!r}") from exc
        for v in values:
            out.append((element, v))
    return out


@jinja2.pass_environment
def extract(environment: jinja2.Environment, item: Any, container: Any, morekeys: Any = None) -> Any:
    keys = [item] + (morekeys if isinstance(morekeys, list) else ([] if morekeys is None else [morekeys]))
    value = container
    for key in keys:
        value = environment.getitem(value, key)
    return value


def type_debug(value: Any) -> str:
    if isinstance(value, Mapping):
        return "dict"
    return type(value).__name__


def human_to_bytes(value: Any, default_unit: str | None = None, isbits: bool = False) -> int:
    m = re.match(r"^\s*(\d*\.?\d+)\s*([KMGTPEZY]?)(i?)([bB]?)\s*$", str(value) + (default_unit or "" if str(value).strip().isdigit() else ""))
    if not m:
        raise AnsibleFilterError(f"human_to_bytes: cannot parse {value!r}")
    number, prefix = float(m.group(1)), m.group(2)
    power = " KMGTPEZY".index(prefix) if prefix else 0
    return int(round(number * (1024 ** power)))


_FILTERS: dict[str, Callable] = {
    "default": ansible_default, "d": ansible_default, "bool": to_bool, "int": to_int,
    "to_json": to_json, "to_nice_json": to_nice_json, "from_json": from_json,
    "to_yaml": to_yaml, "to_nice_yaml": to_nice_yaml, "from_yaml": from_yaml, "from_yaml_all": from_yaml_all,
    "b64encode": b64encode, "b64decode": b64decode,
    "regex_replace": regex_replace, "regex_search": regex_search, "regex_findall": regex_findall, "regex_escape": regex_escape,
    "basename": lambda p: os.path.basename(_text(p)), "dirname": lambda p: os.path.dirname(_text(p)),
    "expanduser": lambda p: os.path.expanduser(_text(p)), "realpath": lambda p: os.path.realpath(_text(p)),
    "relpath": lambda p, start=os.curdir: os.path.relpath(_text(p), start), "splitext": lambda p: list(os.path.splitext(_text(p))),
    "normpath": lambda p: os.path.normpath(_text(p)), "path_join": path_join,
    "hash": get_hash, "md5": lambda d: get_hash(d, "md5"), "sha1": lambda d: get_hash(d, "sha1"), "checksum": lambda d: get_hash(d, "sha1"),
    "mandatory": mandatory, "combine": combine, "dict2items": dict2items, "items2dict": items2dict,
    "unique": unique, "union": union, "difference": difference, "intersect": intersect,
    "symmetric_difference": symmetric_difference, "flatten": flatten, "quote": quote, "ternary": ternary,
    "zip": do_zip, "zip_longest": do_zip_longest, "subelements": subelements, "extract": extract,
    "type_debug": type_debug, "split": lambda s, sep=None, maxsplit=-1: _text(s).split(sep, maxsplit),
    "human_to_bytes": human_to_bytes,
}


# ---------------------------------------------------------------------- tests
def _result_mapping(name: str, value: Any) -> Mapping:
    if not isinstance(value, Mapping):
        raise AnsibleFilterError(f"The {name!r} test expects a dictionary (a registered task result)")
    return value


def test_failed(result: Any) -> bool:
    return bool(_result_mapping("failed", result).get("failed"))


def test_success(result: Any) -> bool:
    return not test_failed(result)


def test_changed(result: Any) -> bool:
    result = _result_mapping("changed", result)
    if "changed" not in result:
        items = result.get("results")
        if isinstance(items, list) and items and isinstance(items[0], Mapping):
            return any(bool(r.get("changed")) for r in items)
        return False
    return bool(result.get("changed"))


def test_skipped(result: Any) -> bool:
    return bool(_result_mapping("skipped", result).get("skipped"))


def test_unreachable(result: Any) -> bool:
    return bool(_result_mapping("unreachable", result).get("unreachable"))


def _regex_test(value: Any, pattern: str = "", ignorecase: bool = False, multiline: bool = False, match_type: str = "search") -> bool:
    flags = (re.I if ignorecase else 0) | (re.M if multiline else 0)
    fn = {"match": re.match, "search": re.search, "fullmatch": re.fullmatch}[match_type]
    return fn(pattern, _text(value), flags) is not None


class LooseVersion:
    """Loose version ordering (numbers compare as numbers, words as words), as distutils had it."""

    _component = re.compile(r"(\d+ | [a-z]+ | \.)", re.VERBOSE)

    def __init__(self, text: str) -> None:
        parts = [p for p in self._component.split(str(text)) if p and p != "."]
        self.parts = [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LooseVersion) and self.parts == other.parts

    def __lt__(self, other: "LooseVersion") -> bool:
        return self.parts < other.parts

    def __le__(self, other: "LooseVersion") -> bool:
        return self.parts <= other.parts

    def __gt__(self, other: "LooseVersion") -> bool:
        return self.parts > other.parts

    def __ge__(self, other: "LooseVersion") -> bool:
        return self.parts >= other.parts


_STRICT = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?(?:([ab])(\d+))?$")
_SEMVER = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")


def _strict_key(text: str) -> tuple:
    m = _STRICT.match(str(text))
    if not m:
        raise AnsibleFilterError(f"invalid version number {text!r} (strict)")
    major, minor, patch, pre, pre_n = m.groups()
    prerelease = (0, pre, int(pre_n)) if pre else (1, "", 0)
    return (int(major), int(minor), int(patch or 0), prerelease)


def _semver_key(text: str) -> tuple:
    m = _SEMVER.match(str(text))
    if not m:
        raise AnsibleFilterError(f"invalid semantic version {text!r}")
    major, minor, patch, pre = m.groups()
    if pre is None:
        pre_key: tuple = (1,)
    else:
        pre_key = (0, tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")))
    return (int(major), int(minor), int(patch), pre_key)


def version_compare(value: Any, version: Any, operator: str = "eq", strict: bool | None = None, version_type: str | None = None) -> bool:
    ops = {"==": "eq", "=": "eq", "eq": "eq", "<": "lt", "lt": "lt", "<=": "le", "le": "le", ">": "gt", "gt": "gt",
           ">=": "ge", "ge": "ge", "!=": "ne", "<>": "ne", "ne": "ne"}
    if not value:
        raise AnsibleFilterError("Input version value cannot be empty")
    if not version:
        raise AnsibleFilterError("Version parameter to compare against cannot be empty")
    if operator not in ops:
        raise AnsibleFilterError(f"Invalid operator type ({operator}). Must be one of {', '.join(ops)}")
    kind = "strict" if strict else (version_type or "loose")
    if kind == "strict":
        a, b = _strict_key(value), _strict_key(version)
    elif kind in ("semver", "semantic"):
        a, b = _semver_key(value), _semver_key(version)
    elif kind in ("loose", "pep440"):
        a, b = LooseVersion(str(value)), LooseVersion(str(version))  # type: ignore[assignment]
    else:
        raise AnsibleFilterError(f"Invalid version type ({version_type}). Must be one of loose, strict, semver, semantic, pep440")
    op = ops[operator]
    return {"eq": a == b, "ne": a != b, "lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[op]


def _is_abs(path: Any) -> bool:
    return os.path.isabs(_text(path))


_TESTS: dict[str, Callable] = {
    "failed": test_failed, "failure": test_failed, "succeeded": test_success, "success": test_success,
    "successful": test_success, "changed": test_changed, "change": test_changed, "skipped": test_skipped,
    "skip": test_skipped, "unreachable": test_unreachable, "reachable": lambda r: not test_unreachable(r),
    "finished": lambda r: bool(_result_mapping("finished", r).get("finished", True)),
    "match": lambda v, p="", ignorecase=False, multiline=False: _regex_test(v, p, ignorecase, multiline, "match"),
    "search": lambda v, p="", ignorecase=False, multiline=False: _regex_test(v, p, ignorecase, multiline, "search"),
    "regex": lambda v, p="", ignorecase=False, multiline=False, match_type="search": _regex_test(v, p, ignorecase, multiline, match_type),
    "version": version_compare, "version_compare": version_compare,
    "any": lambda seq: any(seq), "all": lambda seq: all(seq),
    "truthy": lambda v, convert_bool=False: truthy(v) if convert_bool else bool(v),
    "falsy": lambda v, convert_bool=False: not (truthy(v) if convert_bool else bool(v)),
    "contains": lambda seq, item: item in seq, "subset": lambda a, b: set(a) <= set(b),
    "superset": lambda a, b: set(a) >= set(b),
    "abs": _is_abs, "is_abs": _is_abs, "exists": lambda p: os.path.exists(os.path.expanduser(_text(p))),
    "file": lambda p: os.path.isfile(_text(p)), "directory": lambda p: os.path.isdir(_text(p)),
    "link": lambda p: os.path.islink(_text(p)),
}


# -------------------------------------------------------------------- lookups
def _find_file(term: str, searchpath: list[str], subdir: str = "files") -> str:
    if os.path.isabs(term):
        return term
    for base in searchpath:
        for candidate in (os.path.join(base, subdir, term), os.path.join(base, term)):
            if os.path.exists(candidate):
                return candidate
    raise AnsibleFilterError(f"could not locate file in lookup: {term} (searched {', '.join(searchpath) or 'nothing'})")


def _run_lookup(context: Context, name: str, terms: tuple, kwargs: dict) -> list:
    templar = _templar_of(context)
    searchpath = templar.searchpath if templar else []
    if name == "env":
        default = kwargs.get("default", "")
        return [os.environ.get(str(t), default) for t in terms]
    if name == "file":
        out = []
        for t in terms:
            path = _find_file(str(t), searchpath)
            try:
                text = Path(path).read_text(encoding="utf-8")
            except OSError as exc:
                raise AnsibleFilterError(f"lookup('file', {t!r}): {exc.strerror}") from exc
            if kwargs.get("rstrip", True):
                text = text.rstrip()
            if kwargs.get("lstrip", False):
                text = text.lstrip()
            out.append(text)
        return out
    if name == "pipe":
        out = []
        for t in terms:
            proc = subprocess.run(str(t), shell=True, capture_output=True, text=True, check=False)  # noqa: S602 - the playbook's own command
            if proc.returncode != 0:
                raise AnsibleFilterError(f"lookup('pipe', {t!r}) failed with rc={proc.returncode}: {proc.stderr.strip()}")
            out.append(proc.stdout.rstrip())
        return out
    if name == "vars":
        out = []
        for t in terms:
            value = context.resolve_or_missing(str(t))
            if value is jinja2.runtime.missing:
                if "default" in kwargs:
                    out.append(kwargs["default"])
                    continue
                raise AnsibleFilterError(f"lookup('vars'): no variable found with the name {t!r}")
            out.append(value)
        return out
    if name in ("items", "list", "flattened"):
        return flatten(list(terms), levels=None if name == "flattened" else 1)
    if name == "first_found":
        files: list[str] = []
        paths: list[str] = list(kwargs.get("paths", []))
        for t in terms:
            if isinstance(t, Mapping):
                files += list(t.get("files", []))
                paths += list(t.get("paths", []))
            elif isinstance(t, (list, tuple)):
                files += [str(x) for x in t]
            else:
                files.append(str(t))
        files += list(kwargs.get("files", []))
        for f in files:
            for base in (paths or [""]):
                try:
                    return [_find_file(os.path.join(base, f), searchpath)]
                except AnsibleFilterError:
                    continue
        if kwargs.get("skip"):
            return []
        raise AnsibleFilterError(f"lookup('first_found'): no file was found among {files}")
    raise AnsibleFilterError(f"lookup plugin {name!r} is not supported (env, file, pipe, vars, items, first_found are)")


def _templar_of(context: Context) -> Templar | None:
    parent = context.parent
    while isinstance(parent, ChainMap):
        parent = parent.maps[-1]
    return parent._templar if isinstance(parent, _LazyVars) else None


@jinja2.pass_context
def lookup(context: Context, name: str, *terms: Any, **kwargs: Any) -> Any:
    wantlist = kwargs.pop("wantlist", False)
    errors = kwargs.pop("errors", "strict")
    try:
        values = _run_lookup(context, name, terms, kwargs)
    except AnsibleFilterError:
        if errors in ("ignore", "warn"):
            return [] if wantlist else None
        raise
    if wantlist:
        return values
    if len(values) == 1:
        return values[0]
    return ",".join(_text(v) for v in values)


@jinja2.pass_context
def query(context: Context, name: str, *terms: Any, **kwargs: Any) -> list:
    kwargs.pop("wantlist", None)
    return _run_lookup(context, name, terms, kwargs)


# ---------------------------------------------------------------- environment
class _NativeCodeGenerator(NativeCodeGenerator):
    """Never folds an expression into a constant: Jinja's native mode would fold it to a *string*."""

    def _output_child_to_const(self, node, frame, finalize):  # type: ignore[override]
        if isinstance(node, jnodes.TemplateData):
            return super()._output_child_to_const(node, frame, finalize)
        raise jnodes.Impossible()


class _EscapingLexer(Lexer):
    """Doubles backslashes in string constants inside ``{{ }}`` (as ansible-core's AnsibleLexer),
    because playbook strings were already unescaped once by YAML: ``regex_replace('(a)', '\\1')``
    written in a double-quoted YAML string means a back-reference, not chr(1)."""

    def tokeniter(self, *args: Any, **kwargs: Any):  # type: ignore[override]
        in_variable = False
        for token in super().tokeniter(*args, **kwargs):
            kind = token[1]
            if kind == TOKEN_VARIABLE_BEGIN:
                in_variable = True
            elif kind == TOKEN_VARIABLE_END:
                in_variable = False
            elif in_variable and kind == TOKEN_STRING:
                token = token[0], kind, token[2].replace("\\", "\\\\")
            yield token


class _AnsibleEnvironment(NativeEnvironment):
    """Native environment whose lexer optionally escapes backslashes (playbook strings only)."""

    escape_backslashes = False

    @property
    def lexer(self) -> Lexer:  # type: ignore[override]
        if not self.escape_backslashes:
            return super().lexer
        lexer = self.__dict__.get("_escaping_lexer")
        if lexer is None:
            lexer = self.__dict__["_escaping_lexer"] = _EscapingLexer(self)
        return lexer


def _fail_on_undefined(value: Any) -> Any:
    """Every ``{{ }}`` output passes here inside the template's own frame, so an undefined
    variable fails where its line is known (values themselves pass through untouched)."""
    if isinstance(value, jinja2.Undefined):
        str(value)  # raises UndefinedError naming the variable
    return value


def _build_env(*, escape_backslashes: bool) -> NativeEnvironment:
    env = _AnsibleEnvironment(
        finalize=_fail_on_undefined,
        undefined=AnsibleUndefined,
        trim_blocks=True,
        keep_trailing_newline=False,
        extensions=["jinja2.ext.loopcontrols", "jinja2.ext.do"],
        autoescape=False,
    )
    env.escape_backslashes = escape_backslashes
    env.code_generator_class = _NativeCodeGenerator
    env.context_class = _LazyContext
    env.filters.update(_FILTERS)
    env.tests.update(_TESTS)
    env.globals.update({"lookup": lookup, "query": query, "q": query})
    return env


#: playbook strings (YAML-sourced): backslashes in {{ }} string constants escaped, as Ansible does
_ENV = _build_env(escape_backslashes=True)
#: conditionals and template files: Jinja's own escapes
_PLAIN_ENV = _build_env(escape_backslashes=False)


def add_filter(name: str, fn: Callable) -> None:
    """Register an extra filter (for modules that need one more); affects every Templar."""
    for env in (_ENV, _PLAIN_ENV):
        env.filters[name] = fn
    _string_cache.clear()
    _expr_cache.clear()
    _file_envs.clear()
    _file_templates.clear()


def add_test(name: str, fn: Callable) -> None:
    """Register an extra Jinja2 test; affects every Templar."""
    for env in (_ENV, _PLAIN_ENV):
        env.tests[name] = fn
    _string_cache.clear()
    _expr_cache.clear()
    _file_envs.clear()
    _file_templates.clear()


__all__ = [
    "AnsibleUndefined", "Templar", "TemplateError", "truthy", "merge_hash", "combine", "add_filter", "add_test",
    "LooseVersion", "version_compare",
]
