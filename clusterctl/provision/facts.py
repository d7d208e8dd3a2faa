"""Host facts in one round-trip: a POSIX shell script prints sections, ``parse_facts`` reads them.

``FACTS_SCRIPT`` only reads local files and runs local tools (uname, ip, /proc, /etc/os-release);
it never resolves a name over the network (the FQDN comes from /etc/hosts, not DNS) and never
contacts an address. ``parse_facts`` is a pure function of that text, so every fact is unit-tested
on captured outputs. Keys are Ansible's fact names WITHOUT the ``ansible_`` prefix, as in
``ansible_facts``; the executor also exposes them as ``ansible_<name>`` variables.
"""

from __future__ import annotations

import re

from clusterctl.provision.connection import HostConnection
from clusterctl.provision.errors import ProvisionError

FACTS_SCRIPT = r"""
s() { printf '\n@@%s\n' "$1"; }
s hostname; hostname 2>/dev/null || cat /proc/sys/kernel/hostname
s hosts; cat /etc/hosts 2>/dev/null
s uname; uname -s; uname -r; uname -v; uname -m; uname -n
s os-release; cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null
s debian_version; cat /etc/debian_version 2>/dev/null
s redhat-release; cat /etc/redhat-release 2>/dev/null
s cpuinfo; grep -E '^(processor|physical id|core id|cpu cores|model name|vendor_id)[[:space:]]*:' /proc/cpuinfo 2>/dev/null
s nproc; nproc 2>/dev/null
s meminfo; grep -E '^(MemTotal|MemFree|MemAvailable|Buffers|Cached|SwapTotal|SwapFree):' /proc/meminfo 2>/dev/null
s addr; ip -o addr show 2>/dev/null
s link; ip -o link show 2>/dev/null
s route4; ip -4 route show default 2>/dev/null
s route6; ip -6 route show default 2>/dev/null
s pid1; cat /proc/1/comm 2>/dev/null
s systemd; [ -d /run/systemd/system ] && echo yes
s initd; [ -d /etc/init.d ] && echo yes
s pkg; for m in apt-get dnf yum zypper apk pacman; do command -v $m 2>/dev/null; done
s date; date +'%s|%Y|%m|%d|%H|%M|%S|%Z|%z|%A|%a|%B|%b|%j|%W|%u'; date -u +'%Y-%m-%dT%H:%M:%SZ'
s user; id -u; id -g; id -un; getent passwd "$(id -un)" 2>/dev/null
s env; env 2>/dev/null
s mounts; cat /proc/mounts 2>/dev/null
s python; command -v python3 2>/dev/null || command -v python 2>/dev/null
s machine-id; cat /etc/machine-id 2>/dev/null
s uptime; cat /proc/uptime 2>/dev/null
s virt; [ -f /.dockerenv ] && echo docker; cat /proc/1/cgroup 2>/dev/null | head -n 3
s end
"""

_OS_FAMILY = {
    "debian": "Debian", "ubuntu": "Debian", "raspbian": "Debian", "linuxmint": "Debian", "kali": "Debian",
    "rhel": "RedHat", "centos": "RedHat", "fedora": "RedHat", "rocky": "RedHat", "almalinux": "RedHat",
    "ol": "RedHat", "amzn": "RedHat", "alpine": "Alpine", "arch": "Archlinux", "sles": "Suse",
    "opensuse-leap": "Suse", "opensuse-tumbleweed": "Suse", "gentoo": "Gentoo",
}
_DISTRIBUTION = {
    "debian": "Debian", "ubuntu": "Ubuntu", "centos": "CentOS", "rhel": "RedHat", "fedora": "Fedora",
    "rocky": "Rocky", "almalinux": "AlmaLinux", "ol": "OracleLinux", "amzn": "Amazon", "alpine": "Alpine",
    "arch": "Archlinux", "sles": "SLES", "opensuse-leap": "openSUSE Leap", "raspbian": "Debian",
    "linuxmint": "Linux Mint", "kali": "Kali", "gentoo": "Gentoo",
}
_PKG_MGR = {"apt-get": "apt", "dnf": "dnf", "yum": "yum", "zypper": "zypper", "apk": "apk", "pacman": "pacman"}


class FactsError(ProvisionError):
    """Fact gathering failed on a reachable host (the script itself could not run)."""


