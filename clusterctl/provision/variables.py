"""Every variable a task sees, merged in Ansible's documented precedence, plus the magic ones.

``VariableManager`` is the one place that knows the layers (lowest first):

 1. role defaults
 2. inventory: inline group vars (``all``, then the others by depth, priority, name) <
    ``group_vars/all`` files < other ``group_vars/`` files < host inline vars < ``host_vars/``
    files — the playbook folder's ``group_vars/``/``host_vars/`` right after the inventory's at
    each step (``playbook_dir``)
 3. facts (``ansible_facts`` and ``ansible_<fact>``)
 4. play ``vars``  5. play ``vars_files``  6. role ``vars``  7. block ``vars``  8. task ``vars``
 9. ``set_fact`` and ``register``ed results  10. include params (``include_tasks``/``include_role``
    ``vars:``, role params)  11. extra vars (``-e``, always win)

and then the magic variables Ansible computes (``inventory_hostname``, ``hostvars``, ``groups``,
``group_names``, ``play_hosts``, ``ansible_play_hosts``, ``ansible_play_batch``,
``ansible_check_mode``, ``ansible_diff_mode``, ``omit``, ``playbook_dir``...). Top-level keys
replace (Ansible's default ``hash_behaviour=replace``). Values are returned raw: templates
inside them are rendered lazily by ``Templar`` when read, in the reading host's context.

``hostvars`` is lazy: ``hostvars['db1']['x']`` computes db1's variables (inventory, facts,
set_fact/registered, extra vars — no play vars, as in Ansible) only when a template asks.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from typing import Any, Iterator

from clusterctl.provision.inventory import Inventory
from clusterctl.provision.templating import Templar, _PassThrough

#: a placeholder no real value can equal; module arguments rendered to it are dropped
OMIT_TOKEN = "__omit_place_holder__" + hashlib.sha1(os.urandom(64)).hexdigest()
#: what `ansible_version` says: the ansible-core release whose behaviour we follow
ANSIBLE_VERSION = {"full": "2.19.0", "major": 2, "minor": 19, "revision": 0, "string": "2.19.0"}
_IPV4 = re.compile(r"^\d+\.\d+\.\d+\.\d+$")


class HostVarsView(Mapping, _PassThrough):
    """One host's variables as seen through ``hostvars[NAME]``; values rendered for that host."""

    def __init__(self, manager: "VariableManager", host: str) -> None:
        self._manager = manager
        self._host = host
        self._raw: dict | None = None
        self._templar: Templar | None = None

    def _vars(self) -> dict:
        if self._raw is None:
            self._raw = self._manager.get_vars(self._host, include_hostvars=True)
            self._templar = Templar(self._raw)
        return self._raw

    def __getitem__(self, key: str) -> Any:
        raw = self._vars()
        if key not in raw:
            raise KeyError(key)
        return self._templar._lazy[key]  # type: ignore[union-attr]

    def __iter__(self) -> Iterator[str]:
        return iter(self._vars())

    def __len__(self) -> int:
        return len(self._vars())

    def __repr__(self) -> str:
        return f"hostvars[{self._host!r}]"


class HostVars(Mapping, _PassThrough):
    """``hostvars``: every inventory host -> its variables, computed on first access."""

    def __init__(self, manager: "VariableManager") -> None:
        self._manager = manager
        self._views: dict[str, HostVarsView] = {}
        self._version = -1

    def __getitem__(self, host: str) -> HostVarsView:
        manager = self._manager
        if self._version != manager._version:
            # facts, set_fact or register changed something since: views start afresh
            self._views.clear()
            self._version = manager._version
        view = self._views.get(host)
        if view is None:
            inv = manager.inventory
            if host not in inv.hosts and inv.get_host(host) is None:
                raise KeyError(host)
            view = self._views[host] = HostVarsView(manager, host)
        return view

    def __contains__(self, host: object) -> bool:
        return isinstance(host, str) and self._manager.inventory.get_host(host) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self._manager.inventory.hosts)

    def __len__(self) -> int:
        return len(self._manager.inventory.hosts)

    def __repr__(self) -> str:
        return "hostvars"


