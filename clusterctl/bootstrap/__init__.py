"""From an inventory to a running cluster: ``clusterctl bootstrap``, ``upgrade``, ``remove-node``.

The work is done by the playbooks in ``playbooks/`` (run through the provisioner); this package
builds what they upload (``wheelhouse``) and wraps them in short commands (``cli``).
"""
