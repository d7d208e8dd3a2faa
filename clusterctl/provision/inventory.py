"""Ansible inventories: INI and YAML files, group_vars/host_vars folders, host patterns.

This module owns the *static* picture of the fleet: which hosts exist, which groups they are in,
and the inventory-level variables each one gets. It follows ansible-core 2.19's own behaviour
(checked against ``ansible-inventory --list`` in the tests), not its docs where the two differ:

- INI: the lines before any section are ``ungrouped``; ``[g]``, ``[g:children]`` and ``[g:vars]``
  sections (``:vars`` and ``:children`` of a group declared later are fine, an undeclared one is
  an error); ranges ``node[01:20]``, ``[a:c]``, ``[1:9:2]``; ``host:port``. Values, inline or in
  ``[g:vars]``, go through ``ast.literal_eval`` (``n=3`` is an int, ``x="{'a': 1}"`` a dict,
  ``f=FALSE`` stays a string) — ansible-core does this for ``:vars`` too, although its docs say
  they stay strings (ansible/ansible#86229); we do what it does, so playbooks behave the same.
- YAML: ``all/children/hosts/vars`` nested mappings, ranges in host keys too.
- Variables files beside every source file (or inside a directory source):
  ``group_vars/NAME``, ``NAME.yml``, ``NAME.yaml``, ``NAME.json`` (the first that exists) or a
  folder ``NAME/`` whose files are merged in name order.
- Merging (``Inventory.host_vars``), as ansible's VariableManager layers them: ``all`` inline <
  other groups inline (by depth, priority, name) < ``group_vars/all`` files < other groups'
  files (same order) < host inline < host_vars files. Top-level keys replace
  (``hash_behaviour=replace``).
- Host patterns (``Inventory.select``): ``all``/``*``, names, groups, globs, ``~regex``,
  ``a:b``/``a,b``, ``&`` intersections, ``!`` exclusions, subscripts ``web[0]``/``web[1:3]``.

Errors are ``InventoryError`` naming the file and line.
"""

from __future__ import annotations

import ast
import copy
import fnmatch
import getpass
import json
import os
import re
import shlex
import string
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from clusterctl.provision.errors import InventoryError

#: names that make ansible create an implicit localhost when not in the inventory
LOCALHOST_NAMES = ("127.0.0.1", "localhost", "::1")
#: variables ansible sets on every host itself and leaves out of `ansible-inventory --list`
INTERNAL_VARS = ("inventory_file", "inventory_dir")
_VARS_EXTENSIONS = ("", ".yml", ".yaml", ".json")
_YAML_EXTENSIONS = (".yml", ".yaml", ".json")
#: files in a directory source that are never inventories (ansible's INVENTORY_IGNORE_EXTS)
_IGNORED_EXTS = (".pyc", ".pyo", ".swp", ".bak", "~", ".rpm", ".md", ".txt", ".rst", ".orig", ".cfg", ".retry")
_IGNORED_NAMES = re.compile(r"^(\..*|host_vars|group_vars|vars_plugins)$")


@dataclass
class Host:
    """One inventory host. ``vars`` are its own (inline) variables; ``groups`` its direct groups
    and their ancestors, without ``all``."""

    name: str
    vars: dict = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)
    source: str | None = None  # the inventory file that first named it
    implicit: bool = False  # the implicit localhost ansible makes when it is not listed


@dataclass
class Group:
    """One inventory group. ``hosts`` are its direct members; ``children`` its direct subgroups."""

    name: str
    hosts: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    vars: dict = field(default_factory=dict)
    parents: list[str] = field(default_factory=list)
    depth: int = 0
    priority: int = 1


