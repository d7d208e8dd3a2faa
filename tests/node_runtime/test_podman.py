"""The podman runtime's generated command lines (podman is not installed on this machine kind:
this is all that can be checked here; the runtime itself is not exercised)."""

from __future__ import annotations

from node_runtime.podman import GLOBAL_OPTS, container_name, env_file_text, run_argv
from node_runtime.runtime.process import ContainerConfig

import pytest


def test_run_argv_carries_the_pod_semantics():
    cfg = ContainerConfig(id="uid_web_0_ab12", layers=["/l/1"], argv=["/bin/httpd", "-f", "-p", "8080"], env={"A": "1"},
                          cwd="/www", hostname="web-1", uid=1000, gid=2000, netns="/run/netns/clusterctl-n1-abcd",
                          mounts=[{"source": "/data/v", "target": "/v", "type": "bind", "readonly": True},
                                  {"source": "", "target": "/scratch", "type": "tmpfs", "options": "size=1m"}],
                          memory_bytes=64 << 20, cpu_millis=250, log_path="/logs/0.log", labels={"io.clusterctl.pod.uid": "uid"})
    argv = run_argv("n1", cfg, "/l/1", "/dev/shm/x.env")
    assert argv[1:1 + len(GLOBAL_OPTS)] == ["--runtime", "runc", "--cgroup-manager", "cgroupfs", "--events-backend", "file"]
    joined = " ".join(argv)
    for part in ["run --detach --name clusterctl-n1-uid_web_0_ab12", "--network ns:/run/netns/clusterctl-n1-abcd",
                 "--hostname web-1", "--ulimit nofile=20000:20000", "--ulimit nproc=32768:32768", "--env-file /dev/shm/x.env",
                 "--workdir /www", "--user 1000:2000", "--memory 67108864 --memory-swap 67108864", "--cpus 0.25",
                 "--volume /data/v:/v:ro,rbind", "--tmpfs /scratch:size=1m", "--log-driver k8s-file", "--log-opt path=/logs/0.log",
                 "--label io.clusterctl.node=n1", "--label io.clusterctl.pod.uid=uid", "--security-opt no-new-privileges"]:
        assert part in joined, part
    # --rootfs is a flag; the exploded rootfs (overlay-mounted by podman) comes first, then the command
    assert argv[argv.index("--") + 1:] == ["/l/1:O", "/bin/httpd", "-f", "-p", "8080"]
    assert "A=1" not in joined  # env (maybe Secret values) never on a command line


def test_host_network_and_env_file():
    cfg = ContainerConfig(id="x", layers=["/l"], argv=["sh"])
    assert "--network host" in " ".join(run_argv("n", cfg, "/l", None))
    assert env_file_text({"A": "1", "B": "two words"}) == "A=1\nB=two words\n"
    with pytest.raises(Exception, match="newlines"):
        env_file_text({"A": "x\ny"})
    assert container_name("n", "c") == "clusterctl-n-c"
