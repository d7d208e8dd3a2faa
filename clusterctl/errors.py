"""The root of clusterctl's own exceptions.

Each package has its own family under ``ClusterctlError`` (``ProvisionError``, ``StoreError``,
``LabError``, ...) defined in that package's ``errors.py``. Foreign errors (asyncssh, OSError,
jinja2, TinyDB, aiohttp) are wrapped where they enter with ``raise ... from exc`` so the message
names what failed and where. The CLI prints ``str(exc)`` as one line and exits ``exit_code``.
"""


class ClusterctlError(Exception):
    """Something the user can act on went wrong; the message says what and where."""

    exit_code: int = 1


class UsageError(ClusterctlError):
    """The command line or an input file is wrong."""

    exit_code = 2