class Inventory:
    """The resolved inventory. Build it with :func:`load_inventory`."""

    def __init__(self) -> None:
        self.hosts: dict[str, Host] = {}
        self.groups: dict[str, Group] = {}
        self.sources: list[str] = []
        self._implicit: dict[str, Host] = {}
        # per inventory source (in order): entity name -> vars from group_vars/ and host_vars/
        self._group_file_vars: list[dict[str, dict]] = []
        self._host_file_vars: list[dict[str, dict]] = []
        self._host_vars_cache: dict[tuple, dict] = {}
        self._basedir_vars_cache: dict[tuple, tuple[list[dict], list[dict]]] = {}
        self._members: dict[str, set[str]] = {}  # group -> its direct hosts, for O(1) membership
        self._descendant_hosts_cache: dict[str, list[str]] = {}
        self.add_group("all")
        self.add_group("ungrouped")
        self.add_child("all", "ungrouped")

    # ----------------------------------------------------------------- building
    def add_group(self, name: str) -> Group:
        group = self.groups.get(name)
        if group is None:
            group = self.groups[name] = Group(name)
            self._invalidate()
        return group

    def add_host(self, name: str, group: str | None = None, *, port: int | None = None, source: str | None = None) -> Host:
        host = self.hosts.get(name)
        if host is None:
            host = self.hosts[name] = Host(name, source=source)
            if port is not None:
                host.vars["ansible_port"] = int(port)
        elif port is not None:
            host.vars["ansible_port"] = int(port)
        if group is not None:
            members = self._members.setdefault(group, set(self.groups[group].hosts))
            if name not in members:
                members.add(name)
                self.groups[group].hosts.append(name)
        self._invalidate()
        return host

    def add_child(self, parent: str, child: str) -> None:
        """Make group ``child`` a subgroup of ``parent`` (refusing loops, as ansible does)."""
        p, c = self.groups[parent], self.groups[child]
        if parent == child:
            raise InventoryError(f"group {parent!r} cannot be a child of itself")
        if child in p.children:
            return
        if child in self._ancestors(parent):
            raise InventoryError(f"adding group {child!r} as child to {parent!r} creates a recursive dependency loop")
        p.children.append(child)
        if parent not in c.parents:
            c.parents.append(parent)
        self._invalidate()

    def set_group_var(self, group: str, key: str, value: Any) -> None:
        if key == "ansible_group_priority":
            try:
                self.groups[group].priority = int(value)
            except (TypeError, ValueError) as exc:
                raise InventoryError(f"group {group}: ansible_group_priority must be an integer, got {value!r}") from exc
            return
        self.groups[group].vars[key] = value
        self._invalidate()

    def set_host_var(self, host: str, key: str, value: Any) -> None:
        self.hosts[host].vars[key] = value
        self._invalidate()

    def _invalidate(self) -> None:
        self._host_vars_cache.clear()
        self._basedir_vars_cache.clear()
        self._descendant_hosts_cache.clear()

    # ------------------------------------------------------------ relationships
    def _ancestors(self, group: str) -> set[str]:
        seen: set[str] = set()
        todo = list(self.groups[group].parents)
        while todo:
            g = todo.pop()
            if g not in seen:
                seen.add(g)
                todo.extend(self.groups[g].parents)
        return seen

    def _ordered_ancestors(self, group: str) -> list[str]:
        out: list[str] = []
        frontier = list(self.groups[group].parents)
        while frontier:
            nxt: list[str] = []
            for g in frontier:
                if g not in out:
                    out.append(g)
                    nxt.extend(self.groups[g].parents)
            frontier = nxt
        return out

    def _descendants(self, group: str) -> list[str]:
        """The group itself, its children, then grandchildren... (ansible's preserve_ordering walk)."""
        ordered = [group]
        seen = {group}
        frontier = [group]
        while frontier:
            nxt: list[str] = []
            for g in frontier:
                for child in self.groups[g].children:
                    if child not in seen:
                        seen.add(child)
                        ordered.append(child)
                        nxt.append(child)
            frontier = nxt
        return ordered

    def group_hosts(self, group: str) -> list[str]:
        """Every host in ``group`` or any of its descendants, in ansible's order."""
        cached = self._descendant_hosts_cache.get(group)
        if cached is not None:
            return cached
        hosts: list[str] = []
        seen: set[str] = set()
        for g in self._descendants(group):
            for h in self.groups[g].hosts:
                if h not in seen:
                    seen.add(h)
                    hosts.append(h)
        self._descendant_hosts_cache[group] = hosts
        return hosts

    def _compute_depths(self) -> None:
        for g in self.groups.values():
            g.depth = 0
        # longest path from 'all'; the graph is a DAG (add_child refuses loops)
        order = self._topological()
        for name in order:
            g = self.groups[name]
            for child in g.children:
                c = self.groups[child]
                c.depth = max(c.depth, g.depth + 1)

    def _topological(self) -> list[str]:
        indeg = {n: len(g.parents) for n, g in self.groups.items()}
        ready = [n for n, d in indeg.items() if d == 0]
        out: list[str] = []
        while ready:
            n = ready.pop(0)
            out.append(n)
            for child in self.groups[n].children:
                indeg[child] -= 1
                if indeg[child] == 0:
                    ready.append(child)
        return out

    def reconcile(self) -> None:
        """Ansible's rules after parsing: every group under ``all``; hosts with no group in ``ungrouped``."""
        for name, group in self.groups.items():
            if name != "all" and not group.parents:
                self.add_child("all", name)
        direct: dict[str, list[str]] = {name: [] for name in self.hosts}
        for g in self.groups.values():
            for h in g.hosts:
                direct.setdefault(h, []).append(g.name)
        ungrouped = self.groups["ungrouped"]
        keep_ungrouped = {h for h, gs in direct.items() if not [g for g in gs if g not in ("all", "ungrouped")]}
        ungrouped.hosts = [h for h in ungrouped.hosts if h in keep_ungrouped]
        listed = set(ungrouped.hosts)
        for name in self.hosts:
            if name in keep_ungrouped and name not in listed:
                ungrouped.hosts.append(name)
                direct[name].append("ungrouped")
        self._members["ungrouped"] = set(ungrouped.hosts)
        self._compute_depths()
        ancestors = {g: list(reversed(self._ordered_ancestors(g))) for g in self.groups}
        for name, host in self.hosts.items():
            host.groups = self._host_groups(direct[name], ancestors)
        self._invalidate()

    @staticmethod
    def _host_groups(direct: list[str], ancestors: dict[str, list[str]]) -> list[str]:
        out: list[str] = []
        for g in direct:
            if g == "ungrouped" and len(direct) > 1:
                continue
            for a in ancestors[g]:
                if a not in out and a != "all":
                    out.append(a)
            if g not in out and g != "all":
                out.append(g)
        return out

    def get_host(self, name: str) -> Host | None:
        """The host called ``name``; ``localhost``/``127.0.0.1``/``::1`` exist implicitly."""
        host = self.hosts.get(name)
        if host is not None:
            return host
        if name in LOCALHOST_NAMES:
            for listed in LOCALHOST_NAMES:
                if listed in self.hosts:
                    return self.hosts[listed]
            host = self._implicit.get("localhost")
            if host is None:
                host = Host(name, vars={"ansible_connection": "local", "ansible_python_interpreter": sys.executable}, implicit=True)
                self._implicit["localhost"] = host
            return host
        return None

    # ----------------------------------------------------------------- patterns
    def select(self, pattern: str | list[str]) -> list[str]:
        """Host names matching an ansible host pattern, in ansible's order."""
        patterns = split_host_pattern(pattern)
        regular = [p for p in patterns if p[0] not in "&!"]
        inter = [p for p in patterns if p[0] == "&"]
        excl = [p for p in patterns if p[0] == "!"]
        hosts: list[str] = []
        present: set[str] = set()
        for p in (regular or ["all"]) + inter + excl:
            if p in self.hosts:
                if p not in present:
                    present.add(p)
                    hosts.append(p)
                continue
            matched = self._match_one(p)
            if p[0] == "!":
                drop = set(matched)
                hosts = [h for h in hosts if h not in drop]
                present -= drop
            elif p[0] == "&":
                keep = set(matched)
                hosts = [h for h in hosts if h in keep]
                present &= keep
            else:
                for h in matched:
                    if h not in present:
                        present.add(h)
                        hosts.append(h)
        return hosts

    def _match_one(self, pattern: str) -> list[str]:
        if pattern[0] in "&!":
            pattern = pattern[1:]
        expr, subscript = _split_subscript(pattern)
        hosts = self._enumerate(expr)
        if subscript is None or not hosts:
            return hosts
        start, end = subscript
        try:
            if end is None:
                return [hosts[start]]
            if end == -1:
                end = len(hosts) - 1
            return hosts[start : end + 1]
        except IndexError as exc:
            raise InventoryError(f"no hosts matched the subscripted pattern {pattern!r}") from exc

    def _enumerate(self, pattern: str) -> list[str]:
        if pattern in ("all", "*"):
            return list(self.group_hosts("all"))
        regex = _compile_pattern(pattern)
        results: list[str] = []
        matching_groups = [g for g in self.groups if regex.match(g)]
        for g in matching_groups:
            results.extend(self.group_hosts(g))
        if not matching_groups or pattern[0] == "~" or any(c in pattern for c in ".?*["):
            results.extend(h for h in self.hosts if regex.match(h))
        if not results and pattern in LOCALHOST_NAMES:
            self.get_host(pattern)
            results.append(pattern)
        seen: set[str] = set()
        return [h for h in results if not (h in seen or seen.add(h))]

    # ----------------------------------------------------------------- variables
    def group_vars(self, group: str) -> dict:
        """A group's own variables: inline, then its group_vars/ files (as ``ansible-inventory --export``)."""
        out = dict(self.groups[group].vars)
        for per_source in self._group_file_vars:
            out.update(per_source.get(group, {}))
        return out

    def host_vars(self, name: str, *, extra_basedirs: Iterable[str] = ()) -> dict:
        """Inventory-level variables of a host, layered as ansible's VariableManager does.

        ``extra_basedirs`` are folders whose ``group_vars/``/``host_vars/`` come after the
        inventory's at each level (ansible does this for the playbook's folder).
        """
        extra = tuple(extra_basedirs)
        key = (name, extra)
        cached = self._host_vars_cache.get(key)
        if cached is not None:
            return dict(cached)
        host = self.get_host(name)
        if host is None:
            raise InventoryError(f"host {name!r} is not in the inventory ({', '.join(self.sources) or 'no sources'})")
        basedir_vars = self._basedir_vars_cache.get(extra)
        if basedir_vars is None:
            basedir_vars = self._basedir_vars_cache[extra] = _load_basedirs_vars(extra, self)
        play_group_files, play_host_files = basedir_vars
        groups = sort_groups([self.groups[g] for g in host.groups if g in self.groups])
        # ansible's VARIABLE_PRECEDENCE: all_inventory, groups_inventory, all_plugins_inventory,
        # all_plugins_play, groups_plugins_inventory, groups_plugins_play; then the host's
        data: dict = {}
        data.update(self.groups["all"].vars)
        for g in groups:
            data.update(g.vars)
        for per_source in self._group_file_vars + play_group_files:
            data.update(per_source.get("all", {}))
        for per_source in self._group_file_vars + play_group_files:
            for g in groups:
                data.update(per_source.get(g.name, {}))
        data.update(host.vars)
        for per_source in self._host_file_vars + play_host_files:
            data.update(per_source.get(name, {}))
        data.setdefault("inventory_file", host.source)
        data.setdefault("inventory_dir", os.path.dirname(host.source) if host.source else None)
        self._host_vars_cache[key] = data
        return dict(data)

    def groups_dict(self) -> dict[str, list[str]]:
        """The ``groups`` magic variable: every group name -> its hosts (with descendants')."""
        return {name: list(self.group_hosts(name)) for name in self.groups}

    # ------------------------------------------------------------------ output
    def to_list_json(self, *, export: bool = False, limit: str | None = None) -> dict:
        """Exactly what ``ansible-inventory --list [--export] [--limit PATTERN]`` prints, as a dict."""
        result: dict[str, Any] = {}
        seen: set[str] = set()
        available = self.select(limit) if limit else self.group_hosts("all")
        available_set = set(available)

        def fmt(name: str) -> None:
            group = self.groups[name]
            entry: dict[str, Any] = {}
            if name != "all":
                entry["hosts"] = [h for h in group.hosts if h in available_set]
            entry["children"] = list(group.children)
            if export:
                gv = {k: v for k, v in self.group_vars(name).items() if k not in INTERNAL_VARS}
                if group.priority != 1:
                    gv["ansible_group_priority"] = group.priority
                entry["vars"] = gv
            result[name] = entry
            for child in group.children:
                if child not in seen:
                    seen.add(child)
                    fmt(child)
            for k in ("hosts", "vars", "children"):
                if k in entry and not entry[k]:
                    del entry[k]
            if not entry:
                del result[name]

        fmt("all")
        hostvars: dict[str, dict] = {}
        for name in available:
            if export:
                hv = dict(self.hosts[name].vars)
                for per_source in self._host_file_vars:
                    hv.update(per_source.get(name, {}))
            else:
                hv = self.host_vars(name)
            hv = {k: v for k, v in hv.items() if k not in INTERNAL_VARS}
            if hv:
                hostvars[name] = hv
        result["_meta"] = {"hostvars": hostvars, "profile": "inventory_legacy"}
        return result

    def to_yaml_data(self, *, export: bool = False, limit: str | None = None) -> dict:
        """What ``ansible-inventory --list --yaml`` prints (before YAML dumping), as a dict."""
        available = set(self.select(limit) if limit else self.group_hosts("all"))
        seen_hosts: set[str] = set()
        seen_groups: set[str] = set()

        def fmt(name: str) -> dict:
            group = self.groups[name]
            entry: dict[str, Any] = {"children": {}}
            for child in group.children:
                if child in seen_groups:
                    entry["children"][child] = {}
                else:
                    entry["children"].update(fmt(child))
                    seen_groups.add(child)
            entry["hosts"] = {}
            if name != "all":
                for h in group.hosts:
                    if h not in available:
                        continue
                    hv: dict = {}
                    if h not in seen_hosts:
                        seen_hosts.add(h)
                        if export:
                            hv = dict(self.hosts[h].vars)
                            for per_source in self._host_file_vars:
                                hv.update(per_source.get(h, {}))
                        else:
                            hv = self.host_vars(h)
                        hv = {k: v for k, v in hv.items() if k not in INTERNAL_VARS}
                    entry["hosts"][h] = hv
            if export:
                gv = {k: v for k, v in self.group_vars(name).items() if k not in INTERNAL_VARS}
                if group.priority != 1:
                    gv["ansible_group_priority"] = group.priority
                if gv:
                    entry["vars"] = gv
            for k in ("hosts", "vars", "children"):
                if k in entry and not entry[k]:
                    del entry[k]
            return {name: entry} if entry else {}

        return fmt("all")

    def host_json(self, name: str) -> dict:
        """What ``ansible-inventory --host NAME`` prints."""
        if self.get_host(name) is None:
            raise InventoryError(f"host {name!r} is not in the inventory")
        return {k: v for k, v in self.host_vars(name).items() if k not in INTERNAL_VARS}

    def graph(self, group: str = "all", *, show_vars: bool = False) -> str:
        """What ``ansible-inventory --graph [GROUP]`` prints."""
        if group not in self.groups:
            raise InventoryError(f"--graph needs a group name, {group!r} is not one")
        lines: list[str] = []

        def name_at(text: str, depth: int) -> str:
            return ("  |" * depth + "--" + text) if depth else text

        def walk(g: str, depth: int) -> None:
            lines.append(name_at(f"@{g}:", depth))
            for child in self.groups[g].children:
                walk(child, depth + 1)
            if g != "all":
                for h in self.groups[g].hosts:
                    lines.append(name_at(h, depth + 1))
                    if show_vars:
                        hv = {k: v for k, v in self.host_vars(h).items() if k not in INTERNAL_VARS}
                        for k, v in sorted(hv.items()):
                            lines.append(name_at(f"{{{k} = {v}}}", depth + 2))
            if show_vars:
                for k, v in sorted(self.group_vars(g).items()):
                    lines.append(name_at(f"{{{k} = {v}}}", depth + 1))

        walk(group, 0)
        return "\n".join(lines)


