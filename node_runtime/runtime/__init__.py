"""Container runtimes: how a pod's containers become isolated processes.

``process`` (built in, default): overlayfs rootfs from image layers, mount/PID/UTS/IPC namespaces,
the pod's network namespace, pivot_root, default capability set, no_new_privs, masked /proc paths,
read-only /sys, cgroup limits (``cgroups``). ``shim`` builds ``shim/ccl-shim.c``, the compiled
parent of each container that also sets it up from inside its namespaces and execs the workload;
``launcher`` is the same setup in Python, run under util-linux ``unshare`` where no C compiler is.
``podman`` delegates to podman.
"""
