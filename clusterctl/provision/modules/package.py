"""``package``, ``apt``, ``dnf``/``yum``: packages present, absent or latest.

The package database decides, never the package manager's own "nothing to do" message: one
``dpkg-query`` (or ``rpm -q``) names what is installed, and ``apt-get``/``dnf`` run only for the
packages that must change, so an already-satisfied task costs one command and reports unchanged.
``state: latest`` asks the manager for a simulated upgrade first. ``deb:`` installs a .deb file on
the host when its package/version is not installed. ``update_cache`` refreshes indexes (reported
as ``cache_updated``, not as a change). Check mode runs only the queries.
"""

from __future__ import annotations

import re
import shlex

from clusterctl.provision.modules.context import ModuleArgError, ModuleContext
from clusterctl.provision.modules.results import command_failure, command_fields, failed, ok

q = shlex.quote
PRESENT = ("present", "installed")
ABSENT = ("absent", "removed")
STATES = PRESENT + ABSENT + ("latest", "build-dep", "fixed")
APT_ENV = "DEBIAN_FRONTEND=noninteractive"
APT_OPTS = "-y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"


def _bool(value, default: bool = False) -> bool:
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() in ("1", "yes", "true", "on", "y")
    return bool(value)


def package_names(value) -> list[str]:
    """Ansible's name list: a list, or a comma-separated string."""
    if value is None:
        return []
    if isinstance(value, str):
        return [n.strip() for n in value.split(",") if n.strip()]
    return [str(n).strip() for n in value if str(n).strip()]


def _base_name(spec: str) -> str:
    """``nginx=1.2*`` / ``nginx-1.2`` (rpm) -> the name dpkg/rpm know; version pins stay on install."""
    return re.split(r"[=<>]", spec, 1)[0].strip()


def validate_package(args: dict) -> None:
    names = args.get("name", args.get("pkg", args.get("package")))
    if names is None and not args.get("deb") and not _bool(args.get("update_cache")) and not args.get("upgrade"):
        raise ModuleArgError("package: one of name, deb or update_cache is required")
    state = args.get("state")
    if state is not None and "{{" not in str(state) and state not in STATES:
        raise ModuleArgError(f"package: value of state must be one of: {', '.join(STATES)}, got: {state}")


def parse_dpkg_query(text: str) -> dict[str, str]:
    """``name<TAB>status<TAB>version`` lines -> {name: version} of installed packages (pure)."""
    installed = {}
    for line in text.splitlines():
        parts = line.split("\t")
        status = parts[1].split() if len(parts) >= 3 else []
        if status[-1:] == ["installed"] and "ok" in status:  # "install ok installed", not "... config-files"
            name = parts[0].split(":")[0]
            installed[name] = parts[2]
    return installed


async def detect_manager(ctx: ModuleContext) -> str | None:
    res = await ctx.run("for m in apt-get dnf yum apk; do command -v $m >/dev/null 2>&1 && { echo $m; exit 0; }; done; exit 0")
    found = res.stdout.strip()
    return {"apt-get": "apt", "dnf": "dnf", "yum": "yum", "apk": "apk"}.get(found)


async def _installed(ctx: ModuleContext, manager: str, names: list[str]) -> dict[str, str]:
    if not names:
        return {}
    quoted = " ".join(q(n) for n in names)
    if manager == "apt":
        res = await ctx.run(f"dpkg-query -W -f='${{Package}}\\t${{Status}}\\t${{Version}}\\n' {quoted} 2>/dev/null; true")
        return parse_dpkg_query(res.stdout)
    res = await ctx.run(f"rpm -q --qf '%{{NAME}}\\tinstall ok installed\\t%{{VERSION}}-%{{RELEASE}}\\n' {quoted} 2>/dev/null; true")
    return parse_dpkg_query(res.stdout)


async def _update_cache(ctx: ModuleContext, manager: str) -> dict | None:
    if ctx.check_mode:
        return None
    cmd = f"{APT_ENV} apt-get update -q" if manager == "apt" else f"{manager} -y -q makecache"
    res = await ctx.run(cmd)
    if res.rc != 0:
        return command_failure("updating the package cache", res)
    return None


