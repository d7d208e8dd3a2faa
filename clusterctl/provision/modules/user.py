"""``user`` and ``group``: local accounts present (with the wanted uid, groups, shell, home) or absent.

One query (``getent passwd``/``group``/``shadow`` + ``id -Gn``) tells what exists; the module then
runs a single ``useradd``/``usermod``/``userdel`` (``groupadd``/``groupmod``/``groupdel``) with only
the options whose values differ, so a satisfied task is one command and unchanged. ``groups`` is
the exact supplementary set unless ``append: yes``. Check mode reports the same plan, untouched.
"""

from __future__ import annotations

import shlex

from clusterctl.provision.modules.context import ModuleArgError, ModuleContext
from clusterctl.provision.modules.results import command_failure, ok

q = shlex.quote


def _bool(value, default: bool = False) -> bool:
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() in ("1", "yes", "true", "on", "y")
    return bool(value)


def _group_list(value) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [g.strip() for g in value.split(",") if g.strip()]
    return [str(g).strip() for g in value if str(g).strip()]


def validate_user(args: dict) -> None:
    if args.get("name") is None:
        raise ModuleArgError("user: missing required arguments: name")
    state = args.get("state")
    if state is not None and "{{" not in str(state) and state not in ("present", "absent"):
        raise ModuleArgError(f"user: value of state must be one of: present, absent, got: {state}")


def validate_group(args: dict) -> None:
    if args.get("name") is None:
        raise ModuleArgError("group: missing required arguments: name")
    state = args.get("state")
    if state is not None and "{{" not in str(state) and state not in ("present", "absent"):
        raise ModuleArgError(f"group: value of state must be one of: present, absent, got: {state}")


def parse_user_query(text: str) -> dict | None:
    """Pure parser of ``_user_query`` output; None when the user does not exist."""
    info: dict = {}
    for line in text.splitlines():
        tag, _, rest = line.partition(" ")
        if tag == "P":
            f = rest.split(":")
            if len(f) >= 7:
                info.update(name=f[0], uid=int(f[2]), gid=int(f[3]), comment=f[4], home=f[5], shell=f[6])
        elif tag == "G":
            info["group"] = rest.strip()
        elif tag == "S":
            info["groups"] = rest.split()
        elif tag == "H":
            info["password"] = rest.strip()
    return info if "uid" in info else None


def _user_query(name: str) -> str:
    n = q(name)
    return (f"e=$(getent passwd {n}) && {{ printf 'P %s\\n' \"$e\"; printf 'G %s\\n' \"$(id -gn {n})\"; "
            f"printf 'S %s\\n' \"$(id -Gn {n})\"; printf 'H %s\\n' \"$(getent shadow {n} 2>/dev/null | cut -d: -f2)\"; }}; true")


def plan_user(cur: dict | None, args: dict) -> list[str]:
    """The one account command (useradd/usermod/userdel) that closes the gap, or none (pure)."""
    name = str(args["name"])
    state = args.get("state") or "present"
    if state == "absent":
        if cur is None:
            return []
        return ["userdel " + ("-r " if _bool(args.get("remove")) else "") + ("-f " if _bool(args.get("force")) else "") + "-- " + q(name)]
    opts: list[str] = []
    groups = _group_list(args.get("groups"))
    if cur is None:
        if args.get("uid") is not None:
            opts += ["-u", str(args["uid"])]
        if args.get("group") is not None:
            opts += ["-g", str(args["group"])]
        if groups:
            opts += ["-G", ",".join(groups)]
        if args.get("shell") is not None:
            opts += ["-s", str(args["shell"])]
        if args.get("home") is not None:
            opts += ["-d", str(args["home"])]
        if args.get("comment") is not None:
            opts += ["-c", str(args["comment"])]
        if args.get("password") is not None:
            opts += ["-p", str(args["password"])]
        if _bool(args.get("system")):
            opts.append("-r")
        opts.append("-m" if _bool(args.get("create_home", args.get("createhome")), not _bool(args.get("system"))) else "-M")
        if args.get("group") is None and not _bool(args.get("system")):
            opts.append("-U")
        return ["useradd " + " ".join(q(o) for o in opts) + " -- " + q(name)]
    if args.get("uid") is not None and int(args["uid"]) != cur["uid"]:
        opts += ["-u", str(args["uid"])]
    grp = args.get("group")
    if grp is not None and str(grp) != cur.get("group") and str(grp) != str(cur.get("gid")):
        opts += ["-g", str(grp)]
    if groups is not None:
        have = set(cur.get("groups", [])) - {cur.get("group")}
        want = set(groups) - {str(grp) if grp is not None else cur.get("group")}
        if _bool(args.get("append")):
            if not want <= have:
                opts += ["-a", "-G", ",".join(sorted(want - have))]
        elif want != have:
            opts += ["-G", ",".join(sorted(want))]
    if args.get("shell") is not None and str(args["shell"]) != cur.get("shell"):
        opts += ["-s", str(args["shell"])]
    if args.get("home") is not None and str(args["home"]) != cur.get("home"):
        opts += ["-d", str(args["home"])] + (["-m"] if _bool(args.get("move_home")) else [])
    if args.get("comment") is not None and str(args["comment"]) != cur.get("comment"):
        opts += ["-c", str(args["comment"])]
    if args.get("password") is not None and (args.get("update_password") or "always") == "always" and str(args["password"]) != cur.get("password"):
        opts += ["-p", str(args["password"])]
    if not opts:
        return []
    return ["usermod " + " ".join(q(o) for o in opts) + " -- " + q(name)]