class VariableManager:
    """Per-run variable state (facts, set_fact, register) and the precedence merge."""

    def __init__(self, inventory: Inventory, *, extra_vars: dict | None = None, check_mode: bool = False, diff_mode: bool = False):
        self.inventory = inventory
        self.extra_vars: dict = dict(extra_vars or {})
        self.check_mode = check_mode
        self.diff_mode = diff_mode
        self.playbook_dir: str | None = None
        self.omit = OMIT_TOKEN
        self._facts: dict[str, dict] = {}
        self._host_facts_vars: dict[str, dict] = {}
        self._nonpersistent: dict[str, dict] = {}
        self._play_hosts: list[str] | None = None
        self._play_hosts_all: list[str] | None = None
        self._play_batch: list[str] | None = None
        self._version = 0  # bumped whenever per-host state changes (invalidates hostvars views)
        self._hostvars = HostVars(self)
        self._groups_cache: dict[str, list[str]] | None = None
        self._group_names_cache: dict[str, list[str]] = {}

    # --------------------------------------------------------------- state
    def set_facts(self, host: str, facts: dict) -> None:
        """Store gathered facts (keys without ``ansible_``); merged into earlier ones."""
        merged = self._facts.setdefault(host, {})
        merged.update(facts)
        self._version += 1
        self._host_facts_vars[host] = {f"ansible_{k}" if not k.startswith("ansible_") else k: v for k, v in merged.items()}

    def clear_facts(self, host: str) -> None:
        """``meta: clear_facts``: forget the host's gathered facts and set_fact values."""
        self._facts.pop(host, None)
        self._host_facts_vars.pop(host, None)
        self._nonpersistent.pop(host, None)
        self._version += 1

    def get_facts(self, host: str) -> dict:
        return dict(self._facts.get(host, {}))

    def set_fact(self, host: str, name: str, value: Any) -> None:
        self._nonpersistent.setdefault(host, {})[name] = value
        self._version += 1

    def register(self, host: str, name: str, result: dict) -> None:
        self._nonpersistent.setdefault(host, {})[name] = result
        self._version += 1

    def set_play_hosts(self, hosts: list[str]) -> None:
        """The play's hosts that are still active (``ansible_play_hosts``); the first call also
        sets ``ansible_play_hosts_all``."""
        self._play_hosts = list(hosts)
        if self._play_hosts_all is None:
            self._play_hosts_all = list(hosts)
        self._version += 1

    def set_play_hosts_all(self, hosts: list[str]) -> None:
        self._play_hosts_all = list(hosts)
        self._version += 1

    def set_play_batch(self, hosts: list[str]) -> None:
        """The current ``serial`` batch (``ansible_play_batch``); defaults to the play hosts."""
        self._play_batch = list(hosts)
        self._version += 1

    def clear_play(self) -> None:
        """Forget play-scoped state between plays (facts and set_fact/registered results persist)."""
        self._play_hosts = self._play_hosts_all = self._play_batch = None
        self._version += 1

    # ---------------------------------------------------------------- merge
    def get_vars(
        self,
        host: str | None,
        *,
        play_vars: dict | None = None,
        vars_files_vars: dict | None = None,
        role_defaults: dict | None = None,
        role_vars: dict | None = None,
        block_vars: dict | None = None,
        task_vars: dict | None = None,
        include_params: dict | None = None,
        include_hostvars: bool = True,
    ) -> dict:
        if host is None:
            return self._hostless_vars(play_vars, vars_files_vars, include_hostvars=include_hostvars)
        data: dict = {}
        if role_defaults:
            data.update(role_defaults)
        extra_dirs = (self.playbook_dir,) if self.playbook_dir else ()
        data.update(self.inventory.host_vars(host, extra_basedirs=extra_dirs))
        facts = self._facts.get(host)
        if facts is not None:
            data.update(self._host_facts_vars[host])
            data["ansible_facts"] = facts
        else:
            data.setdefault("ansible_facts", {})
        for layer in (play_vars, vars_files_vars, role_vars, block_vars, task_vars):
            if layer:
                data.update(layer)
        nonpersistent = self._nonpersistent.get(host)
        if nonpersistent:
            data.update(nonpersistent)
        if include_params:
            # Ansible: include params (21) beat set_fact/registered (19) — checked with ansible-playbook
            data.update(include_params)
        if self.extra_vars:
            data.update(self.extra_vars)
        data.update(self._magic_vars(host, include_hostvars=include_hostvars))
        return data

    def _hostless_vars(self, play_vars: dict | None, vars_files_vars: dict | None, *, include_hostvars: bool) -> dict:
        """Variables for things templated before any host (a play's ``hosts:``): play vars,
        extra vars and the host-independent magic variables, as Ansible has them there."""
        data: dict = {}
        for layer in (play_vars, vars_files_vars, self.extra_vars):
            if layer:
                data.update(layer)
        magic = self._magic_vars("localhost", include_hostvars=include_hostvars)
        for name in ("inventory_hostname", "inventory_hostname_short", "group_names", "inventory_file", "inventory_dir"):
            magic.pop(name, None)
        data.update(magic)
        return data

    def _magic_vars(self, host: str, *, include_hostvars: bool) -> dict:
        if self._groups_cache is None:
            self._groups_cache = self.inventory.groups_dict()
        group_names = self._group_names_cache.get(host)
        if group_names is None:
            h = self.inventory.get_host(host)
            group_names = sorted(g for g in (h.groups if h else []) if g != "all")
            self._group_names_cache[host] = group_names
        play_hosts = self._play_hosts if self._play_hosts is not None else []
        magic = {
            "inventory_hostname": host,
            "inventory_hostname_short": host if _IPV4.match(host) or ":" in host else host.split(".")[0],
            "groups": self._groups_cache,
            "group_names": group_names,
            "play_hosts": play_hosts,
            "ansible_play_hosts": play_hosts,
            "ansible_play_hosts_all": self._play_hosts_all if self._play_hosts_all is not None else play_hosts,
            "ansible_play_batch": self._play_batch if self._play_batch is not None else play_hosts,
            "ansible_check_mode": self.check_mode,
            "ansible_diff_mode": self.diff_mode,
            "omit": self.omit,
            "ansible_version": ANSIBLE_VERSION,
            "inventory_dir": None,
            "inventory_file": None,
        }
        inv_vars = self.inventory.get_host(host)
        if inv_vars is not None and inv_vars.source:
            magic["inventory_file"] = inv_vars.source
            magic["inventory_dir"] = os.path.dirname(inv_vars.source)
        if self.playbook_dir:
            magic["playbook_dir"] = os.path.abspath(self.playbook_dir)
        if include_hostvars:
            magic["hostvars"] = self._hostvars
        return magic

    def templar(self, host: str, *, searchpath: list[str] | None = None, **layers: Any) -> Templar:
        """A Templar over ``get_vars(host, **layers)`` — the usual way a task renders its arguments."""
        return Templar(self.get_vars(host, **layers), searchpath=searchpath)


def strip_omitted(args: Any, omit: str = OMIT_TOKEN) -> Any:
    """Drop module arguments (at any depth of dicts) whose rendered value is the ``omit`` token."""
    if isinstance(args, dict):
        return {k: strip_omitted(v, omit) for k, v in args.items() if v != omit}
    if isinstance(args, list):
        return [strip_omitted(v, omit) for v in args if v != omit]
    return args