def sort_groups(groups: Iterable[Group]) -> list[Group]:
    """Ansible's order for merging group variables: depth, then priority, then name."""
    return sorted(groups, key=lambda g: (g.depth, g.priority, g.name))


# ------------------------------------------------------------------- patterns
_SUBSCRIPT = re.compile(r"^(.+)\[(?:(-?[0-9]+)|([0-9]+)([:-])([0-9]*))\]$")


def split_host_pattern(pattern: str | list[str]) -> list[str]:
    """``'a:b,c'`` -> ``['a', 'b', 'c']`` as ansible splits it (IPv6 and ranges survive)."""
    if isinstance(pattern, (list, tuple)):
        return [p for item in pattern for p in split_host_pattern(item)]
    pattern = str(pattern)
    if "," in pattern:
        parts = pattern.split(",")
    else:
        try:
            _parse_address(pattern)
            parts = [pattern]
        except ValueError:
            parts = re.findall(r"(?:[^\s:\[\]]|\[[^\]]*\])+", pattern)
    return [p.strip() for p in parts if p.strip()]


def _split_subscript(pattern: str) -> tuple[str, tuple[int, int | None] | None]:
    if pattern[0] == "~":
        return pattern, None
    m = _SUBSCRIPT.match(pattern)
    if not m:
        return pattern, None
    expr, idx, start, _sep, end = m.groups()
    if idx:
        return expr, (int(idx), None)
    return expr, (int(start), int(end) if end else -1)


