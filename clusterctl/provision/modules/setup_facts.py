"""``setup`` (and ``gather_facts``): the host's facts as ``ansible_facts``, from ``clusterctl.provision.facts``.

Keys inside ``ansible_facts`` carry no ``ansible_`` prefix (Ansible's namespaced form); the
executor also sets them as ``ansible_<name>`` host variables. ``gather_subset`` and ``filter``
are accepted; ``filter`` (glob on the prefixed or bare name) narrows the result.
"""

from __future__ import annotations

import fnmatch

from clusterctl.provision.facts import gather_facts
from clusterctl.provision.modules.context import ModuleContext
from clusterctl.provision.modules.results import ok


async def run_setup(ctx: ModuleContext, args: dict) -> dict:
    facts = await gather_facts(ctx.conn, timeout=ctx.timeout or 30, become=ctx.become)
    patterns = args.get("filter") or []
    if isinstance(patterns, str):
        patterns = [p.strip() for p in patterns.split(",") if p.strip()]
    if patterns:
        facts = {k: v for k, v in facts.items()
                 if any(fnmatch.fnmatch(k, p) or fnmatch.fnmatch(f"ansible_{k}", p) for p in patterns)}
    subset = args.get("gather_subset")
    if subset is not None:
        facts["gather_subset"] = subset if isinstance(subset, list) else [s.strip() for s in str(subset).split(",")]
    return ok(False, ansible_facts=facts)
