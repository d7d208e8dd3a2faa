"""Write the admin kubeconfig the controller gets: the control plane's own, with every API
server listed in each cluster's ``clusterctl.io/servers`` extension when there are several
(``server:`` stays the first, for kubectl). Rewrites DEST only when it would change, and prints
CHANGED then (run on the first control-plane host with the release's python).

python kubeconfig_servers.py SRC DEST SERVER [SERVER...]
"""
import os
import sys

import yaml

src, dest, servers = sys.argv[1], sys.argv[2], sys.argv[3:]
doc = yaml.safe_load(open(src))
for entry in doc.get("clusters") or []:
    cluster = entry.setdefault("cluster", {})
    others = [e for e in cluster.get("extensions") or [] if e.get("name") != "clusterctl.io/servers"]
    if len(servers) > 1:
        others.append({"name": "clusterctl.io/servers", "extension": {"servers": servers}})
    if others:
        cluster["extensions"] = others
    else:
        cluster.pop("extensions", None)
text = yaml.safe_dump(doc, sort_keys=False)
try:
    same = open(dest).read() == text
except FileNotFoundError:
    same = False
if not same:
    tmp = dest + ".new"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, dest)
    print("CHANGED")
