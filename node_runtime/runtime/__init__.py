"""Container runtimes: how a pod's containers become isolated processes.

``process`` (built in, default): overlayfs rootfs from image layers, mount/PID/UTS/IPC namespaces,
the pod's network namespace, pivot_root, default capability set, no_new_privs, masked /proc paths,
read-only /sys, cgroup limits (``cgroups``). ``launcher`` is the tiny program that sets a container
up from inside its namespaces and execs the workload. ``podman`` delegates to podman.
"""