def _compile_pattern(pattern: str) -> re.Pattern:
    try:
        if pattern[0] == "~":
            return re.compile(pattern[1:])
        return re.compile(fnmatch.translate(pattern))
    except re.error as exc:
        raise InventoryError(f"invalid host pattern {pattern!r}: {exc}") from exc


# ---------------------------------------------------------- host names, ranges
_HOSTPORT = re.compile(r"^((?:[^:\[\]]|\[[^\]]*\])+):([0-9]+)$")
_BRACKETED_HOSTPORT = re.compile(r"^\[(.+)\]:([0-9]+)$")


def _parse_address(address: str) -> tuple[str, int | None]:
    """Split ``host:port`` / ``[v6]:port``; a bare IPv6 address keeps its colons."""
    m = _BRACKETED_HOSTPORT.match(address)
    if m:
        return m.group(1), int(m.group(2))
    m = _HOSTPORT.match(address)
    if m:
        return m.group(1), int(m.group(2))
    if re.match(r"^[0-9a-fA-F:.\[\]]+$", address) and address.count(":") >= 2:
        return address, None  # IPv6, possibly with ranges
    stripped = re.sub(r"\[[^\]]*\]", "", address)
    if ":" in stripped or not address or any(c.isspace() for c in address):
        raise ValueError(f"not a host address: {address!r}")
    return address, None


