# clusterctl preflight: prints one PROBLEM line per thing that would stop this host from running
# its role and exits 1 if there is any. Changes nothing.
# sh -c "$(cat preflight.sh)" preflight ARCH PYTHON CONTROLLER_TIME MAX_SKEW [PORT:SERVICE | needs=COMMAND:PACKAGE:WHY ...]
want_arch=$1; want_py=$2; controller_time=$3; max_skew=$4; shift 4
problems=0
problem() { echo "PROBLEM: $*" >&2; problems=$((problems+1)); }
[ "$(uname -s)" = Linux ] || problem "OS is $(uname -s), clusterctl needs Linux"
arch=$(uname -m)
[ "$arch" = "$want_arch" ] || problem "architecture $arch differs from the wheelhouse's $want_arch"
py=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
[ "$py" = "$want_py" ] || problem "python3 is '${py:-missing}', the wheelhouse needs $want_py"
python3 -c 'import venv' 2>/dev/null || problem "python3 has no venv module (Debian: python3-venv)"
grep -qw overlay /proc/filesystems || problem "kernel has no overlay filesystem (modprobe overlay)"
for ns in mnt pid net uts ipc; do [ -e /proc/self/ns/$ns ] || problem "kernel lacks $ns namespaces"; done
[ -n "$(ls /sys/fs/cgroup 2>/dev/null)" ] || problem "no cgroup hierarchy mounted under /sys/fs/cgroup"
skew=$(( $(date +%s) - controller_time ))
[ "${skew#-}" -le "$max_skew" ] || problem "clock is ${skew}s off the controller's (max ${max_skew}s)"
for spec in "$@"; do
  case $spec in needs=*)
    need=${spec#needs=}; tool=${need%%:*}; rest=${need#*:}
    command -v "$tool" >/dev/null 2>&1 || problem "no $tool command (Debian: ${rest%%:*}): ${rest#*:}"
    continue;;
  esac
  port=${spec%%:*}; service=${spec#*:}
  # a port held by our own service (a rerun) is fine
  if [ ! -f "/etc/clusterctl/services/$service.env" ] && [ ! -f "/etc/systemd/system/$service.service" ] \
     && ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then
    problem "TCP port $port (for $service) is already in use"
  fi
done
avail=$(df -Pk /var/lib 2>/dev/null | awk 'NR==2 {print $4}')
[ "${avail:-0}" -ge 524288 ] || problem "less than 512 MiB free under /var/lib"
[ $problems -eq 0 ] || exit 1
echo "preflight ok: $(uname -sr) $arch python $py"
