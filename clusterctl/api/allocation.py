"""Service ClusterIP and NodePort allocation, atomic across every API server on one store.

Kubernetes allocates a Service's ``clusterIP`` (from the service CIDR) and its ``nodePort``s (from
the node-port range) synchronously while creating it, so ``kubectl get svc`` shows them at once.
We do the same, and make each allocation a store object, as Kubernetes does since 1.31 (KEP-1880's
``IPAddress`` objects): one *reservation key* per allocated address or port, outside every API kind
(no kind's list prefix covers ``/registry/clusterctl.io/``, so they are never served over REST)::

    /registry/clusterctl.io/serviceips/<ip>     {"service": "ns/name", "uid": ..., "reservedAt": ...}
    /registry/clusterctl.io/nodeports/<port>    (same value)

``store.create`` is atomic on both backends (etcd: a txn on ``create_revision == 0``; tinydb: one
writer) and raises ``KeyExists`` when the key is taken, so two API servers creating two Services at
the same moment can no longer hand out one address twice: the loser of the reservation picks again.

Allocation on create (``allocate_service``), under a per-process lock (it only spares this
process's concurrent creates a collision; correctness comes from the keys):

1. candidates avoid what the stored Services use (the scan kept from before reservations existed:
   Services of older clusters have no keys, and none are back-filled — the scan covers them);
2. the reservation is created; on ``KeyExists`` (another server was faster, or a leftover) the
   reservation keys are listed once and avoided, and the next candidate is tried, a bounded number
   of times; with nothing left, reserved values no Service uses are tried (reclaiming stale ones),
   then 422 "range is full" as before. An address asked for explicitly (``spec.clusterIP:
   10.96.0.10``, a fixed ``nodePort``) that a live Service holds is 422 "already allocated", as
   before. The clusterIP and the node ports are reserved concurrently: a NodePort Service's create
   costs two more store writes, in one round trip, and no extra read while nothing collides;
3. the caller (``rest.create_object``) creates the Service and, if that fails, calls
   ``release_after_failed_write`` (best effort, logged). A create cancelled mid-way (the client
   went away) releases nothing: its keys are left to the grace below.

An update (``rest.commit_update``) goes through the same function with the stored Service: what
it holds is kept, what it adds (a type change to NodePort, a nodePort changed by hand, a clusterIP
after ExternalName) is allocated and reserved the same way — before, updates allocated nothing.

A reservation whose holder is the Service being created (same ``ns/name``: another API server
creating the same object — every server creates the ``kubernetes`` Service at start — or the
leftover of an earlier Service of that name) is taken over (compare-and-set to our uid): only
one create of a name can succeed, and the loser's release hands the key back to the winner.

Release: when a Service leaves the store — DELETE, DELETECOLLECTION, the update that drops its last
finalizer, namespace termination, foreground deletion, garbage collection: all remove through
``lifecycle.remove_now``, which calls ``release_service`` — and when an update stops using an address
(``release_dropped``), each key still held by that Service's uid is deleted with a compare on its
revision (a key taken over meanwhile is left alone).

Stale keys: a server that crashed between reservation and create, a cancelled create, or a failed
release (the store unavailable at that moment) leave a key whose holder is gone. A key is
*live* while its holder (the Service ``ns/name``) exists and uses the address (its uid is repaired
if it differs). Otherwise it is *stale* at once if the holder's namespace is gone, else once older than
``timings.service_reservation_grace`` (default 60 s, so an in-flight create is never robbed; ages
are read on the API server's injectable clock), and an allocation that meets it deletes it with a
compare on its revision and reuses the address. There is no repair loop: stale keys are only
looked at when an allocation needs their address (or the range seems full).

As in Kubernetes (KEP-3070), the bottom of the CIDR — min(max(16, size/16), 256) addresses — is a
band for addresses people pick themselves (the cluster DNS is conventionally ``.10``): a Service
that asks for no address gets one from above the band, and from the band only when the rest is full.
The first address of the CIDR belongs to the ``kubernetes`` Service in ``default``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
from dataclasses import dataclass, field

from clusterctl.api import errors
from clusterctl.api.context import ApiContext, parse_rfc3339
from clusterctl.api.errors import FieldError
from clusterctl.store.base import Item, KeyExists, KeyNotFound, RevisionConflict, StoreError

log = logging.getLogger("clusterctl.api.allocation")

SERVICE_IPS = "/registry/clusterctl.io/serviceips/"
NODE_PORTS = "/registry/clusterctl.io/nodeports/"
#: a reservation whose Service is missing is reclaimable only after this long (an in-flight create)
DEFAULT_RESERVATION_GRACE = 60.0
#: reservations lost to other API servers before a create gives up with "range is full"
MAX_LOST_RESERVATIONS = 16


@dataclass
class Reservations:
    """The keys one Service create holds: key -> the revision this create wrote."""

    holder: str = ""
    uid: str = ""
    keys: dict[str, int] = field(default_factory=dict)


def ip_key(ip: str) -> str:
    return SERVICE_IPS + ip


def port_key(port: int) -> str:
    return f"{NODE_PORTS}{port}"


def _service_info(ctx: ApiContext):
    return ctx.registry.by_kind("", "Service")


def _grace(ctx: ApiContext) -> float:
    return float(getattr(ctx.timings, "service_reservation_grace", DEFAULT_RESERVATION_GRACE))


def service_addresses(svc: dict | None) -> set[str]:
    """The reservation keys a stored Service uses (its clusterIP, its node ports)."""
    spec = (svc or {}).get("spec") or {}
    keys: set[str] = set()
    ip = spec.get("clusterIP")
    if ip and ip != "None" and spec.get("type", "ClusterIP") != "ExternalName":
        keys.add(ip_key(ip))
    for p in spec.get("ports") or []:
        if isinstance(p, dict) and isinstance(p.get("nodePort"), int) and not isinstance(p.get("nodePort"), bool):
            keys.add(port_key(p["nodePort"]))
    return keys


async def _used(ctx: ApiContext) -> tuple[set[str], set[int]]:
    info = _service_info(ctx)
    result = await ctx.store.list(info.prefix())
    ips: set[str] = set()
    ports: set[int] = set()
    for item in result.items:
        spec = item.value.get("spec") or {}
        if spec.get("clusterIP") and spec["clusterIP"] != "None":
            ips.add(spec["clusterIP"])
        for p in spec.get("ports") or []:
            if isinstance(p, dict) and isinstance(p.get("nodePort"), int):
                ports.add(p["nodePort"])
    return ips, ports


async def _reserved(ctx: ApiContext, prefix: str) -> set[str]:
    result = await ctx.store.list(prefix)
    return {item.key[len(prefix):] for item in result.items}


def _network(ctx: ApiContext) -> ipaddress.IPv4Network:
    cidr = ctx.config.service_cidr if ctx.config else "10.96.0.0/16"
    return ipaddress.ip_network(cidr, strict=False)


def _node_port_range(ctx: ApiContext) -> tuple[int, int]:
    return ctx.config.node_ports if ctx.config else (30000, 32767)


def kubernetes_service_ip(ctx: ApiContext) -> str:
    return str(_network(ctx).network_address + 1)


def static_band(net: ipaddress.IPv4Network) -> int:
    """How many addresses at the bottom of ``net`` are kept for Services that name their own."""
    return min(max(16, net.num_addresses // 16), 256)


def _free_cluster_ip(net: ipaddress.IPv4Network, used: set[str]) -> str | None:
    """A free address: random above the static band, else the lowest free one above it, else the
    lowest free one in the band (never the network address, ``.1`` or the broadcast address)."""
    first, last = int(net.network_address) + 2, int(net.broadcast_address) - 1
    upper = max(first, int(net.network_address) + static_band(net))
    if upper <= last:
        for _ in range(64):
            candidate = str(ipaddress.IPv4Address(random.randint(upper, last)))
            if candidate not in used:
                return candidate
    for start, end in ((upper, last), (first, min(upper - 1, last))):  # a small CIDR is all band
        for n in range(start, end + 1):
            if str(ipaddress.IPv4Address(n)) not in used:
                return str(ipaddress.IPv4Address(n))
    return None


# --- reservation keys --------------------------------------------------------------------------

def _holder(svc: dict) -> tuple[str, str]:
    meta = svc.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}", meta.get("uid", "")


async def _holder_service(ctx: ApiContext, holder: str) -> dict | None:
    namespace, _, name = holder.partition("/")
    item = await ctx.store.get(_service_info(ctx).key(namespace, name))
    return None if item is None else ctx.load(item)


async def _is_live(ctx: ApiContext, current: Item) -> bool:
    """Whether a reservation's holder still uses it, or it is too young to judge (a create in flight).

    A holder that uses the address under another uid (a take-over whose fix-up was lost) keeps
    it: the key's uid is repaired, best effort."""
    value = current.value
    svc = await _holder_service(ctx, str(value.get("service", "")))
    if svc is not None and current.key in service_addresses(svc):
        uid = (svc.get("metadata") or {}).get("uid", "")
        if uid and value.get("uid") != uid:
            try:
                await ctx.store.update(current.key, {**value, "uid": uid}, expected_revision=current.mod_revision)
            except (RevisionConflict, KeyNotFound):
                pass
        return True
    try:
        age = ctx.clock() - parse_rfc3339(str(value.get("reservedAt", "")))
    except ValueError:
        age = float("inf")  # unreadable: nobody can be creating with it
    if age >= _grace(ctx):
        return False
    # young: a create may be in flight — unless the holder's namespace is gone (deleting a
    # namespace removes its Services on a path that does not release, and nothing creates in it)
    namespace = str(value.get("service", "")).partition("/")[0]
    ns_info = ctx.registry.by_kind("", "Namespace")
    return ns_info is None or await ctx.store.get(ns_info.key(None, namespace)) is not None