def expand_hostname_range(pattern: str) -> list[str]:
    """``db[01:03]-x`` -> ``db01-x db02-x db03-x``; ``[a:c]``; ``[1:9:2]``; several ranges nest."""
    if "[" not in pattern or "]" not in pattern:
        return [pattern]
    head, rest = pattern.split("[", 1)
    nrange, tail = rest.split("]", 1)
    bounds = nrange.split(":")
    if len(bounds) not in (2, 3):
        raise ValueError("host range must be begin:end or begin:end:step")
    beg, end = bounds[0] or "0", bounds[1]
    step = bounds[2] if len(bounds) == 3 else "1"
    if not end:
        raise ValueError("host range must specify end value")
    if beg[0] == "0" and len(beg) > 1:
        if len(beg) != len(end):
            raise ValueError("host range must specify equal-length begin and end formats")
        width = len(beg)

        def fill(x: object) -> str:
            return str(x).zfill(width)
    else:
        fill = str
    try:
        i_beg, i_end = string.ascii_letters.index(beg), string.ascii_letters.index(end)
        if i_beg > i_end:
            raise ValueError("host range must have begin <= end")
        seq: Iterable = string.ascii_letters[i_beg : i_end + 1 : int(step)]
    except ValueError as exc:
        if "begin <= end" in str(exc):
            raise
        try:
            seq = range(int(beg), int(end) + 1, int(step))
        except ValueError as exc2:
            raise ValueError(f"bad host range [{nrange}]") from exc2
    out: list[str] = []
    for item in seq:
        for rest_name in expand_hostname_range(tail):
            out.append(f"{head}{fill(item)}{rest_name}")
    return out


def _expand_host_pattern(pattern: str) -> tuple[list[str], int | None]:
    try:
        base, port = _parse_address(pattern)
    except ValueError:
        base, port = pattern, None
    if re.search(r"\[[^\]]*:[^\]]*\]", base):
        return expand_hostname_range(base), port
    return [base], port


