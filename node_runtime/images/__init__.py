"""OCI images: references, the distribution-API client, the local content store, building.

``reference``  parse ``registry/repo:tag@digest`` the way Docker does.
``registry``   talk to any OCI distribution registry (token auth, digest checks, allow-list,
               per-pull credentials).
``pull_secrets``  a pod's ``imagePullSecrets`` → credentials per registry for its pulls.
``store``      the node's content-addressed cache: blobs, unpacked layers, image records, GC;
               images pulled with credentials only for pulls the registry would serve too.
``build``      make a single-layer image from a directory or tarball (``clusterctl image push``).
``registry_process``  start a local Debian ``docker-registry`` (tests, ``clusterctl up``), optionally
               private (htpasswd users, or any ``auth:`` block such as a token server).
"""
