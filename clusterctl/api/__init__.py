"""The Kubernetes-compatible API server (see docs/api.md for what is implemented).

Modules: ``kinds`` (registry), ``validation`` (defaults + rules), ``selectors``, ``decoding``
(bodies, fieldValidation), ``rest`` (verbs), ``watch``, ``lifecycle`` (deletion, GC, namespaces),
``scale``, ``pod_actions`` (binding, eviction), ``allocation`` (Service IPs/ports), ``errors``
(Status), ``auth`` (PKI, tokens, scopes), ``secrets_at_rest``, ``config``, ``kubeconfig``,
``server`` (app + ``ApiServer``), ``cli`` (``clusterctl control-plane``), ``testing`` (fixtures).
"""
