"""Errors of the node runtime, under ``clusterctl.errors.ClusterctlError``."""

from clusterctl.errors import ClusterctlError


class NodeRuntimeError(ClusterctlError):
    """The node runtime could not do what was asked."""


class ImageError(NodeRuntimeError):
    """An image could not be resolved, pulled, verified, unpacked or pushed."""


class ImagePullError(ImageError):
    """Pulling failed; the pod shows ErrImagePull (then ImagePullBackOff) with this message."""


class RegistryNotAllowed(ImagePullError):
    """The image's registry is not in the allow-list; nothing was contacted or resolved."""


class ImageNotPresent(ImagePullError):
    """imagePullPolicy: Never and the image is not in the local cache."""