async def _reserve(ctx: ApiContext, held: Reservations, key: str) -> bool:
    """Make ``key`` ours; False when a live (or young) reservation of another Service holds it.

    A stale one is deleted (compare on its revision) and the create tried again; one held by our
    own ``ns/name`` is taken over. Each retry follows another server's write; a bounded number."""
    value = {"service": held.holder, "uid": held.uid, "reservedAt": ctx.now()}
    for _ in range(MAX_LOST_RESERVATIONS):
        try:
            item = await ctx.store.create(key, value)
            held.keys[key] = item.mod_revision
            return True
        except KeyExists:
            pass
        current = await ctx.store.get(key)
        if current is None:
            continue  # released meanwhile
        if current.value.get("service") == held.holder:
            try:
                item = await ctx.store.update(key, value, expected_revision=current.mod_revision)
            except (RevisionConflict, KeyNotFound):
                continue
            held.keys[key] = item.mod_revision
            return True
        if await _is_live(ctx, current):
            return False
        try:
            await ctx.store.delete(key, expected_revision=current.mod_revision)
            log.info("reclaimed stale reservation %s of %s", key, current.value.get("service"))
        except (RevisionConflict, KeyNotFound):
            pass
    return False


async def _release_key(ctx: ApiContext, key: str, uid: str, revision: int | None = None) -> None:
    """Delete ``key`` if ``uid`` still holds it (at ``revision`` when given). Best effort."""
    try:
        current = await ctx.store.get(key)
        if current is None or current.value.get("uid") != uid:
            return
        if revision is not None and current.mod_revision != revision:
            return
        await ctx.store.delete(key, expected_revision=current.mod_revision)
    except (RevisionConflict, KeyNotFound):
        pass  # taken over meanwhile: no longer ours
    except StoreError as exc:
        log.warning("could not release reservation %s (uid %s): %s; it is reclaimed once stale", key, uid, exc)