# ------------------------------------------------------------------- INI parser
_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:[#;].*)?$")
_GROUPNAME = re.compile(r"^([^:\]\s]+)\s*(?:#.*)?$")


def parse_ini_value(v: str) -> Any:
    """An INI value as ansible types it: a Python literal when it parses as one, else the string."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            value = ast.literal_eval(v)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return v
    return _coerce_literal(value)


def _coerce_literal(value: Any) -> Any:
    if isinstance(value, (list, tuple, set)):
        return [_coerce_literal(v) for v in value]
    if isinstance(value, dict):
        return {k: _coerce_literal(v) for k, v in value.items()}
    if value is ...:
        return "..."
    if isinstance(value, complex):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="surrogateescape")
    return value


def _parse_ini(inv: Inventory, path: str, text: str) -> None:
    pending: dict[str, dict] = {}
    group, state = "ungrouped", "hosts"

    def fail(lineno: int, msg: str) -> InventoryError:
        return InventoryError(f"{path}:{lineno}: {msg}")

    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        m = _SECTION.match(line)
        if m:
            group, state = m.group(1), m.group(2) or "hosts"
            if state not in ("hosts", "children", "vars"):
                raise fail(lineno, f"section [{group}:{state}] has unknown type {state!r} (hosts, children or vars)")
            if group not in inv.groups:
                if state == "vars" and group not in pending:
                    pending[group] = {"line": lineno, "state": "vars", "parents": []}
                inv.add_group(group)
            if group in pending and state != "vars":
                if pending[group]["state"] == "children":
                    _add_pending_children(inv, group, pending)
                else:
                    del pending[group]
            continue
        if line.startswith("[") and line.endswith("]"):
            raise fail(lineno, f"invalid section entry {line!r}: no spaces or other invalid characters allowed in a section name")
        if state == "hosts":
            try:
                tokens = shlex.split(line, comments=True)
            except ValueError as exc:
                raise fail(lineno, f"cannot parse host line {line!r}: {exc}") from exc
            if not tokens:
                continue
            if tokens[0].endswith(":"):
                raise fail(lineno, f"invalid host pattern {tokens[0]!r}: a trailing ':' is reserved for a port")
            if tokens[0] == "---":
                raise fail(lineno, "invalid host pattern '---': this looks like a YAML file")
            try:
                names, port = _expand_host_pattern(tokens[0])
            except ValueError as exc:
                raise fail(lineno, f"bad host pattern {tokens[0]!r}: {exc}") from exc
            variables: dict[str, Any] = {}
            for tok in tokens[1:]:
                if "=" not in tok:
                    raise fail(lineno, f"expected key=value host variable assignment, got {tok!r}")
                k, v = tok.split("=", 1)
                variables[k] = parse_ini_value(v)
            for i, name in enumerate(names):
                inv.add_host(name, group, port=port, source=path)
                for k, v in variables.items():
                    # hosts of a range must not share one mutable value
                    inv.set_host_var(name, k, v if i == 0 else copy.deepcopy(v))
        elif state == "vars":
            if "=" not in line:
                raise fail(lineno, f"expected key=value in [{group}:vars], got {line!r}")
            k, v = (part.strip() for part in line.split("=", 1))
            try:
                inv.set_group_var(group, k, parse_ini_value(v))
            except InventoryError as exc:
                raise fail(lineno, str(exc)) from exc
        else:  # children
            m = _GROUPNAME.match(line)
            if not m:
                raise fail(lineno, f"expected a group name in [{group}:children], got {line!r}")
            child = m.group(1)
            if child not in inv.groups:
                entry = pending.setdefault(child, {"line": lineno, "state": "children", "parents": []})
                entry["parents"].append(group)
            else:
                try:
                    inv.add_child(group, child)
                except InventoryError as exc:
                    raise fail(lineno, str(exc)) from exc
    for name, decl in pending.items():
        if decl["state"] == "vars":
            raise fail(decl["line"], f"section [{name}:vars] not valid for undefined group {name!r}")
        raise fail(decl["line"], f"section [{decl['parents'][-1]}:children] includes undefined group {name!r}")


def _add_pending_children(inv: Inventory, group: str, pending: dict) -> None:
    for parent in pending[group]["parents"]:
        inv.add_child(parent, group)
        if parent in pending and pending[parent]["state"] == "children":
            _add_pending_children(inv, parent, pending)
    del pending[group]


# ------------------------------------------------------------------ YAML parser
class _LineLoader(yaml.SafeLoader):
    """SafeLoader that keeps ansible's YAML 1.1 typing; errors carry line numbers."""


def _yaml_load(path: str, text: str) -> Any:
    try:
        return yaml.load(text, Loader=_LineLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else path
        problem = getattr(exc, "problem", None) or str(exc)
        raise InventoryError(f"{where}: YAML syntax error: {problem}") from exc


def _parse_yaml(inv: Inventory, path: str, data: Any) -> None:
    if not data:
        raise InventoryError(f"{path}: empty YAML inventory")
    if not isinstance(data, dict):
        raise InventoryError(f"{path}: YAML inventory must be a mapping of groups, got {type(data).__name__}")
    if data.get("plugin"):
        raise InventoryError(f"{path}: inventory plugin configurations are not supported (plugin: {data['plugin']})")
    for group_name, group_data in data.items():
        _parse_yaml_group(inv, path, str(group_name), group_data)


def _parse_yaml_group(inv: Inventory, path: str, group: str, data: Any) -> str:
    if data is not None and not isinstance(data, dict):
        # ansible warns and skips such keys
        return group
    inv.add_group(group)
    if not data:
        return group
    for section in ("vars", "children", "hosts"):
        if isinstance(data.get(section), str):
            data[section] = {data[section]: None}
        if section in data and not isinstance(data[section], (dict, type(None))):
            raise InventoryError(
                f'{path}: invalid "{section}" entry for group {group!r}: needs a mapping, found {type(data[section]).__name__}'
            )
    for key, value in data.items():
        if value is None:
            continue
        if key == "vars":
            for k, v in value.items():
                inv.set_group_var(group, str(k), v)
        elif key == "children":
            for sub, subdata in value.items():
                sub = _parse_yaml_group(inv, path, str(sub), subdata)
                if sub in inv.groups:
                    inv.add_child(group, sub)
        elif key == "hosts":
            for pattern, hvars in value.items():
                if not isinstance(pattern, str):
                    raise InventoryError(f"{path}: host {pattern!r} in group {group!r} must be a string (quote numbers)")
                if hvars is not None and not isinstance(hvars, dict):
                    raise InventoryError(f"{path}: variables of host {pattern!r} in group {group!r} must be a mapping")
                try:
                    names, port = _expand_host_pattern(pattern)
                except ValueError as exc:
                    raise InventoryError(f"{path}: bad host pattern {pattern!r}: {exc}") from exc
                for i, name in enumerate(names):
                    inv.add_host(name, group, port=port, source=path)
                    for k, v in (hvars or {}).items():
                        inv.set_host_var(name, str(k), v if i == 0 else copy.deepcopy(v))
    return group


# ------------------------------------------------------------- variables files
def load_vars_file(path: str) -> dict:
    """One group_vars/host_vars file (YAML or JSON); empty is ``{}``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InventoryError(f"{path}: cannot read variables file: {exc.strerror}") from exc
    data = _yaml_load(path, text)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InventoryError(f"{path}: variables file must be a mapping, got {type(data).__name__}")
    return data


def find_vars_files(folder: str, name: str) -> list[str]:
    """ansible's lookup: ``NAME``, ``NAME.yml``, ``NAME.yaml``, ``NAME.json`` — the first that exists;
    a directory is read recursively, files in name order."""
    base = os.path.join(folder, name)
    for ext in _VARS_EXTENSIONS:
        candidate = base + ext
        if os.path.exists(candidate):
            if os.path.isdir(candidate):
                return _dir_vars_files(candidate)
            return [candidate]
    return []


def _dir_vars_files(folder: str) -> list[str]:
    found: list[str] = []
    for entry in sorted(os.listdir(folder)):
        if entry.startswith(".") or entry.endswith("~"):
            continue
        full = os.path.join(folder, entry)
        ext = os.path.splitext(entry)[1]
        if os.path.isdir(full) and not ext:
            found.extend(_dir_vars_files(full))
        elif os.path.isfile(full) and (not ext or ext in _YAML_EXTENSIONS):
            found.append(full)
    return found


def _vars_for_entities(basedir: str, subdir: str, names: Iterable[str]) -> dict[str, dict]:
    folder = os.path.join(basedir, subdir)
    out: dict[str, dict] = {}
    if not os.path.isdir(folder):
        return out
    for name in names:
        if name.startswith(os.sep):
            continue
        merged: dict = {}
        for f in find_vars_files(folder, name):
            merged.update(load_vars_file(f))
        if merged:
            out[name] = merged
    return out


def _load_basedirs_vars(basedirs: tuple[str, ...], inv: Inventory) -> tuple[list[dict], list[dict]]:
    groups_files = [_vars_for_entities(d, "group_vars", inv.groups) for d in basedirs]
    hosts_files = [_vars_for_entities(d, "host_vars", list(inv.hosts) + list(inv._implicit)) for d in basedirs]
    return groups_files, hosts_files


# ------------------------------------------------------------------ loading
def _looks_yaml(path: str, text: str) -> Any:
    """The parsed YAML mapping when the file is a YAML inventory, else None (it is INI)."""
    ext = os.path.splitext(path)[1]
    if ext in _YAML_EXTENSIONS:
        return _yaml_load(path, text)
    if ext not in ("",):
        return None
    try:
        data = yaml.load(text, Loader=_LineLoader)  # noqa: S506
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def _parse_file(inv: Inventory, path: str) -> None:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InventoryError(f"{path}: cannot read inventory: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise InventoryError(f"{path}: inventory is not UTF-8 text") from exc
    data = _looks_yaml(path, text)
    if data is not None:
        _parse_yaml(inv, path, data)
    else:
        _parse_ini(inv, path, text)


def _dir_sources(folder: str) -> list[str]:
    out: list[str] = []
    for entry in sorted(os.listdir(folder)):
        if _IGNORED_NAMES.match(entry) or entry.endswith(_IGNORED_EXTS):
            continue
        full = os.path.join(folder, entry)
        if os.path.isdir(full):
            out.extend(_dir_sources(full))
        elif os.path.isfile(full):
            out.append(full)
    return out


def load_inventory(sources: list[str] | str) -> Inventory:
    """Read inventory files/folders (in order; later ones add to earlier ones) into an Inventory."""
    if isinstance(sources, (str, os.PathLike)):
        sources = [str(sources)]
    inv = Inventory()
    basedirs: list[str] = []
    for source in sources:
        source = str(source)
        if "," in source and not os.path.exists(source):
            # ansible's host_list plugin: `-i host1,host2,`
            for name in (s.strip() for s in source.split(",")):
                if name:
                    try:
                        base, port = _parse_address(name)
                    except ValueError:
                        base, port = name, None
                    inv.add_host(base, "ungrouped", port=port)
            inv.sources.append(source)
            continue
        if not os.path.exists(source):
            raise InventoryError(f"inventory source {source} does not exist")
        inv.sources.append(os.path.abspath(source))
        if os.path.isdir(source):
            for f in _dir_sources(source):
                _parse_file(inv, f)
            basedirs.append(source)
        else:
            _parse_file(inv, source)
            basedirs.append(os.path.dirname(os.path.abspath(source)))
    inv.reconcile()
    for d in basedirs:
        inv._group_file_vars.append(_vars_for_entities(d, "group_vars", inv.groups))
        inv._host_file_vars.append(_vars_for_entities(d, "host_vars", inv.hosts))
    _apply_file_priorities(inv)
    return inv


def _apply_file_priorities(inv: Inventory) -> None:
    for per_source in inv._group_file_vars:
        for group, gv in per_source.items():
            if "ansible_group_priority" in gv:
                try:
                    inv.groups[group].priority = int(gv.pop("ansible_group_priority"))
                except (TypeError, ValueError) as exc:
                    raise InventoryError(f"group_vars of {group}: ansible_group_priority must be an integer") from exc


# --------------------------------------------------------------- connection
_SSH_OPTION = re.compile(r"^(\w+)\s*=\s*(.*)$")


def ssh_options(args: str | None) -> dict[str, str]:
    """``-o Key=Value`` options in an ``ansible_ssh_common_args``/``extra_args`` string (lower-case keys)."""
    if not args:
        return {}
    try:
        tokens = shlex.split(str(args))
    except ValueError:
        tokens = str(args).split()
    out: dict[str, str] = {}
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        opt = None
        if tok == "-o" and i + 1 < len(tokens):
            opt = tokens[i + 1]
            i += 1
        elif tok.startswith("-o") and len(tok) > 2:
            opt = tok[2:]
        if opt:
            m = _SSH_OPTION.match(opt) or re.match(r"^(\w+)\s+(.*)$", opt)
            if m:
                out.setdefault(m.group(1).lower(), m.group(2).strip().strip('"'))
        i += 1
    return out


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    return str(value).strip().lower() in ("yes", "on", "1", "true", "y", "t")


def connection_spec(inv_or_vars: Inventory | Mapping[str, Any], host: str, *, known_hosts: str | None = None, accept_new: bool = False):
    """A ``ConnectionSpec`` for ``host`` from its final variables (or from an Inventory)."""
    from clusterctl.provision.connection import ConnectionSpec

    if isinstance(inv_or_vars, Inventory):
        from clusterctl.provision.templating import Templar

        raw = inv_or_vars.host_vars(host)
        raw.setdefault("inventory_hostname", host)
        templar = Templar(raw)
        hv = {k: templar.render(v) for k, v in raw.items() if k.startswith(("ansible_", "clusterctl_"))}
    else:
        hv = dict(inv_or_vars)

    def pick(*names: str, default: Any = None) -> Any:
        for n in names:
            if hv.get(n) is not None and hv.get(n) != "":
                return hv[n]
        return default

    args = " ".join(str(a) for a in (pick("ansible_ssh_common_args"), pick("ansible_ssh_extra_args")) if a)
    opts = ssh_options(args)
    # the lab's inventory also names its known_hosts as `clusterctl_known_hosts`
    kh = known_hosts or pick("clusterctl_known_hosts") or opts.get("userknownhostsfile")
    if kh and kh.lower() == "/dev/null":
        kh = None
    strict = opts.get("stricthostkeychecking", "").lower()
    accept = accept_new or strict in ("no", "accept-new", "off") or (
        "ansible_host_key_checking" in hv and not _truthy(hv["ansible_host_key_checking"])
    )
    port_value = pick("ansible_port", "ansible_ssh_port", default=opts.get("port", 22))
    try:
        port = int(port_value)
    except (TypeError, ValueError) as exc:
        raise InventoryError(f"host {host}: ansible_port must be a number, got {port_value!r}") from exc
    key = pick("ansible_ssh_private_key_file", "ansible_private_key_file", default=opts.get("identityfile"))
    timeout = pick("ansible_ssh_timeout", "ansible_timeout", default=opts.get("connecttimeout", 10))
    try:
        timeout = float(timeout)
    except (TypeError, ValueError):
        timeout = 10.0
    become = pick("ansible_become", "ansible_sudo")
    extra = {
        "connection": str(pick("ansible_connection", default="ssh")),
        "become": _truthy(become) if become is not None else None,
        "become_user": pick("ansible_become_user", "ansible_sudo_user"),
        "become_method": pick("ansible_become_method", default="sudo"),
        "become_password": pick("ansible_become_password", "ansible_become_pass", "ansible_sudo_pass"),
        "become_flags": pick("ansible_become_flags"),
        "ssh_args": args or None,
        "strict_host_key_checking": strict or None,
    }
    return ConnectionSpec(
        name=host,
        host=str(pick("ansible_host", "ansible_ssh_host", default=opts.get("hostname", host))),
        port=port,
        user=str(pick("ansible_user", "ansible_ssh_user", default=opts.get("user") or _local_user())),
        private_key=os.path.expanduser(str(key)) if key else None,
        known_hosts=os.path.expanduser(kh) if kh else None,
        accept_new_host_keys=bool(accept),
        connect_timeout=timeout,
        password=pick("ansible_password", "ansible_ssh_pass", "ansible_ssh_password"),
        extra=extra,
    )


def _local_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "root"


def dumps_list_json(inv: Inventory, *, export: bool = False) -> str:
    """``ansible-inventory --list`` text (4-space indent, sorted keys like ansible's JSON encoder)."""
    return json.dumps(inv.to_list_json(export=export), indent=4, sort_keys=True, default=str)
