"""The provisioner's host modules: registry, context and the contract every module keeps.

A module is ``async def run(ctx: ModuleContext, args: dict) -> dict`` returning an Ansible-shaped
result (``changed``, ``failed``, ``msg``, ``rc``, ``stdout``/``stderr`` + ``_lines``, ``diff``,
module keys). Each runs as POSIX shell over the host's one ``HostConnection`` and moves files
over SFTP; nothing needs Python on the target. Every module first finds out what is there and then
emits only what closes the gap, so a second run reports ``changed: False``; check mode reports
the same answer without touching the host; diff mode adds before/after.

``MODULES`` maps every accepted name (short, ``ansible.builtin.*``, ``ansible.legacy.*``, and
aliases such as ``systemd``/``systemd_service``, ``dnf``/``yum``) to a ``ModuleSpec``. Specs
are wrapped so that ordinary failures on a reachable host (a failed helper command, an SFTP
permission error, a command timeout, a missing local file) come back as ``failed: True``
results; only ``HostUnreachable`` propagates. With ``ctx.no_log`` a failed result's ``msg`` is
replaced and no ``diff`` is returned, so no secret leaks through a message or a diff.

The executor-side modules (debug, set_fact, assert, fail, meta, include_*/import_*) are not here.
"""

from __future__ import annotations

import functools

from clusterctl.provision.connection import SFTPError
from clusterctl.provision.errors import CommandTimeout, PlaybookError
from clusterctl.provision.modules import (
    command, copy, fetch, file, lineinfile, package, service, setup_facts, stat, unarchive, uri, user, wait_for,
)
from clusterctl.provision.modules.command import split_free_form
from clusterctl.provision.modules.context import ModuleArgError, ModuleContext, ModuleRun, ModuleSpec
from clusterctl.provision.modules.remote_file import ProbeFailed
from clusterctl.provision.modules.results import NO_LOG_MSG, failed

__all__ = ["MODULES", "ModuleArgError", "ModuleContext", "ModuleSpec", "UnknownModuleError", "get_module", "split_free_form"]


def _guarded(name: str, run: ModuleRun) -> ModuleRun:
    @functools.wraps(run)
    async def guarded(ctx: ModuleContext, args: dict) -> dict:
        try:
            result = await run(ctx, args)
        except ProbeFailed as exc:
            result = exc.result
        except SFTPError as exc:
            result = failed(str(exc))
        except CommandTimeout as exc:
            result = failed(str(exc), rc=-1)
        except PlaybookError as exc:  # e.g. a local src/template that cannot be found
            result = failed(f"{name}: {exc}")
        if ctx.no_log and result.get("failed"):
            result["msg"] = NO_LOG_MSG
        if "diff" in result and (not ctx.diff or not result["diff"] or ctx.no_log):
            result.pop("diff")  # a no_log task's diff would print the very content it hides
        return result

    return guarded


def _spec(name: str, run: ModuleRun, *, required=(), validate=None, free_form: bool = False) -> ModuleSpec:
    return ModuleSpec(name=name, run=_guarded(name, run), required=frozenset(required), validate=validate,
                      free_form=free_form)


_SPECS: dict[str, tuple[ModuleSpec, tuple[str, ...]]] = {}


def _register(spec: ModuleSpec, *aliases: str) -> None:
    _SPECS[spec.name] = (spec, aliases)


_register(_spec("command", command.run_command, validate=command.validate_command, free_form=True))
_register(_spec("shell", command.run_shell, validate=command.validate_command, free_form=True))
_register(_spec("raw", command.run_raw, validate=command.validate_command, free_form=True))
_register(_spec("script", command.run_script, validate=command.validate_script, free_form=True))
_register(_spec("ping", command.run_ping))
_register(_spec("copy", copy.run_copy, validate=copy.validate_copy))
_register(_spec("template", copy.run_template, validate=copy.validate_template))
_register(_spec("file", file.run_file, validate=file.validate_file))
_register(_spec("lineinfile", lineinfile.run_lineinfile, validate=lineinfile.validate_lineinfile))
_register(_spec("blockinfile", lineinfile.run_blockinfile, validate=lineinfile.validate_blockinfile))
_register(_spec("stat", stat.run_stat, validate=stat.validate_stat))
_register(_spec("slurp", fetch.run_slurp, validate=fetch.validate_slurp))
_register(_spec("fetch", fetch.run_fetch, validate=fetch.validate_fetch))
_register(_spec("unarchive", unarchive.run_unarchive, validate=unarchive.validate_unarchive))
_register(_spec("package", package.run_package, validate=package.validate_package))
_register(_spec("apt", package.run_apt, validate=package.validate_package))
_register(_spec("dnf", package.run_dnf, validate=package.validate_package), "yum")
_register(_spec("service", service.run_service, validate=service.validate_service),
          "systemd", "systemd_service", "sysvinit")
_register(_spec("user", user.run_user, validate=user.validate_user))
_register(_spec("group", user.run_group, validate=user.validate_group))
_register(_spec("wait_for", wait_for.run_wait_for, validate=wait_for.validate_wait_for))
_register(_spec("uri", uri.run_uri, validate=uri.validate_uri))
_register(_spec("setup", setup_facts.run_setup), "gather_facts")


def _build() -> dict[str, ModuleSpec]:
    table: dict[str, ModuleSpec] = {}
    for name, (spec, aliases) in _SPECS.items():
        for short in (name, *aliases):
            for full in (short, f"ansible.builtin.{short}", f"ansible.legacy.{short}"):
                table[full] = spec
    return table


MODULES: dict[str, ModuleSpec] = _build()


class UnknownModuleError(ModuleArgError, KeyError):
    """No module of that name (a ``ModuleArgError``; also a ``KeyError`` for dict-style callers)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def get_module(name: str) -> ModuleSpec:
    """The spec for a task's module name; ``UnknownModuleError`` (a ``ModuleArgError``) if unknown."""
    try:
        return MODULES[name]
    except KeyError:
        raise UnknownModuleError(f"couldn't resolve module/action '{name}'") from None
