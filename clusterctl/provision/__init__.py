"""The provisioner: Ansible-style inventories and playbooks run over one SSH connection per host.

``inventory`` + ``variables`` + ``templating`` resolve what to do for each host; ``playbook``
parses and validates the whole tree before any host is touched; ``executor`` runs plays over
``connection`` (asyncssh, SFTP) with ``modules`` as POSIX shell; ``output`` prints Ansible-style
progress, the PLAY RECAP and the ``--log-json`` feed.
"""
