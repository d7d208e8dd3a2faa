"""Errors of the provisioner. Every message names the file, line, task or host it is about."""

from clusterctl.errors import ClusterctlError, UsageError


class ProvisionError(ClusterctlError):
    """A provisioning run could not go on."""


class InventoryError(UsageError):
    """An inventory file or folder is missing or malformed (message names file and line)."""


class PlaybookError(UsageError):
    """A playbook is malformed: YAML syntax, unknown module or keyword, missing argument."""


class TemplateError(UsageError):
    """A Jinja2 expression failed: undefined variable, bad filter, syntax error."""


class HostUnreachable(ProvisionError):
    """The host could not be reached over SSH (connect, auth, host key, or the link died)."""

    def __init__(self, host: str, reason: str):
        super().__init__(f"{host}: UNREACHABLE: {reason}")
        self.host = host
        self.reason = reason


class CommandTimeout(ProvisionError):
    """A command on a host ran longer than its timeout."""