async def run_package(ctx: ModuleContext, args: dict, manager: str | None = None) -> dict:
    use = args.get("use")
    if use and use != "auto":
        manager = {"apt": "apt", "dnf": "dnf", "yum": "yum"}.get(str(use), manager)
    if manager is None:
        manager = await detect_manager(ctx)
    if manager not in ("apt", "dnf", "yum"):
        return failed(f"no supported package manager on {ctx.host} (apt-get, dnf or yum)")
    names = package_names(args.get("name", args.get("pkg", args.get("package"))))
    state = args.get("state") or "present"
    extra: dict = {}
    if _bool(args.get("update_cache")):
        err = await _update_cache(ctx, manager)
        if err:
            return err
        extra["cache_updated"] = not ctx.check_mode
    if args.get("deb"):
        return await _install_deb(ctx, str(args["deb"]), extra)
    if not names:
        return ok(False, msg="cache updated" if extra.get("cache_updated") else "nothing to do", **extra)
    bases = {n: _base_name(n) for n in names}
    installed = await _installed(ctx, manager, list(bases.values()))
    if state in ABSENT:
        todo = [bases[n] for n in names if bases[n] in installed]
        verb = "remove"
    elif state == "latest":
        todo = await _upgradable(ctx, manager, names, installed, bases)
        verb = "install"
    else:
        todo = [n for n in names if bases[n] not in installed or ("=" in n and not installed[bases[n]].startswith(n.split("=", 1)[1].rstrip("*")))]
        verb = "install"
    if not todo:
        return ok(False, msg="all packages already " + ("absent" if state in ABSENT else "installed"), **extra)
    if ctx.check_mode:
        return ok(True, msg=f"would {verb} {' '.join(todo)}", packages=todo, **extra)
    quoted = " ".join(q(n) for n in todo)
    if manager == "apt":
        purge = " --purge" if _bool(args.get("purge")) else ""
        recommends = "" if args.get("install_recommends") is None else (" --no-install-recommends" if not _bool(args.get("install_recommends")) else " --install-recommends")
        cmd = f"{APT_ENV} apt-get {APT_OPTS}{purge if verb == 'remove' else recommends} {verb} {quoted}"
    else:
        cmd = f"{manager} -y -q {'remove' if verb == 'remove' else 'install'} {quoted}"
    res = await ctx.run(cmd)
    fields = command_fields(res)
    if res.rc != 0:
        return command_failure(f"{manager} {verb} {' '.join(todo)}", res, **extra)
    return ok(True, msg=f"{verb}ed {' '.join(todo)}".replace("removeed", "removed"), packages=todo, **fields, **extra)


async def _upgradable(ctx: ModuleContext, manager: str, names: list[str], installed: dict, bases: dict) -> list[str]:
    missing = [n for n in names if bases[n] not in installed]
    present = [n for n in names if bases[n] in installed]
    if not present:
        return missing
    quoted = " ".join(q(n) for n in present)
    if manager == "apt":
        res = await ctx.run(f"{APT_ENV} apt-get -s -q install --only-upgrade {quoted} 2>/dev/null")
        upgrading = {line.split()[1] for line in res.stdout.splitlines() if line.startswith("Inst ") and len(line.split()) > 1}
    else:
        res = await ctx.run(f"{manager} -q check-update {quoted} 2>/dev/null; true")
        upgrading = {line.split()[0].rsplit(".", 1)[0] for line in res.stdout.splitlines() if line.strip() and not line.startswith(" ")}
    return missing + [n for n in present if bases[n] in upgrading]


async def _install_deb(ctx: ModuleContext, deb: str, extra: dict) -> dict:
    info = await ctx.run(f"dpkg-deb -f {q(deb)} Package Version")
    if info.rc != 0:
        return command_failure(f"reading {deb}", info)
    fields = dict(line.split(": ", 1) for line in info.stdout.splitlines() if ": " in line)
    name, version = fields.get("Package", ""), fields.get("Version", "")
    installed = await _installed(ctx, "apt", [name])
    if installed.get(name) == version:
        return ok(False, msg=f"{name} {version} already installed", **extra)
    if ctx.check_mode:
        return ok(True, msg=f"would install {name} {version} from {deb}", **extra)
    # dpkg first (fast, like Ansible's apt deb=); apt-get only to pull in missing dependencies
    res = await ctx.run(f"{APT_ENV} dpkg -i --force-confdef --force-confold {q(deb)} || {APT_ENV} apt-get {APT_OPTS} -f install")
    if res.rc != 0:
        return command_failure(f"installing {deb}", res, **extra)
    return ok(True, msg=f"installed {name} {version}", **command_fields(res), **extra)


async def run_apt(ctx: ModuleContext, args: dict) -> dict:
    return await run_package(ctx, args, manager="apt")


async def run_dnf(ctx: ModuleContext, args: dict) -> dict:
    manager = await detect_manager(ctx)
    return await run_package(ctx, args, manager=manager if manager in ("dnf", "yum") else "dnf")