def split_sections(text: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("@@") and len(line) > 2 and " " not in line:
            current = line[2:]
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
    for name, lines in sections.items():
        while lines and not lines[-1].strip():
            lines.pop()
        while lines and not lines[0].strip() and name != "env":
            lines.pop(0)
    return sections


def _kv_file(lines: list[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        if "=" in line and not line.lstrip().startswith("#"):
            k, v = line.split("=", 1)
            v = v.strip()
            if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
                v = v[1:-1]
            out[k.strip()] = v
    return out


def _os_facts(sec: dict[str, list[str]]) -> dict:
    osr = _kv_file(sec.get("os-release", []))
    ident = osr.get("ID", "").lower()
    like = osr.get("ID_LIKE", "").lower().split()
    family = _OS_FAMILY.get(ident) or next((_OS_FAMILY[l] for l in like if l in _OS_FAMILY), None)
    distro = _DISTRIBUTION.get(ident) or (osr.get("NAME", "").split()[0] if osr.get("NAME") else "")
    version = osr.get("VERSION_ID", "")
    debian_version = (sec.get("debian_version") or [""])[0].strip()
    if ident == "debian" and re.match(r"^\d+(\.\d+)*$", debian_version):
        version = debian_version
    redhat = (sec.get("redhat-release") or [""])[0]
    m = re.search(r"release (\d+(?:\.\d+)*)", redhat)
    if family == "RedHat" and m and ident != "fedora":
        version = m.group(1)
    release = osr.get("VERSION_CODENAME") or ""
    if not release:
        m2 = re.search(r"\(([^)]+)\)", osr.get("VERSION", ""))
        release = m2.group(1).split(",")[0].strip() if m2 else ""
    return {
        "os_family": family or (distro or "Unknown"),
        "distribution": distro or "Unknown",
        "distribution_version": version or "NA",
        "distribution_major_version": version.split(".")[0] if version else "NA",
        "distribution_release": release or "NA",
        "distribution_file_variety": family or "NA",
    }


def _cpu_facts(sec: dict[str, list[str]]) -> dict:
    vcpus, physical, cores_per, models = 0, set(), 0, []
    for line in sec.get("cpuinfo", []):
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "processor":
            vcpus += 1
            models.append(value)
        elif key == "physical id":
            physical.add(value)
        elif key == "cpu cores" and not cores_per:
            cores_per = int(value) if value.isdigit() else 0
        elif key in ("vendor_id", "model name"):
            models.append(value)
    nproc = (sec.get("nproc") or [""])[0].strip()
    if not vcpus and nproc.isdigit():
        vcpus = int(nproc)
    count = len(physical) or 1
    cores = cores_per or max(1, vcpus // count)
    threads = max(1, vcpus // max(1, count * cores))
    return {
        "processor": models,
        "processor_vcpus": vcpus,
        "processor_count": count,
        "processor_cores": cores,
        "processor_threads_per_core": threads,
        "processor_nproc": int(nproc) if nproc.isdigit() else vcpus,
    }


def _memory_facts(sec: dict[str, list[str]]) -> dict:
    kb = {}
    for line in sec.get("meminfo", []):
        key, _, value = line.partition(":")
        parts = value.split()
        if parts and parts[0].isdigit():
            kb[key.strip()] = int(parts[0])
    mb = {k: v // 1024 for k, v in kb.items()}
    total, free = mb.get("MemTotal", 0), mb.get("MemFree", 0)
    nocache_free = free + mb.get("Buffers", 0) + mb.get("Cached", 0)
    return {
        "memtotal_mb": total,
        "memfree_mb": free,
        "swaptotal_mb": mb.get("SwapTotal", 0),
        "swapfree_mb": mb.get("SwapFree", 0),
        "memory_mb": {
            "real": {"total": total, "free": free, "used": total - free},
            "nocache": {"free": nocache_free, "used": total - nocache_free},
            "swap": {"total": mb.get("SwapTotal", 0), "free": mb.get("SwapFree", 0),
                     "used": mb.get("SwapTotal", 0) - mb.get("SwapFree", 0)},
        },
    }


def _prefix_to_netmask(prefix: int) -> str:
    bits = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF if prefix else 0
    return ".".join(str((bits >> s) & 0xFF) for s in (24, 16, 8, 0))


def _network4(address: str, prefix: int) -> str:
    parts = [int(p) for p in address.split(".")]
    value = sum(p << s for p, s in zip(parts, (24, 16, 8, 0)))
    mask = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF if prefix else 0
    net = value & mask
    return ".".join(str((net >> s) & 0xFF) for s in (24, 16, 8, 0))


def _network_facts(sec: dict[str, list[str]]) -> dict:
    ifaces: dict[str, dict] = {}
    for line in sec.get("link", []):
        m = re.match(r"^\d+:\s+([^:@\s]+)(?:@\S+)?:\s+<([^>]*)>(.*)$", line)
        if not m:
            continue
        name, flags, rest = m.group(1), m.group(2).split(","), m.group(3)
        mtu = re.search(r"\bmtu (\d+)", rest)
        mac = re.search(r"link/(\w+)\s+([0-9a-f:]{17})", rest)
        kind = re.search(r"link/(\w+)", rest)
        ifaces[name] = {
            "device": name,
            "active": "UP" in flags or "LOWER_UP" in flags,
            "mtu": int(mtu.group(1)) if mtu else None,
            "macaddress": mac.group(2) if mac else None,
            "type": {"ether": "ether", "loopback": "loopback"}.get(kind.group(1) if kind else "", kind.group(1) if kind else "unknown"),
            "flags": flags,
            "ipv4_secondaries": [],
            "ipv6": [],
        }
    all4, all6 = [], []
    for line in sec.get("addr", []):
        m = re.match(r"^\d+:\s+(\S+)\s+(inet6?)\s+([0-9a-fA-F.:]+)/(\d+)(.*)$", line)
        if not m:
            continue
        name, fam, addr, prefix, rest = m.group(1), m.group(2), m.group(3), int(m.group(4)), m.group(5)
        iface = ifaces.setdefault(name, {"device": name, "active": True, "ipv4_secondaries": [], "ipv6": []})
        scope = re.search(r"scope (\w+)", rest)
        if fam == "inet":
            brd = re.search(r"brd ([0-9.]+)", rest)
            entry = {"address": addr, "netmask": _prefix_to_netmask(prefix), "network": _network4(addr, prefix),
                     "prefix": str(prefix), "broadcast": brd.group(1) if brd else ""}
            if "ipv4" in iface:
                iface["ipv4_secondaries"].append(entry)
            else:
                iface["ipv4"] = entry
            if not addr.startswith("127."):
                all4.append(addr)
        else:
            iface["ipv6"].append({"address": addr, "prefix": str(prefix), "scope": scope.group(1) if scope else ""})
            if addr != "::1":
                all6.append(addr)
    facts: dict = {
        "interfaces": sorted(ifaces),
        "all_ipv4_addresses": all4,
        "all_ipv6_addresses": all6,
        "default_ipv4": _default_route(sec.get("route4", []), ifaces, "ipv4"),
        "default_ipv6": _default_route(sec.get("route6", []), ifaces, "ipv6"),
    }
    for name, data in ifaces.items():
        facts[name.replace("-", "_").replace(".", "_")] = data
    return facts


def _default_route(lines: list[str], ifaces: dict, family: str) -> dict:
    for line in lines:
        m = re.match(r"^default\s+(?:via\s+(\S+)\s+)?dev\s+(\S+)", line)
        if not m:
            continue
        gateway, dev = m.group(1), m.group(2)
        iface = ifaces.get(dev, {})
        out = {"interface": dev, "gateway": gateway or "", "alias": dev,
               "macaddress": iface.get("macaddress"), "mtu": iface.get("mtu"), "type": iface.get("type")}
        if family == "ipv4" and iface.get("ipv4"):
            out.update({k: iface["ipv4"][k] for k in ("address", "netmask", "network", "broadcast", "prefix")})
        elif family == "ipv6" and iface.get("ipv6"):
            glob = [a for a in iface["ipv6"] if a.get("scope") == "global"] or iface["ipv6"]
            out.update(address=glob[0]["address"], prefix=glob[0]["prefix"], scope=glob[0]["scope"])
        return out
    return {}


def _service_mgr(sec: dict[str, list[str]]) -> str:
    if sec.get("systemd") == ["yes"]:
        return "systemd"
    pid1 = (sec.get("pid1") or [""])[0].strip()
    if pid1 == "systemd":
        return "systemd"
    if pid1 in ("openrc-init",) or pid1.startswith("openrc"):
        return "openrc"
    if pid1 in ("runit", "runit-init"):
        return "runit"
    if pid1 == "init" and sec.get("initd") == ["yes"]:
        return "sysvinit"
    return "service"


def _date_facts(sec: dict[str, list[str]]) -> dict:
    lines = sec.get("date", [])
    if not lines:
        return {}
    f = lines[0].split("|")
    if len(f) < 16:
        return {}
    out = {
        "epoch": f[0], "year": f[1], "month": f[2], "day": f[3], "hour": f[4], "minute": f[5], "second": f[6],
        "tz": f[7], "tz_offset": f[8], "weekday": f[9], "weekday_number": str(int(f[15]) % 7),
        "weeknumber": f[14], "monthname": f[11], "date": f"{f[1]}-{f[2]}-{f[3]}", "time": f"{f[4]}:{f[5]}:{f[6]}",
        "iso8601": lines[1].strip() if len(lines) > 1 else "",
    }
    out["iso8601_basic_short"] = f"{f[1]}{f[2]}{f[3]}T{f[4]}{f[5]}{f[6]}"
    return out


def _user_facts(sec: dict[str, list[str]]) -> dict:
    lines = sec.get("user", [])
    out: dict = {}
    if len(lines) >= 3:
        out.update(user_uid=int(lines[0]) if lines[0].isdigit() else lines[0],
                   user_gid=int(lines[1]) if lines[1].isdigit() else lines[1], user_id=lines[2])
    if len(lines) >= 4:
        pw = lines[3].split(":")
        if len(pw) >= 7:
            out.update(user_gecos=pw[4], user_dir=pw[5], user_shell=pw[6])
    return out


def _fqdn(hostname: str, hosts_lines: list[str]) -> str:
    """The FQDN as /etc/hosts gives it (first name on the line naming the host); no DNS."""
    for line in hosts_lines:
        words = line.split("#", 1)[0].split()
        if len(words) >= 2 and hostname in words[1:]:
            return words[1]
    return hostname


def _mounts(lines: list[str]) -> list[dict]:
    out = []
    for line in lines:
        f = line.split()
        if len(f) >= 4:
            out.append({"device": f[0], "mount": f[1].replace("\\040", " "), "fstype": f[2], "options": f[3]})
    return out


def parse_facts(text: str) -> dict:
    """All facts from ``FACTS_SCRIPT`` output (pure)."""
    sec = split_sections(text)
    hostname_full = (sec.get("hostname") or [""])[0].strip()
    uname = sec.get("uname", []) + [""] * 5
    facts: dict = {
        "hostname": hostname_full.split(".")[0],
        "nodename": uname[4].strip() or hostname_full,
        "system": uname[0].strip(),
        "kernel": uname[1].strip(),
        "kernel_version": uname[2].strip(),
        "architecture": uname[3].strip(),
        "machine": uname[3].strip(),
        "userspace_architecture": uname[3].strip(),
    }
    fqdn = _fqdn(hostname_full, sec.get("hosts", []))
    facts["fqdn"] = fqdn
    facts["domain"] = fqdn.split(".", 1)[1] if "." in fqdn else ""
    facts.update(_os_facts(sec))
    facts.update(_cpu_facts(sec))
    facts.update(_memory_facts(sec))
    facts.update(_network_facts(sec))
    facts["service_mgr"] = _service_mgr(sec)
    pkg = [_PKG_MGR[p.rsplit("/", 1)[-1]] for p in sec.get("pkg", []) if p.rsplit("/", 1)[-1] in _PKG_MGR]
    facts["pkg_mgr"] = pkg[0] if pkg else "unknown"
    facts["date_time"] = _date_facts(sec)
    facts.update(_user_facts(sec))
    facts["env"] = dict(l.split("=", 1) for l in sec.get("env", []) if "=" in l and l.split("=", 1)[0].isidentifier())
    facts["mounts"] = _mounts(sec.get("mounts", []))
    py = (sec.get("python") or [""])[0].strip()
    if py:
        facts["python"] = {"executable": py}
    mid = (sec.get("machine-id") or [""])[0].strip()
    if mid:
        facts["machine_id"] = mid
    up = (sec.get("uptime") or [""])[0].split()
    if up:
        facts["uptime_seconds"] = int(float(up[0]))
    virt = sec.get("virt", [])
    facts["virtualization_type"] = "docker" if "docker" in virt else ("container" if any("/lxc" in l for l in virt) else "NA")
    facts["virtualization_role"] = "guest" if facts["virtualization_type"] != "NA" else "NA"
    facts["gather_subset"] = ["all"]
    facts["module_setup"] = True
    return facts


async def gather_facts(conn: HostConnection, *, timeout: float | None = 30, become: bool = False) -> dict:
    """Run ``FACTS_SCRIPT`` on the host (one command) and parse it."""
    res = await conn.run(FACTS_SCRIPT, timeout=timeout, become=become)
    if "@@end" not in res.stdout:
        raise FactsError(f"{conn.spec.name}: fact gathering failed (rc={res.rc}): {res.stderr.strip()[:300]}")
    return parse_facts(res.stdout)
