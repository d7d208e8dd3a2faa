"""ServiceAccount admission for Pods: the ServiceAccount's ``imagePullSecrets`` join a new Pod.

Kubernetes' ``ServiceAccount`` admission plugin adds the ``imagePullSecrets`` of a Pod's
ServiceAccount (``spec.serviceAccountName``, defaulting to ``default``) to the Pod when it is
created and names none itself, so teams set a private registry's Secret once per namespace
(``kubectl patch serviceaccount default -p '{"imagePullSecrets": [{"name": "regcred"}]}'``) instead
of in every manifest. Here the rule is that one, on create only; a Pod that lists its own
``imagePullSecrets`` keeps exactly those. A ServiceAccount that does not exist adds nothing: this
API server has no ServiceAccount controller creating ``default`` in each namespace, so refusing
such Pods (as Kubernetes does) would refuse nearly every Pod.

Pod specs are immutable, so an update that omits the admitted list keeps the stored one
(``keep_admitted_pull_secrets``), as for admitted priorities.
"""

from __future__ import annotations

from clusterctl.api.context import ApiContext


async def admit_pod_service_account(ctx: ApiContext, pod: dict) -> None:
    """Copy the ServiceAccount's ``imagePullSecrets`` into a Pod being created that has none."""
    spec = pod.get("spec")
    if not isinstance(spec, dict) or spec.get("imagePullSecrets"):
        return
    name = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    namespace = (pod.get("metadata") or {}).get("namespace")
    if not isinstance(name, str) or not isinstance(namespace, str):
        return  # ill-typed: validation's concern
    info = ctx.registry.by_kind("", "ServiceAccount")
    item = await ctx.store.get(info.key(namespace, name))
    if item is None:
        return
    secrets = ctx.load(item).get("imagePullSecrets")
    if isinstance(secrets, list):
        refs = [{"name": s["name"]} for s in secrets if isinstance(s, dict) and isinstance(s.get("name"), str) and s["name"]]
        if refs:
            spec["imagePullSecrets"] = refs


def keep_admitted_pull_secrets(old: dict, new: dict) -> None:
    """An update that omits ``spec.imagePullSecrets`` keeps the stored (possibly admitted) list."""
    ospec, nspec = old.get("spec"), new.get("spec")
    if isinstance(ospec, dict) and isinstance(nspec, dict) and "imagePullSecrets" not in nspec and "imagePullSecrets" in ospec:
        nspec["imagePullSecrets"] = ospec["imagePullSecrets"]