async def release_after_failed_write(ctx: ApiContext, held: Reservations | None) -> None:
    """The Service create or update that made ``held`` was not stored: give its keys back, except
    those the stored Service of that name uses now (another server's create of the name won, or a
    concurrent update of this Service took the same port): those are left to it, under its uid."""
    if held is None or not held.keys:
        return
    try:
        winner = await _holder_service(ctx, held.holder)
    except StoreError as exc:
        log.warning("could not release reservations of %s: %s; they are reclaimed once stale", held.holder, exc)
        return
    winner_uid = ((winner or {}).get("metadata") or {}).get("uid", "")
    winner_keys = service_addresses(winner) if winner_uid else set()

    async def give_back(key: str, revision: int) -> None:
        if key not in winner_keys:
            await _release_key(ctx, key, held.uid, revision)
            return
        if winner_uid == held.uid:
            return
        try:
            await ctx.store.update(key, {"service": held.holder, "uid": winner_uid, "reservedAt": ctx.now()},
                                   expected_revision=revision)
        except (RevisionConflict, KeyNotFound):
            pass
        except StoreError as exc:
            log.warning("could not hand reservation %s to %s: %s", key, held.holder, exc)

    await asyncio.gather(*(give_back(k, r) for k, r in held.keys.items()))


async def release_service(ctx: ApiContext, svc: dict) -> None:
    """``svc`` was removed from the store: delete the reservations it held."""
    uid = (svc.get("metadata") or {}).get("uid", "")
    if uid:
        await asyncio.gather(*(_release_key(ctx, key, uid) for key in service_addresses(svc)))


