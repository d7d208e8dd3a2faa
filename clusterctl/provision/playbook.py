"""Playbooks, roles and task files parsed into a typed tree, validated before any host is touched.

Everything that can be known without a host is checked here, so bad input fails with one line
naming file, line and task instead of halfway through a run: YAML syntax, unknown play/block/task
keywords, unknown modules, missing required module arguments, handlers notified but never
defined, task files and roles that do not exist, and (``undefined_variables``) Jinja2 names that
no variable source could ever define.

The tree mirrors Ansible's: ``Playbook`` → ``Play`` → sections of ``Block``/``Task``. Keywords
that Ansible inherits from play → role → block → task (``become``, ``when``, ``tags``,
``environment``, ``no_log``, ...) are resolved once here into each ``Task``, so the executor reads
one flat set of keywords per task. ``import_tasks`` is expanded at parse time (static);
``include_tasks`` stays a task the executor expands per host (dynamic), but a statically named
file is parsed now too, so its errors surface before the run.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

import yaml

from clusterctl.provision.errors import PlaybookError

# ---------------------------------------------------------------- YAML with line numbers


class Located(dict):
    """A YAML mapping that remembers where it was written (``file``, ``line``: 1-based)."""

    file: str = "?"
    line: int = 0


_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[misc, valid-type]
    source: str = "?"


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> Located:
    loader.flatten_mapping(node)
    data = Located()
    data.file = loader.source
    data.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError as exc:
            raise PlaybookError(f"{loader.source}:{key_node.start_mark.line + 1}: unhashable mapping key") from exc
        data[key] = loader.construct_object(value_node, deep=True)
    return data


def _construct_unsafe(loader: _Loader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return _construct_mapping(loader, node)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor("!unsafe", _construct_unsafe)

_yaml_cache: dict[tuple[str, float], Any] = {}


def load_yaml(path: str | os.PathLike) -> Any:
    """Load one YAML file; a syntax error names file and line. Mappings are ``Located``."""
    path = str(path)
    try:
        key = (path, os.stat(path).st_mtime)
    except OSError as exc:
        raise PlaybookError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if key in _yaml_cache:
        return _yaml_cache[key]
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise PlaybookError(f"{path}: cannot read: {exc}") from exc
    loader = _Loader(text)
    loader.source = path
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
        raise PlaybookError(f"{where}: YAML syntax error: {exc.problem or exc}") from exc
    except yaml.YAMLError as exc:
        raise PlaybookError(f"{path}: YAML error: {exc}") from exc
    finally:
        loader.dispose()
    _yaml_cache[key] = data
    return data


def where(data: Any, fallback: str = "?") -> str:
    if isinstance(data, Located):
        return f"{data.file}:{data.line}"
    return fallback


# ---------------------------------------------------------------- keywords

#: modules the executor runs itself (no host round-trip, or they change the run's shape)
EXECUTOR_MODULES = frozenset(
    {"debug", "set_fact", "assert", "fail", "meta", "include_vars", "pause", "include_tasks", "import_tasks",
     "include_role", "import_role", "setup", "gather_facts", "ping", "noop"}
)
#: executor modules that take free-form (non k=v) arguments
_EXECUTOR_FREE_FORM = {"meta", "include_tasks", "import_tasks", "include_vars", "include_role", "import_role"}
_EXECUTOR_REQUIRED = {"assert": ("that",)}
META_ACTIONS = frozenset({"flush_handlers", "end_play", "end_host", "noop", "clear_facts", "clear_host_errors",
                          "refresh_inventory", "reset_connection", "end_batch", "end_role"})

_COMMON_KEYWORDS = {
    "name", "when", "become", "become_user", "become_method", "become_flags", "tags", "vars", "environment",
    "ignore_errors", "ignore_unreachable", "no_log", "any_errors_fatal", "check_mode", "diff", "delegate_to",
    "delegate_facts", "run_once", "module_defaults", "collections", "remote_user", "connection", "throttle",
    "timeout", "debugger", "port",
}
TASK_KEYWORDS = _COMMON_KEYWORDS | {
    "action", "local_action", "args", "loop", "loop_control", "register", "changed_when", "failed_when",
    "notify", "retries", "until", "delay", "listen", "async", "poll",
}
BLOCK_KEYWORDS = _COMMON_KEYWORDS | {"block", "rescue", "always", "notify"}
PLAY_KEYWORDS = _COMMON_KEYWORDS | {
    "hosts", "vars_files", "vars_prompt", "gather_facts", "gather_subset", "gather_timeout", "fact_path",
    "serial", "max_fail_percentage", "strategy", "pre_tasks", "roles", "tasks", "post_tasks", "handlers",
    "order", "force_handlers",
}
ROLE_REF_KEYWORDS = {"role", "name", "vars", "tags", "when", "become", "become_user", "environment",
                     "no_log", "ignore_errors", "delegate_to", "run_once", "check_mode", "any_errors_fatal"}
_LOOP_KEYS = {"with_items", "with_list", "with_dict", "with_indexed_items", "with_sequence", "with_together",
              "with_fileglob", "with_first_found", "with_nested", "with_subelements", "with_random_choice"}
_SUPPORTED_LOOPS = {"with_items", "with_list", "with_dict", "with_indexed_items", "with_fileglob"}
_UNSUPPORTED_KEYWORDS = {"async", "poll", "vars_prompt"}


def normalize_module(name: str) -> str:
    for prefix in ("ansible.builtin.", "ansible.legacy.", "ansible.posix.", "community.general."):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


# ---------------------------------------------------------------- k=v argument strings

_JINJA_OPEN = ("{{", "{%", "{#")
_JINJA_CLOSE = {"{{": "}}", "{%": "%}", "{#": "#}"}


def split_args(text: str) -> list[str]:
    """Split a ``k=v`` argument string on whitespace, keeping quotes and Jinja2 blocks whole."""
    parts: list[str] = []
    buf: list[str] = []
    quote: str | None = None
    jinja: list[str] = []
    i = 0
    while i < len(text):
        two = text[i:i + 2]
        ch = text[i]
        if not quote and two in _JINJA_OPEN:
            jinja.append(_JINJA_CLOSE[two])
            buf.append(two)
            i += 2
            continue
        if jinja and two == jinja[-1]:
            jinja.pop()
            buf.append(two)
            i += 2
            continue
        if ch == "\\" and quote and i + 1 < len(text):
            buf.append(text[i:i + 2])
            i += 2
            continue
        if ch in "'\"" and not jinja:
            if quote == ch:
                quote = None
            elif quote is None:
                quote = ch
            buf.append(ch)
            i += 1
            continue
        if ch.isspace() and not quote and not jinja:
            if buf:
                parts.append("".join(buf))
                buf = []
            i += 1
            continue
        buf.append(ch)
        i += 1
    if quote or jinja:
        raise ValueError(f"unbalanced {'quote' if quote else 'jinja2 block'} in {text!r}")
    if buf:
        parts.append("".join(buf))
    return parts


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        inner = value[1:-1]
        return inner.replace("\\" + value[0], value[0]) if "\\" in inner else inner
    return value


_KV = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.S)
#: free-form modules keep these k=v words as options, everything else is the raw command
_FREE_FORM_OPTIONS = {"creates", "removes", "chdir", "executable", "warn", "stdin", "stdin_add_newline",
                      "strip_empty_ends"}
_ESCAPE = re.compile(r"""(\\U[0-9a-fA-F]{8}|\\u[0-9a-fA-F]{4}|\\x[0-9a-fA-F]{2}|\\N\{[^}]+\}|\\[\\'"abfnrtv])""")


def _decode_escapes(text: str) -> str:
    import codecs

    return _ESCAPE.sub(lambda m: codecs.decode(m.group(0), "unicode-escape"), text)


def parse_kv(text: str, *, free_form: bool) -> dict:
    """``'a=1 b="x y"'`` → ``{'a': '1', 'b': 'x y'}``; free-form leftovers go to ``_raw_params``."""
    text = text.strip()
    if not text:
        return {}
    parts = split_args(text)
    args: dict = {}
    raw: list[str] = []
    for part in parts:
        m = _KV.match(_decode_escapes(part))
        if m and (not free_form or m.group(1) in _FREE_FORM_OPTIONS):
            args[m.group(1)] = _unquote(m.group(2))
        elif free_form:
            raw.append(part)
        else:
            raise ValueError(f"expected key=value arguments, got {part!r}")
    if raw:
        args["_raw_params"] = " ".join(raw)
    return args


# ---------------------------------------------------------------- the tree


@dataclass
class Role:
    name: str
    path: Path
    defaults: dict = field(default_factory=dict)
    vars: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    dependencies: list["Role"] = field(default_factory=list)

    @property
    def templates_dir(self) -> Path:
        return self.path / "templates"

    @property
    def files_dir(self) -> Path:
        return self.path / "files"

    @property
    def tasks_dir(self) -> Path:
        return self.path / "tasks"


@dataclass
class Inherited:
    """Keywords that flow from play → role → block → task (innermost wins; ``when``/``tags`` add up)."""

    when: tuple = ()
    tags: frozenset = frozenset()
    vars: dict = field(default_factory=dict)  # block + include/import vars, outermost first
    environment: tuple = ()  # dicts (or template strings), outermost first
    become: Any = None
    become_user: Any = None
    ignore_errors: Any = None
    ignore_unreachable: Any = None
    no_log: Any = None
    check_mode: Any = None
    diff: Any = None
    delegate_to: Any = None
    run_once: Any = None
    any_errors_fatal: Any = None
    timeout: Any = None
    notify: tuple = ()
    role: Role | None = None
    include_params: dict = field(default_factory=dict)
    base_dir: Path = Path(".")  # where relative task files / files / templates are looked up

    def merged(self, data: dict, *, vars_key: str = "vars") -> "Inherited":
        new = replace(self)
        if "when" in data and data["when"] is not None:
            new.when = self.when + tuple(_as_list(data["when"]))
        if "tags" in data and data["tags"] is not None:
            new.tags = self.tags | frozenset(_tags(data["tags"]))
        if data.get(vars_key):
            new.vars = {**self.vars, **data[vars_key]}
        if data.get("environment"):
            new.environment = self.environment + (data["environment"],)
        if data.get("notify"):
            new.notify = self.notify + tuple(_as_list(data["notify"]))
        for key in ("become", "become_user", "ignore_errors", "ignore_unreachable", "no_log", "check_mode", "diff",
                    "delegate_to", "run_once", "any_errors_fatal", "timeout"):
            if data.get(key) is not None:
                setattr(new, key, data[key])
        return new


@dataclass
class Task:
    action: str
    args: dict
    name: str | None
    file: str
    line: int
    kw: dict  # the task's own keywords (loop, register, changed_when, ...)
    inh: Inherited
    #: for include_tasks with a static file name: the parsed blocks (validated at parse time)
    static_include: list | None = None

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def display_name(self) -> str:
        if self.name:
            name = str(self.name)
        else:
            name = self.action
        if self.inh.role is not None and not (self.name and " : " in str(self.name)):
            return f"{self.inh.role.name} : {name}"
        return name

    @property
    def tags(self) -> frozenset:
        return self.inh.tags

    @property
    def when(self) -> tuple:
        return self.inh.when

    @property
    def listen(self) -> list[str]:
        return [str(x) for x in _as_list(self.kw.get("listen"))]


@dataclass
class Block:
    block: list
    rescue: list
    always: list
    file: str
    line: int
    name: str | None = None

    def tasks(self) -> Iterator[Task]:
        for section in (self.block, self.rescue, self.always):
            for item in section:
                if isinstance(item, Block):
                    yield from item.tasks()
                else:
                    yield item


@dataclass
class Play:
    name: str
    hosts: str
    file: str
    line: int
    data: dict  # raw play keywords (vars templated at run time)
    vars: dict
    vars_files: list
    roles: list[Role]
    pre_tasks: list
    main_tasks: list  # roles' tasks, then tasks
    post_tasks: list
    handlers: list[Task]
    base_dir: Path

    @property
    def gather_facts(self) -> Any:
        return self.data.get("gather_facts", True)

    @property
    def serial(self) -> list:
        value = self.data.get("serial")
        if value is None:
            return []
        return list(value) if isinstance(value, list) else [value]

    @property
    def max_fail_percentage(self) -> Any:
        return self.data.get("max_fail_percentage")

    @property
    def any_errors_fatal(self) -> Any:
        return self.data.get("any_errors_fatal", False)

    @property
    def strategy(self) -> str:
        return str(self.data.get("strategy", "linear"))

    @property
    def force_handlers(self) -> bool:
        return bool(self.data.get("force_handlers", False))

    def all_tasks(self) -> Iterator[Task]:
        for section in (self.pre_tasks, self.main_tasks, self.post_tasks):
            yield from _iter_tasks(section)
        yield from self.handlers


@dataclass
class Playbook:
    path: Path
    plays: list[Play]

    def all_tasks(self) -> Iterator[Task]:
        for play in self.plays:
            yield from play.all_tasks()


def _iter_tasks(items: list) -> Iterator[Task]:
    for item in items:
        if isinstance(item, Block):
            for t in item.tasks():
                yield t
                if t.static_include:
                    yield from _iter_tasks(t.static_include)
        else:
            yield item
            if item.static_include:
                yield from _iter_tasks(item.static_include)


# ---------------------------------------------------------------- parser


def _as_list(value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _tags(value: Any) -> list[str]:
    out: list[str] = []
    for item in _as_list(value):
        out.extend(t.strip() for t in str(item).split(",") if t.strip())
    return out


def _has_template(value: Any) -> bool:
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, dict):
        return any(_has_template(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_template(v) for v in value)
    return False


class ModuleCatalog:
    """What the parser needs to know about modules: which exist, free-form or not, required args."""

    def __init__(self) -> None:
        try:
            from clusterctl.provision import modules as host_modules
        except ImportError:  # the modules package is built in parallel; executor modules still work
            host_modules = None
        self._host_modules = host_modules

    def names(self) -> set[str]:
        names = set(EXECUTOR_MODULES)
        if self._host_modules is not None:
            names |= set(getattr(self._host_modules, "MODULES", {}))
        return names

    def spec(self, name: str):
        if name in EXECUTOR_MODULES or self._host_modules is None:
            return None
        try:
            return self._host_modules.get_module(name)
        except Exception:  # noqa: BLE001 - unknown names are reported by exists()
            return None

    def exists(self, name: str) -> bool:
        if name in EXECUTOR_MODULES:
            return True
        if self._host_modules is None:
            return False
        return name in getattr(self._host_modules, "MODULES", {}) or self.spec(name) is not None

    def free_form(self, name: str) -> bool:
        if name in _EXECUTOR_FREE_FORM:
            return True
        spec = self.spec(name)
        return bool(spec is not None and spec.free_form)


class PlaybookParser:
    """Parses one playbook file (and everything it imports) into a ``Playbook``."""

    def __init__(self, *, catalog: ModuleCatalog | None = None, roles_path: list[str] | None = None):
        self.catalog = catalog or ModuleCatalog()
        self.roles_path = [Path(p) for p in (roles_path or [])]
        self._role_cache: dict[tuple[Path, str], Role] = {}
        self._task_file_stack: list[str] = []

    # -- playbooks

    def parse(self, path: str | os.PathLike) -> Playbook:
        path = Path(path)
        if not path.is_file():
            raise PlaybookError(f"{path}: playbook not found")
        plays = self._parse_playbook_file(path.resolve(), depth=0)
        return Playbook(path=path, plays=plays)

    def _parse_playbook_file(self, path: Path, depth: int) -> list[Play]:
        if depth > 20:
            raise PlaybookError(f"{path}: import_playbook nested too deep (a cycle?)")
        data = load_yaml(path)
        if data is None:
            return []
        if not isinstance(data, list):
            raise PlaybookError(f"{where(data, str(path))}: a playbook must be a list of plays")
        plays: list[Play] = []
        for entry in data:
            if not isinstance(entry, dict):
                raise PlaybookError(f"{path}: a play must be a mapping, got {entry!r}")
            imp = next((k for k in entry if normalize_module(str(k)) in ("import_playbook", "include")), None)
            if imp is not None:
                target = entry[imp]
                if _has_template(target):
                    raise PlaybookError(f"{where(entry)}: import_playbook path must not be templated: {target!r}")
                unknown = set(entry) - {imp, "name", "vars", "tags", "when"}
                if unknown:
                    raise PlaybookError(f"{where(entry)}: unknown keyword(s) for import_playbook: {', '.join(sorted(unknown))}")
                sub = (path.parent / str(target)).resolve()
                if not sub.is_file():
                    raise PlaybookError(f"{where(entry)}: import_playbook: {sub} not found")
                for play in self._parse_playbook_file(sub, depth + 1):
                    if entry.get("vars"):
                        play.vars = {**entry["vars"], **play.vars}
                    if entry.get("when") or entry.get("tags"):
                        extra = Inherited().merged({"when": entry.get("when"), "tags": entry.get("tags")})
                        for t in play.all_tasks():
                            t.inh.when = extra.when + t.inh.when
                            t.inh.tags = extra.tags | t.inh.tags
                    plays.append(play)
                continue
            plays.append(self._parse_play(entry, path))
        return plays

    def _parse_play(self, data: dict, path: Path) -> Play:
        loc = where(data, str(path))
        unknown = set(data) - PLAY_KEYWORDS
        if unknown:
            bad = sorted(str(k) for k in unknown)
            hint = ""
            if any(normalize_module(k) in self.catalog.names() for k in bad):
                hint = " (a task at play level? put it under 'tasks:')"
            raise PlaybookError(f"{loc}: unknown play keyword(s): {', '.join(bad)}{hint}")
        for key in _UNSUPPORTED_KEYWORDS & set(data):
            raise PlaybookError(f"{loc}: play keyword {key!r} is not supported by clusterctl")
        if "hosts" not in data or data["hosts"] in (None, ""):
            raise PlaybookError(f"{loc}: play has no 'hosts'")
        hosts = data["hosts"]
        if isinstance(hosts, list):
            hosts = ",".join(str(h) for h in hosts)
        name = str(data.get("name") or hosts)
        play_ctx = f"play {name!r}"
        for key in ("vars",):
            if data.get(key) is not None and not isinstance(data[key], dict):
                raise PlaybookError(f"{loc}: {play_ctx}: '{key}' must be a mapping")
        strategy = str(data.get("strategy", "linear"))
        if strategy not in ("linear", "free", "host_pinned"):
            raise PlaybookError(f"{loc}: {play_ctx}: unknown strategy {strategy!r} (linear, free)")
        for s in _as_list(data.get("serial")):
            if not (isinstance(s, int) or (isinstance(s, str) and re.fullmatch(r"\d+%?|\{\{.*\}\}", s.strip()))):
                raise PlaybookError(f"{loc}: {play_ctx}: bad serial value {s!r} (a number, a percentage or a list)")
        mfp = data.get("max_fail_percentage")
        if mfp is not None and not isinstance(mfp, (int, float)) and not (isinstance(mfp, str) and (mfp.strip().rstrip("%").replace(".", "", 1).isdigit() or _has_template(mfp))):
            raise PlaybookError(f"{loc}: {play_ctx}: bad max_fail_percentage {mfp!r}")
        base_dir = path.parent
        inh = Inherited(base_dir=base_dir).merged(
            {k: v for k, v in data.items() if k in _COMMON_KEYWORDS and k not in ("vars", "name")}
        )
        vars_files = _as_list(data.get("vars_files"))
        roles: list[Role] = []
        main_tasks: list = []
        handlers: list[Task] = []
        seen_roles: set[tuple] = set()
        for ref in _as_list(data.get("roles")):
            role, role_inh = self._role_ref(ref, base_dir, inh, loc)
            for dep in self._flatten_role(role):
                key = (dep.path, repr(sorted(dep.params.items())))
                if key in seen_roles:
                    continue  # Ansible runs a role once per play unless its params differ
                seen_roles.add(key)
                roles.append(dep)
                dep_inh = replace(role_inh, role=dep, base_dir=dep.tasks_dir, include_params={**dep.params})
                main_tasks.extend(self._role_tasks(dep, dep_inh))
                handlers.extend(self._role_handlers(dep, replace(dep_inh, when=(), tags=frozenset())))
        self._pending_handlers: list[Task] = []
        self._pending_roles: list[Role] = []
        pre = self._parse_task_list(data.get("pre_tasks"), path, inh, "pre_tasks")
        tasks = self._parse_task_list(data.get("tasks"), path, inh, "tasks")
        post = self._parse_task_list(data.get("post_tasks"), path, inh, "post_tasks")
        handler_inh = replace(inh, when=(), tags=frozenset())
        handlers = handlers + self._pending_handlers
        roles = roles + [r for r in self._pending_roles if r not in roles]
        handlers = handlers + self._flat_handlers(self._parse_task_list(data.get("handlers"), path, handler_inh, "handlers", handlers=True))
        play = Play(
            name=name, hosts=str(hosts), file=str(path), line=getattr(data, "line", 0), data=dict(data),
            vars=dict(data.get("vars") or {}), vars_files=vars_files, roles=roles, pre_tasks=pre,
            main_tasks=main_tasks + tasks, post_tasks=post, handlers=handlers, base_dir=base_dir,
        )
        self._check_notify(play)
        return play

    def _flat_handlers(self, items: list) -> list[Task]:
        out: list[Task] = []
        for item in items:
            if isinstance(item, Block):
                out.extend(item.tasks())
            else:
                out.append(item)
        return out

    def _check_notify(self, play: Play) -> None:
        names: set[str] = set()
        for h in play.handlers:
            if h.name:
                names.add(str(h.name))
                if h.inh.role is not None:
                    names.add(f"{h.inh.role.name} : {h.name}")
            names.update(h.listen)
        for t in play.all_tasks():
            for n in _as_list(t.kw.get("notify")) + list(t.inh.notify):
                if isinstance(n, str) and _has_template(n):
                    continue
                if str(n) not in names:
                    raise PlaybookError(f"{t.where}: task {t.display_name!r}: notifies handler {n!r}, which is not defined in play {play.name!r}")

    # -- roles

    def _find_role(self, name: str, base_dir: Path, loc: str) -> Path:
        candidates = [base_dir / "roles" / name, base_dir / name]
        candidates += [p / name for p in self.roles_path]
        env = os.environ.get("ANSIBLE_ROLES_PATH")
        if env:
            candidates += [Path(p) / name for p in env.split(os.pathsep) if p]
        for c in candidates:
            if c.is_dir():
                return c.resolve()
        raise PlaybookError(f"{loc}: role {name!r} not found (looked in {', '.join(str(c) for c in candidates)})")

    def _role_ref(self, ref: Any, base_dir: Path, inh: Inherited, loc: str) -> tuple[Role, Inherited]:
        if isinstance(ref, str):
            ref = {"role": ref}
        if not isinstance(ref, dict):
            raise PlaybookError(f"{loc}: bad role entry {ref!r}")
        loc = where(ref, loc)
        name = ref.get("role") or ref.get("name")
        if not name:
            raise PlaybookError(f"{loc}: role entry without 'role'")
        params = {k: v for k, v in ref.items() if k not in ROLE_REF_KEYWORDS}
        params.update(ref.get("vars") or {})
        role = self._load_role(str(name), base_dir, loc, params)
        role_inh = inh.merged({k: v for k, v in ref.items() if k in ROLE_REF_KEYWORDS and k != "vars"})
        return role, role_inh

    def _load_role(self, name: str, base_dir: Path, loc: str, params: dict) -> Role:
        path = self._find_role(name, base_dir, loc)
        key = (path, repr(sorted(params.items(), key=lambda kv: str(kv[0]))))
        if key in self._role_cache:
            return self._role_cache[key]
        role = Role(name=path.name if name.endswith(path.name) else name, path=path, params=params)
        role.defaults = self._role_vars_file(path / "defaults")
        role.vars = self._role_vars_file(path / "vars")
        meta = self._first_yaml(path / "meta")
        if meta is not None:
            if not isinstance(meta, dict):
                raise PlaybookError(f"{path}/meta/main.yml: must be a mapping")
            for dep in _as_list(meta.get("dependencies")):
                if isinstance(dep, str):
                    dep = {"role": dep}
                dep_name = dep.get("role") or dep.get("name")
                dep_params = {k: v for k, v in dep.items() if k not in ROLE_REF_KEYWORDS}
                dep_params.update(dep.get("vars") or {})
                role.dependencies.append(self._load_role(str(dep_name), path.parent.parent, where(dep, str(path)), dep_params))
        self._role_cache[key] = role
        return role

    def _flatten_role(self, role: Role, depth: int = 0) -> list[Role]:
        if depth > 20:
            raise PlaybookError(f"{role.path}: role dependencies nested too deep (a cycle?)")
        out: list[Role] = []
        for dep in role.dependencies:
            out.extend(self._flatten_role(dep, depth + 1))
        out.append(role)
        return out

    @staticmethod
    def _main_file(folder: Path) -> Path | None:
        for n in ("main.yml", "main.yaml", "main"):
            if (folder / n).is_file():
                return folder / n
        return None

    def _first_yaml(self, folder: Path) -> Any:
        f = self._main_file(folder)
        return load_yaml(f) if f else None

    def _role_vars_file(self, folder: Path) -> dict:
        data = self._first_yaml(folder)
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise PlaybookError(f"{self._main_file(folder)}: role variables must be a mapping")
        return dict(data)

    def _role_tasks(self, role: Role, inh: Inherited) -> list:
        f = self._main_file(role.tasks_dir)
        if f is None:
            return []
        return self._parse_task_file(f, inh, f"role {role.name!r} tasks")

    def _role_handlers(self, role: Role, inh: Inherited) -> list[Task]:
        f = self._main_file(role.path / "handlers")
        if f is None:
            return []
        return self._flat_handlers(self._parse_task_file(f, replace(inh, base_dir=f.parent), f"role {role.name!r} handlers", handlers=True))

    # -- task lists

    def _parse_task_file(self, path: Path, inh: Inherited, what: str, handlers: bool = False) -> list:
        key = str(path)
        if key in self._task_file_stack:
            raise PlaybookError(f"{path}: task file includes itself (cycle: {' -> '.join(self._task_file_stack + [key])})")
        self._task_file_stack.append(key)
        try:
            data = load_yaml(path)
            if data is None:
                return []
            return self._parse_task_list(data, path, replace(inh, base_dir=path.parent if inh.role is None else inh.base_dir), what, handlers=handlers)
        finally:
            self._task_file_stack.pop()

    def _parse_task_list(self, data: Any, path: Path, inh: Inherited, what: str, handlers: bool = False) -> list:
        if data is None:
            return []
        if not isinstance(data, list):
            raise PlaybookError(f"{where(data, str(path))}: {what} must be a list of tasks")
        out: list = []
        for entry in data:
            if entry is None:
                continue
            if not isinstance(entry, dict):
                raise PlaybookError(f"{path}: {what}: a task must be a mapping, got {entry!r}")
            if "block" in entry:
                out.append(self._parse_block(entry, path, inh, what, handlers))
            else:
                out.extend(self._parse_task(entry, path, inh, handlers))
        return out

    def _parse_block(self, data: dict, path: Path, inh: Inherited, what: str, handlers: bool) -> Block:
        loc = where(data, str(path))
        unknown = set(data) - BLOCK_KEYWORDS
        if unknown:
            raise PlaybookError(f"{loc}: block{' ' + repr(data['name']) if data.get('name') else ''}: unknown keyword(s): {', '.join(sorted(map(str, unknown)))}")
        binh = inh.merged(data)
        return Block(
            block=self._parse_task_list(data.get("block") or [], path, binh, what, handlers),
            rescue=self._parse_task_list(data.get("rescue") or [], path, binh, what, handlers),
            always=self._parse_task_list(data.get("always") or [], path, binh, what, handlers),
            file=str(path), line=getattr(data, "line", 0), name=data.get("name"),
        )

    def _parse_task(self, data: dict, path: Path, inh: Inherited, handlers: bool) -> list:
        loc = where(data, str(path))
        tname = data.get("name")
        label = f"task {tname!r}" if tname else "task"
        candidates = [k for k in data if k not in TASK_KEYWORDS and k not in _LOOP_KEYS]
        action: str | None = None
        raw_args: Any = None
        if "action" in data or "local_action" in data:
            key = "action" if "action" in data else "local_action"
            value = data[key]
            if isinstance(value, dict):
                value = dict(value)
                mod = value.pop("module", None)
                action, raw_args = mod, value
            else:
                head, _, rest = str(value).strip().partition(" ")
                action, raw_args = head, rest
            if key == "local_action":
                data = Located(data)  # keep location, add delegate_to
                data.file, data.line = path and str(path), getattr(data, "line", 0)
                data["delegate_to"] = "localhost"
            if candidates:
                raise PlaybookError(f"{loc}: {label}: unknown keyword(s) {', '.join(map(str, candidates))} beside '{key}'")
        else:
            if not candidates:
                raise PlaybookError(f"{loc}: {label}: no module/action given")
            if len(candidates) > 1:
                known = [c for c in candidates if self.catalog.exists(normalize_module(str(c)))]
                unknown = [c for c in candidates if c not in known]
                if len(known) == 1 and unknown:
                    raise PlaybookError(f"{loc}: {label}: unknown keyword(s): {', '.join(map(str, unknown))}")
                if not known:
                    raise PlaybookError(f"{loc}: {label}: unknown module or keyword(s): {', '.join(map(str, candidates))}")
                raise PlaybookError(f"{loc}: {label}: more than one module given: {', '.join(map(str, known))}")
            action = str(candidates[0])
            raw_args = data[candidates[0]]
        action = normalize_module(str(action))
        if not self.catalog.exists(action):
            raise PlaybookError(f"{loc}: {label}: unknown module {action!r}")
        label = f"task {tname!r}" if tname else f"task '{action}'"
        for key in _UNSUPPORTED_KEYWORDS & set(data):
            raise PlaybookError(f"{loc}: {label}: keyword {key!r} is not supported by clusterctl")
        loops = [k for k in data if k in _LOOP_KEYS]
        if len(loops) + ("loop" in data) > 1:
            raise PlaybookError(f"{loc}: {label}: more than one loop keyword")
        for lk in loops:
            if lk not in _SUPPORTED_LOOPS:
                raise PlaybookError(f"{loc}: {label}: {lk} is not supported (use loop:)")
        if "listen" in data and not handlers:
            raise PlaybookError(f"{loc}: {label}: 'listen' is only valid on handlers")
        args = self._task_args(action, raw_args, data, loc, label)
        if action in ("import_role", "include_role"):
            return self._role_include(action, args, data, path, inh, loc, label)
        kw = {k: v for k, v in data.items() if k in TASK_KEYWORDS or k in _LOOP_KEYS}
        if data.get("vars") is not None and not isinstance(data["vars"], dict):
            raise PlaybookError(f"{loc}: {label}: 'vars' must be a mapping")
        tinh = inh.merged({k: v for k, v in data.items() if k in _COMMON_KEYWORDS and k != "vars"})
        if action == "import_tasks":
            return self._import_tasks(args, data, path, tinh, loc, label, handlers)
        task = Task(action=action, args=args, name=tname, file=str(path), line=getattr(data, "line", 0), kw=kw, inh=tinh)
        self._validate_args(task, label)
        if action == "include_tasks":
            target = args.get("file") or args.get("_raw_params")
            if not _has_template(target):
                file = self._resolve_task_file(str(target), tinh, loc, label)
                sub_inh = tinh.merged({"vars": data.get("vars")}, vars_key="vars")
                task.static_include = self._parse_task_file(file, replace(sub_inh, when=(), notify=()), f"{label} include", handlers)
        return [task]

    def _task_args(self, action: str, raw: Any, data: dict, loc: str, label: str) -> dict:
        free_form = self.catalog.free_form(action)
        if raw is None:
            args: dict = {}
        elif isinstance(raw, dict):
            args = dict(raw)
        elif isinstance(raw, (str, int, float)) and not isinstance(raw, bool):
            try:
                args = parse_kv(str(raw), free_form=free_form)
            except ValueError as exc:
                raise PlaybookError(f"{loc}: {label}: bad arguments for {action}: {exc}") from exc
        else:
            raise PlaybookError(f"{loc}: {label}: arguments of {action} must be a mapping or a k=v string, got {type(raw).__name__}")
        extra = data.get("args")
        if extra is not None:
            if not isinstance(extra, dict):
                raise PlaybookError(f"{loc}: {label}: 'args' must be a mapping")
            args = {**extra, **args}
        if action in ("include_tasks", "import_tasks", "include_vars") and "_raw_params" in args and "file" not in args:
            pass
        return args

    def _validate_args(self, task: Task, label: str) -> None:
        loc = task.where
        a = task.args
        if task.action == "meta":
            what = a.get("_raw_params")
            if what not in META_ACTIONS:
                raise PlaybookError(f"{loc}: {label}: unknown meta action {what!r} ({', '.join(sorted(META_ACTIONS))})")
            return
        if task.action in ("include_tasks", "import_tasks") and not (a.get("file") or a.get("_raw_params")):
            raise PlaybookError(f"{loc}: {label}: {task.action} needs a file")
        if task.action == "include_vars" and not (a.get("file") or a.get("_raw_params") or a.get("dir")):
            raise PlaybookError(f"{loc}: {label}: include_vars needs a file")
        for req in _EXECUTOR_REQUIRED.get(task.action, ()):
            if a.get(req) is None:
                raise PlaybookError(f"{loc}: {label}: {task.action}: missing required arguments: {req}")
        if task.action == "debug" and "msg" in a and "var" in a:
            raise PlaybookError(f"{loc}: {label}: debug: 'msg' and 'var' are mutually exclusive")
        if task.action == "pause" and not set(a) <= {"seconds", "minutes", "prompt", "echo"}:
            raise PlaybookError(f"{loc}: {label}: pause: unknown argument(s) {', '.join(sorted(set(a) - {'seconds', 'minutes', 'prompt', 'echo'}))}")
        spec = self.catalog.spec(task.action)
        if spec is None:
            return
        from clusterctl.provision.errors import ClusterctlError

        try:
            missing = sorted(r for r in spec.required if a.get(r) is None)
            if missing:
                raise PlaybookError(f"{task.action}: missing required arguments: {', '.join(missing)}")
            if spec.validate is not None and not _has_template(a):
                spec.validate(dict(a))
        except ClusterctlError as exc:
            raise PlaybookError(f"{loc}: {label}: {exc}") from exc
        except (TypeError, ValueError) as exc:
            raise PlaybookError(f"{loc}: {label}: {task.action}: {exc}") from exc

    def _resolve_task_file(self, name: str, inh: Inherited, loc: str, label: str) -> Path:
        candidates = [inh.base_dir / name]
        if inh.role is not None:
            candidates.insert(0, inh.role.tasks_dir / name)
        for c in candidates:
            if c.is_file():
                return c.resolve()
        raise PlaybookError(f"{loc}: {label}: task file {name!r} not found (looked in {', '.join(str(c) for c in candidates)})")

    def _import_tasks(self, args: dict, data: dict, path: Path, inh: Inherited, loc: str, label: str, handlers: bool) -> list:
        target = args.get("file") or args.get("_raw_params")
        if not target:
            raise PlaybookError(f"{loc}: {label}: import_tasks needs a file")
        if _has_template(target):
            raise PlaybookError(f"{loc}: {label}: import_tasks is static; its file name cannot be templated (use include_tasks)")
        file = self._resolve_task_file(str(target), inh, loc, label)
        sub = inh.merged({"vars": data.get("vars")})
        return self._parse_task_file(file, sub, f"{label} import", handlers)

    def _role_include(self, action: str, args: dict, data: dict, path: Path, inh: Inherited, loc: str, label: str) -> list:
        name = args.get("name") or args.get("_raw_params")
        if not name or _has_template(name):
            raise PlaybookError(f"{loc}: {label}: {action} needs a static role name")
        base = inh.role.path.parent.parent if inh.role is not None else inh.base_dir
        params = dict(data.get("vars") or {})
        role = self._load_role(str(name), base, loc, params)
        tinh = inh.merged({k: v for k, v in data.items() if k in _COMMON_KEYWORDS and k != "vars"})
        out: list = []
        for dep in self._flatten_role(role):
            dep_inh = replace(tinh, role=dep, base_dir=dep.tasks_dir, include_params={**tinh.include_params, **dep.params})
            out.extend(self._role_tasks(dep, dep_inh))
        # a role pulled in by a task brings its handlers and defaults into the play
        for dep in self._flatten_role(role):
            if dep not in getattr(self, "_pending_roles", []):
                self._pending_roles = getattr(self, "_pending_roles", []) + [dep]
                dep_inh = replace(tinh, role=dep, base_dir=dep.tasks_dir, when=(), tags=frozenset())
                self._pending_handlers = getattr(self, "_pending_handlers", []) + self._role_handlers(dep, dep_inh)
        return [Block(block=out, rescue=[], always=[], file=str(path), line=getattr(data, "line", 0), name=f"role {name}")]


def parse_playbook(path: str | os.PathLike, *, roles_path: list[str] | None = None) -> Playbook:
    """Parse and validate a playbook (and its imports, roles, static includes)."""
    return PlaybookParser(roles_path=roles_path).parse(path)


def parse_task_file(path: str | os.PathLike, inh: Inherited) -> list:
    """Parse a task file named at run time by ``include_tasks``."""
    return PlaybookParser()._parse_task_file(Path(path), inh, f"include {path}")


# ---------------------------------------------------------------- static variable check


_JINJA_GLOBALS = {
    "range", "dict", "lipsum", "cycler", "joiner", "namespace", "lookup", "query", "q", "now", "undef",
    "true", "false", "none", "True", "False", "None", "loop", "varargs", "kwargs", "caller", "self",
}
MAGIC_VARS = {
    "hostvars", "groups", "group_names", "inventory_hostname", "inventory_hostname_short", "play_hosts",
    "ansible_play_hosts", "ansible_play_hosts_all", "ansible_play_batch", "ansible_play_name", "playbook_dir",
    "role_path", "role_name", "ansible_check_mode", "ansible_diff_mode", "omit", "ansible_facts", "inventory_dir",
    "inventory_file", "ansible_version", "ansible_run_tags", "ansible_skip_tags", "ansible_verbosity",
    "ansible_limit", "ansible_forks", "ansible_loop", "ansible_loop_var", "ansible_index_var", "ansible_failed_task",
    "ansible_failed_result", "ansible_parent_role_names", "ansible_role_names", "ansible_play_role_names",
    "ansible_config_file", "ansible_playbook_python", "ansible_search_path", "ansible_collection_name",
    "environment", "ansible_local", "ansible_host", "ansible_port", "ansible_user", "ansible_connection",
    "ansible_become", "ansible_become_user", "ansible_ssh_private_key_file", "ansible_python_interpreter",
    "ansible_ssh_common_args", "ansible_ssh_extra_args", "ansible_become_method", "ansible_become_password",
    "ansible_password", "ansible_ssh_pass", "ansible_delegated_vars", "item", "ansible_index",
    "ansible_managed", "template_path", "template_fullpath", "template_host", "template_uid", "template_mtime",
}


@dataclass
class UndefinedReference:
    name: str
    where: str
    task: str


def _analysis_env():
    """A Jinja2 environment that knows Ansible's filters and tests (the templating engine's)."""
    import jinja2

    env = jinja2.Environment(extensions=["jinja2.ext.do", "jinja2.ext.loopcontrols"])
    try:
        from clusterctl.provision import templating

        base = getattr(templating, "_ENV", None)
        if base is not None:
            env.filters.update(base.filters)
            env.tests.update(base.tests)
    except ImportError:
        pass
    return env


def _template_strings(value: Any, *, bare: bool = False) -> Iterator[str]:
    if isinstance(value, str):
        if bare and "{{" not in value and "{%" not in value:
            yield "{{ " + value + " }}"
        elif "{{" in value or "{%" in value:
            yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _template_strings(k)
            yield from _template_strings(v, bare=False)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _template_strings(v, bare=bare)


def _referenced_names(env, text: str) -> tuple[set[str], set[str]]:
    """Names a template reads, and names it only reads behind ``default``/``is defined`` guards."""
    from jinja2 import nodes

    try:
        ast = env.parse(text)
    except Exception:  # noqa: BLE001 - syntax errors surface when the template renders
        return set(), set()
    from jinja2 import meta

    try:
        undeclared = meta.find_undeclared_variables(ast)
    except Exception:  # noqa: BLE001 - e.g. a filter or test this environment lacks: no verdict
        return set(), set()
    guarded: set[str] = set()
    for node in ast.find_all((nodes.Filter, nodes.Test)):
        if node.name in ("default", "d", "defined", "undefined", "mandatory") and isinstance(node.node, (nodes.Name, nodes.Getattr, nodes.Getitem)):
            base = node.node
            while isinstance(base, (nodes.Getattr, nodes.Getitem)):
                base = base.node
            if isinstance(base, nodes.Name):
                guarded.add(base.name)
    return set(undeclared), guarded


def undefined_variables(playbook: Playbook, known: set[str], *, template_env=None) -> list[UndefinedReference]:
    """Jinja2 names used in the playbook (and its static templates) that nothing could define.

    ``known`` holds the names the inventory and extra vars define. A name counts as defined when any
    variable source in the playbook could set it (vars, vars_files, role defaults/vars, register,
    set_fact, loop vars, include params), when it is a magic variable, a fact (if facts can be
    gathered), or when the playbook guards it anywhere with ``default``/``is defined``. When the
    playbook loads variables we cannot see statically (templated vars_files or include_vars), the
    check stands down rather than guess.
    """
    env = template_env or _analysis_env()
    defined = set(known) | MAGIC_VARS | _JINJA_GLOBALS
    facts_possible = False
    uses: list[tuple[str, str, str]] = []  # (template text, where, task)
    guarded: set[str] = set()
    template_files: list[tuple[Path, str, str]] = []

    def note(value: Any, loc: str, task: str, *, bare: bool = False) -> None:
        for text in _template_strings(value, bare=bare):
            uses.append((text, loc, task))

    for play in playbook.plays:
        ploc = f"{play.file}:{play.line}"
        defined |= set(play.vars)
        note(play.vars, ploc, f"play {play.name!r}")
        note(play.hosts, ploc, f"play {play.name!r}")
        if play.gather_facts not in (False, "false", "no", "False"):
            facts_possible = True
        for vf in play.vars_files:
            for name in _as_list(vf):
                if _has_template(name):
                    return []
                p = play.base_dir / str(name)
                if p.is_file():
                    data = load_yaml(p)
                    if isinstance(data, dict):
                        defined |= set(data)
                        note(data, str(p), f"play {play.name!r}")
        for role in play.roles:
            defined |= set(role.defaults) | set(role.vars) | set(role.params)
            note(role.defaults, str(role.path / "defaults"), f"role {role.name!r}")
            note(role.vars, str(role.path / "vars"), f"role {role.name!r}")
        for t in _all_tasks_deep(play):
            tloc, tname = t.where, f"task {t.display_name!r}"
            defined |= set(t.inh.vars) | set(t.inh.include_params) | set(t.kw.get("vars") or {})
            if t.inh.role is not None:
                defined |= set(t.inh.role.defaults) | set(t.inh.role.vars) | set(t.inh.role.params)
            if t.kw.get("register"):
                defined.add(str(t.kw["register"]))
            lc = t.kw.get("loop_control") or {}
            if isinstance(lc, dict):
                defined |= {str(lc.get("loop_var", "item")), str(lc.get("index_var", "item"))}
            if t.action == "set_fact":
                defined |= {k for k in t.args if k != "cacheable"}
            if t.action in ("setup", "gather_facts"):
                facts_possible = True
            if t.action == "include_tasks" and t.static_include is None:
                return []  # a task file chosen at run time may define anything
            if t.action == "include_vars":
                target = t.args.get("file") or t.args.get("_raw_params")
                if t.args.get("name"):
                    defined.add(str(t.args["name"]))
                elif target and not _has_template(target):
                    for base in ([t.inh.role.path / "vars"] if t.inh.role else []) + [t.inh.base_dir, play.base_dir]:
                        p = base / str(target)
                        if p.is_file():
                            data = load_yaml(p)
                            if isinstance(data, dict):
                                defined |= set(data)
                            break
                    else:
                        return []
                else:
                    return []
            note(t.args, tloc, tname)
            note(t.inh.vars, tloc, tname)
            for key in ("when", "changed_when", "failed_when", "until"):
                values = list(t.inh.when) if key == "when" else _as_list(t.kw.get(key))
                for cond in values:
                    if isinstance(cond, str):
                        note(cond, tloc, tname, bare=True)
            for key in ("loop", "with_items", "with_list", "with_dict", "with_indexed_items", "environment", "delegate_to", "notify"):
                if key in t.kw:
                    note(t.kw[key], tloc, tname)
            note(t.kw.get("vars"), tloc, tname)
            if t.action == "debug" and isinstance(t.args.get("var"), str):
                note(t.args["var"], tloc, tname, bare=True)
            if t.action == "assert":
                for cond in _as_list(t.args.get("that")):
                    if isinstance(cond, str):
                        note(cond, tloc, tname, bare=True)
            if t.action == "template":
                src = t.args.get("src")
                if isinstance(src, str) and not _has_template(src):
                    dirs = ([t.inh.role.templates_dir] if t.inh.role else []) + [t.inh.base_dir / "templates", t.inh.base_dir, play.base_dir / "templates", play.base_dir]
                    for d in dirs:
                        if (d / src).is_file():
                            template_files.append((d / src, tloc, tname))
                            break
    for path, tloc, tname in template_files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        uses.append((text, f"{path} (template of {tloc})", tname))
    found: list[UndefinedReference] = []
    parsed: list[tuple[set[str], str, str]] = []
    for text, loc, task in uses:
        names, g = _referenced_names(env, text)
        guarded |= g
        parsed.append((names, loc, task))
    seen: set[str] = set()
    for names, loc, task in parsed:
        for name in sorted(names):
            if name in defined or name in guarded or name in seen:
                continue
            if facts_possible and (name.startswith("ansible_") or name.startswith("facter_")):
                continue
            seen.add(name)
            found.append(UndefinedReference(name=name, where=loc, task=task))
    return found


def _all_tasks_deep(play: Play) -> Iterator[Task]:
    seen: set[int] = set()
    for t in play.all_tasks():
        if id(t) in seen:
            continue
        seen.add(id(t))
        yield t
        if t.static_include:
            for s in _iter_tasks(t.static_include):
                if id(s) not in seen:
                    seen.add(id(s))
                    yield s