async def run_user(ctx: ModuleContext, args: dict) -> dict:
    name = str(args["name"])
    res = await ctx.run(_user_query(name))
    cur = parse_user_query(res.stdout)
    cmds = plan_user(cur, args)
    state = args.get("state") or "present"
    if cmds and not ctx.check_mode:
        done = await ctx.run(" && ".join(cmds))
        if done.rc != 0:
            return command_failure(f"{cmds[0].split()[0]} {name}", done, name=name)
        if state == "present":
            cur = parse_user_query((await ctx.run(_user_query(name))).stdout)
    result = ok(bool(cmds), name=name, state=state)
    if cur and state == "present":
        result.update(uid=cur["uid"], group=cur["gid"], groups=",".join(g for g in cur.get("groups", []) if g != cur.get("group")),
                      home=cur["home"], shell=cur["shell"], comment=cur["comment"])
    if ctx.diff and cmds:
        result["diff"] = [{"before": {"state": "present" if cur else "absent"}, "after": {"state": state, "command": cmds[0].split()[0]},
                           "before_header": f"user {name}", "after_header": f"user {name}"}]
    result["system"] = _bool(args.get("system"))
    return result


def plan_group(cur: dict | None, args: dict) -> list[str]:
    name = str(args["name"])
    if (args.get("state") or "present") == "absent":
        return [f"groupdel -- {q(name)}"] if cur else []
    gid = args.get("gid")
    if cur is None:
        opts = (["-g", str(gid)] if gid is not None else []) + (["-r"] if _bool(args.get("system")) else [])
        return ["groupadd " + " ".join(q(o) for o in opts) + " -- " + q(name)]
    if gid is not None and int(gid) != cur["gid"]:
        return [f"groupmod -g {int(gid)} -- {q(name)}"]
    return []


def parse_group_entry(text: str) -> dict | None:
    line = text.strip().splitlines()[0] if text.strip() else ""
    f = line.split(":")
    if len(f) < 4:
        return None
    return {"name": f[0], "gid": int(f[2]), "members": [m for m in f[3].split(",") if m]}


async def run_group(ctx: ModuleContext, args: dict) -> dict:
    name = str(args["name"])
    res = await ctx.run(f"getent group {q(name)}; true")
    cur = parse_group_entry(res.stdout)
    cmds = plan_group(cur, args)
    state = args.get("state") or "present"
    if cmds and not ctx.check_mode:
        done = await ctx.run(" && ".join(cmds))
        if done.rc != 0:
            return command_failure(f"{cmds[0].split()[0]} {name}", done, name=name)
        cur = parse_group_entry((await ctx.run(f"getent group {q(name)}; true")).stdout)
    result = ok(bool(cmds), name=name, state=state, system=_bool(args.get("system")))
    if cur and state == "present":
        result["gid"] = cur["gid"]
    return result