async def release_dropped(ctx: ApiContext, old: dict, new: dict) -> None:
    """An update of ``old`` into ``new`` was stored: delete reservations ``new`` no longer uses."""
    uid = (old.get("metadata") or {}).get("uid", "")
    dropped = service_addresses(old) - service_addresses(new)
    if uid and dropped:
        await asyncio.gather(*(_release_key(ctx, key, uid) for key in dropped))


# --- allocation --------------------------------------------------------------------------------

def _invalid(name: str, path: str, value, message: str) -> errors.ApiError:
    return errors.invalid("Service", name, "", [FieldError.invalid(path, value, message)])


async def _allocate_cluster_ip(ctx: ApiContext, held: Reservations | None, spec: dict, name: str,
                               used_ips: set[str], kept: set[str]) -> None:
    ip = spec.get("clusterIP")
    if ip and ip_key(ip) in kept:
        return  # an update keeping its address
    net = _network(ctx)
    if ip in (None, ""):
        ip = await _pick(ctx, held, used_ips, SERVICE_IPS, str, lambda taken: _free_cluster_ip(net, taken), ip_key)
        if ip is None:
            raise _invalid(name, "spec.clusterIPs", None, "failed to allocate IP: range is full")
    elif ip != "None":
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            raise _invalid(name, "spec.clusterIPs[0]", ip,
                           "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)") from None
        if addr not in net:
            raise _invalid(name, "spec.clusterIPs", [ip], f"failed to allocate IP {ip}: the provided IP ({ip}) is not "
                                                          f"in the valid range. The range of valid IPs is {net}")
        if ip in used_ips or (held is not None and not await _reserve(ctx, held, ip_key(ip))):
            raise _invalid(name, "spec.clusterIPs", [ip], f"failed to allocate IP {ip}: provided IP is already allocated")
    spec["clusterIP"] = ip
    spec["clusterIPs"] = [ip]


async def _allocate_node_ports(ctx: ApiContext, held: Reservations | None, spec: dict, name: str,
                               used_ports: set[int], kept: set[str]) -> None:
    lo, hi = _node_port_range(ctx)

    def free_port(taken: set[int]) -> int | None:
        free = [n for n in range(lo, hi + 1) if n not in taken]
        return random.choice(free) if free else None

    for i, p in enumerate(spec.get("ports") or []):
        if not isinstance(p, dict):
            continue
        np_ = p.get("nodePort")
        if np_ is not None and port_key(np_) in kept:
            continue  # an update keeping its port
        if np_ is None:
            np_ = await _pick(ctx, held, used_ports, NODE_PORTS, int, free_port, port_key)
            if np_ is None:
                raise _invalid(name, f"spec.ports[{i}].nodePort", None, "failed to allocate port: range is full")
        elif not lo <= np_ <= hi:
            raise _invalid(name, f"spec.ports[{i}].nodePort", np_,
                           f"provided port is not in the valid range. The range of valid ports is {lo}-{hi}")
        elif np_ in used_ports or (held is not None and not await _reserve(ctx, held, port_key(np_))):
            raise _invalid(name, f"spec.ports[{i}].nodePort", np_, "provided port is already allocated")
        p["nodePort"] = np_
        used_ports.add(np_)


async def _pick(ctx: ApiContext, held: Reservations | None, used: set, prefix: str, convert, choose, key_of):
    """A free value reserved for ``held`` (or just chosen, for a dry run), or None: range is full.

    Values no stored Service uses are tried; the reservation keys are listed only once one is
    lost (another server's create in flight, or a leftover) — the common create costs no list —
    and are avoided from then on. When nothing is left, the reserved values no stored Service
    uses are tried, which reclaims those that are stale."""
    taken = set(used)
    reserved: set | None = None
    lost = 0
    while lost < MAX_LOST_RESERVATIONS:
        value = choose(taken)
        if value is None:
            break
        if held is None or await _reserve(ctx, held, key_of(value)):
            return value
        taken.add(value)
        lost += 1
        if reserved is None:
            reserved = {convert(v) for v in await _reserved(ctx, prefix)}
            taken |= reserved
    if held is None:
        return None
    if reserved is None:
        reserved = {convert(v) for v in await _reserved(ctx, prefix)}
    for value in sorted(reserved - used):
        if await _reserve(ctx, held, key_of(value)):
            return value
    return None


async def allocate_service(ctx: ApiContext, svc: dict, old: dict | None, *,
                           dry_run: bool = False) -> Reservations | None:
    """Fill ``spec.clusterIP(s)`` and node ports of a Service in place; 422 on a taken or bad value.

    ``old`` is the stored Service an update replaces (None on create): what it holds is kept, and
    only what the update adds is allocated — a type change to NodePort gets its ports, a nodePort
    changed by hand is checked and reserved. Returns the reservations made (None for a dry run or
    when nothing was added): the caller stores the Service, and passes them to
    ``release_after_failed_write`` if that fails. On an error raised here the reservations already
    made are released before it propagates."""
    spec = svc.get("spec")
    if not isinstance(spec, dict):
        spec = svc["spec"] = {}
    kept = service_addresses(old) if old is not None else set()
    if old is not None and not _adds_addresses(spec, kept):
        return None  # the common update: nothing to allocate, no scan
    name = (svc.get("metadata") or {}).get("name", "")
    stype = spec.get("type", "ClusterIP")
    holder, uid = _holder(svc)
    held = None if dry_run else Reservations(holder, uid)
    async with ctx.lock("service-allocation"):
        try:
            used_ips, used_ports = await _used(ctx)
            # the address and the ports are independent: reserved at once (one store round trip less)
            outcomes = await asyncio.gather(
                _allocate_cluster_ip(ctx, held, spec, name, used_ips, kept) if stype != "ExternalName" else _nothing(),
                _allocate_node_ports(ctx, held, spec, name, used_ports, kept) if stype in _NODE_PORT_TYPES
                else _nothing(), return_exceptions=True)
            for outcome in outcomes:  # the clusterIP's error first, as before
                if isinstance(outcome, BaseException):
                    raise outcome
        except Exception:
            await release_after_failed_write(ctx, held)
            raise
    return held


_NODE_PORT_TYPES = ("NodePort", "LoadBalancer")


def _adds_addresses(spec: dict, kept: set[str]) -> bool:
    """Whether ``spec`` needs an address or port it does not hold yet (always, for a create)."""
    stype = spec.get("type", "ClusterIP")
    if stype != "ExternalName":
        ip = spec.get("clusterIP")
        if ip in (None, "") or (ip != "None" and ip_key(str(ip)) not in kept):
            return True
    if stype in _NODE_PORT_TYPES:
        for p in spec.get("ports") or []:
            if isinstance(p, dict) and (not isinstance(p.get("nodePort"), int) or port_key(p["nodePort"]) not in kept):
                return True
    return False


async def _nothing() -> set[str]:
    return set()
