"""``service`` / ``systemd``: a daemon started, stopped, restarted or reloaded, and enabled or not.

Which manager runs a service is decided on the host, in the same command that acts:

1. **systemd** when ``/run/systemd/system`` exists: ``systemctl is-active``/``is-enabled`` decide,
   ``systemctl start|stop|restart|reload|enable|disable`` act (``daemon_reload`` first if asked).
2. **clusterctl supervisor** when ``/etc/clusterctl/services/NAME.env`` exists — the fallback for
   hosts without systemd (containers, the local lab). The definition is a shell-sourceable file::

       CC_COMMAND='/usr/bin/etcd --data-dir /var/lib/etcd'   # required: the daemon's command line
       CC_USER=etcd           # optional: run as this user (setpriv), default root
       CC_DIR=/var/lib/etcd   # optional: working directory, default /
       CC_STOP_TIMEOUT=10     # optional: seconds between SIGTERM and SIGKILL on stop
       CC_RELOAD_SIGNAL=HUP   # optional: the signal ``reloaded`` sends
       CC_RESTART=always      # optional: always (default, like our units' Restart=always) or no
       CC_RESTART_SEC=2       # optional: seconds before a restart (default 2, like RestartSec=2; 0 allowed)
       ANY_OTHER=value        # every assignment is exported into the daemon's environment

   ``started`` launches a small **keeper** with ``setsid`` (a new session and process group it
   leads, so no terminal hangup reaches it and no nohup is needed — nohup would make SIGHUP ignored
   and untrappable, breaking ``reloaded`` for shell daemons), detached: stdin /dev/null, stdout and
   stderr appended to ``/var/log/clusterctl/NAME.log``, environment marked
   ``CLUSTERCTL_SERVICE=NAME``. The keeper runs ``sh -c 'exec CC_COMMAND'`` (through setpriv for
   ``CC_USER``) as its child, in its group — the command reaches it through the environment, so
   the keeper's own command line does not contain it and ``pkill -f`` on the daemon's command
   line hits the daemon only — and whenever that daemon exits — crash, signal or a
   clean exit, as systemd's ``Restart=always`` — writes ``clusterctl-service: NAME exited with
   status N; restarting in S s`` to the log (N is the shell's status: 128+signal when killed),
   waits ``CC_RESTART_SEC`` and starts it again. A fixed delay as systemd's: a daemon that exits at
   once every time costs one start per ``CC_RESTART_SEC`` (2 s by default), never a spinning CPU;
   ``CC_RESTART_SEC=0`` restarts at once and is meant for tests and daemons that do not
   crash-loop (a shell daemon exiting at once: 831 starts in 20 s, a quarter of a CPU; at the
   default 2 s: 10 starts, 40 ms of CPU — ``docs/benchmarks.md``).
   ``CC_RESTART=no`` keeps the daemon down: the keeper logs ``...; not restarting (CC_RESTART=no)``
   and exits, and the service is stopped. A restart runs the definition as the keeper read it at
   its start (as systemd runs a unit until daemon-reload); ``restarted`` picks up a changed one.

   Files in ``/run/clusterctl``: ``NAME.keeper`` the keeper's pid (= the process group and session
   id), ``NAME.pid`` the daemon's current pid (absent while it is down between restarts),
   ``NAME.starts`` how many times this keeper started it. ``started`` then checks after a short
   grace that the keeper runs, the daemon it started first is still alive and was never restarted;
   otherwise — a bad command line, a daemon dying at start — it stops the keeper and fails with
   the log's tail, instead of leaving a quiet restart loop behind. Later exits are restarted.

   The service counts as running (``state=started``) while the keeper runs — it brings the daemon
   back — checked as: pid alive, not a zombie, environment carrying ``CLUSTERCTL_SERVICE=NAME`` (so
   a recycled pid is never mistaken for it). The reported ``pid`` is the daemon's current pid
   (missing in the moment it is down between restarts), ``keeper_pid`` the keeper's, ``restarts``
   how often the keeper restarted it. A keeper killed on its own (SIGKILL) leaves its daemon up,
   unsupervised: it still counts as started (``keeper_pid`` then names its group) and a stop ends
   that group; ``restarted`` puts it under a keeper again. A daemon started by a supervisor older
   than the keeper (only ``NAME.pid``, the daemon leading its own group) is recognised as its own
   keeper, so an upgraded host stops or reloads it and never starts a second copy beside it.

   ``stopped`` sends SIGTERM to the whole process group (keeper, daemon, the daemon's children):
   the keeper, told to stop, no longer restarts (a daemon it forked while the stop's SIGTERM was
   on its way gets one forwarded), waits for its daemon and exits; after ``CC_STOP_TIMEOUT`` what
   is left of the group gets SIGKILL, and ``stopped`` returns once the whole group is gone.
   ``restarted`` = stop + start (a new keeper, a new daemon). ``reloaded`` sends
   ``CC_RELOAD_SIGNAL`` to the daemon itself (the keeper only traps HUP/USR1/USR2 to survive a
   group-wide one — a trap, not an ignore, so the daemon's own disposition stays the default);
   a daemon down between restarts needs no reload, it starts with the current configuration;
   ``reloaded`` starts the service if it was not running. ``enabled`` is recorded as the marker
   ``/etc/clusterctl/services/NAME.enabled``; ``sh /etc/clusterctl/services/.supervisor
   start-enabled`` (written beside the definitions on every use) starts all enabled services,
   for a host's init to call at boot.
3. **SysV init** when ``/etc/init.d/NAME`` exists: ``status`` decides, the script acts;
   ``enabled`` via ``update-rc.d``/``chkconfig`` when present.

Check mode runs the same decision and reports what would change without acting.
"""

from __future__ import annotations

import shlex

from clusterctl.provision.modules.context import ModuleArgError, ModuleContext
from clusterctl.provision.modules.results import failed, ok

q = shlex.quote
STATES = ("started", "stopped", "restarted", "reloaded")
SERVICES_DIR = "/etc/clusterctl/services"

# The keeper: ``setsid sh -c "$KEEPER" clusterctl-service NAME RUNDIR RESTART RESTART_SEC [RUN_AS]``
# with the definition exported (CC_COMMAND among it), stdout/stderr on the service's log. The
# daemon's command line comes from the environment, not argv, so ``pkill -f DAEMON`` never hits
# the keeper. It lives inside the supervisor between single quotes, so it holds none; its
# variables are prefixed so they never shadow a definition's exported ones.
KEEPER = r"""
cc_name=$1; cc_run=$2; cc_restart=$3; cc_delay=$4; cc_run_as=$5
cc_pidf=$cc_run/$cc_name.pid; cc_startsf=$cc_run/$cc_name.starts
echo $$ > "$cc_run/$cc_name.keeper"
cc_stopping=0; cc_starts=0; cc_status=0
trap "cc_stopping=1" TERM
trap ":" HUP USR1 USR2
while [ "$cc_stopping" = 0 ]; do
  $cc_run_as sh -c "exec $CC_COMMAND" &
  cc_child=$!
  # a stop whose group SIGTERM came while this fork was under way: the new daemon missed it
  [ "$cc_stopping" = 0 ] || kill -TERM "$cc_child" 2>/dev/null
  cc_starts=$((cc_starts + 1))
  echo "$cc_child" > "$cc_pidf.new" && mv -f "$cc_pidf.new" "$cc_pidf"
  echo "$cc_starts" > "$cc_startsf"
  while :; do
    wait "$cc_child" 2>/dev/null; cc_status=$?
    # a trapped signal ends wait early (status > 128) while the daemon still runs: wait again
    [ "$cc_status" -gt 128 ] && kill -0 "$cc_child" 2>/dev/null && continue
    break
  done
  rm -f "$cc_pidf"
  [ "$cc_stopping" = 0 ] || break
  if [ "$cc_restart" = no ]; then
    echo "clusterctl-service: $cc_name exited with status $cc_status; not restarting (CC_RESTART=no)"
    break
  fi
  echo "clusterctl-service: $cc_name exited with status $cc_status; restarting in $cc_delay s"
  sleep "$cc_delay"
done
"""
assert "'" not in KEEPER

# The supervisor: ``sh -c "$SUPERVISOR" clusterctl-service ACTION NAME ENABLED CHECK GRACE``.
# ACTION: started|stopped|restarted|reloaded|status|start-enabled; ENABLED: yes|no|-; CHECK: 1|0.
SUPERVISOR = r"""
action=$1; name=$2; want_enabled=${3:--}; check=${4:-0}; grace=${5:-0.3}
dir=/etc/clusterctl/services; def=$dir/$name.env; log=/var/log/clusterctl/$name.log
run=/run/clusterctl; pidf=$run/$name.pid; keeperf=$run/$name.keeper; startsf=$run/$name.starts
keeper='@KEEPER@'
changed=0
alive() { kill -0 "$1" 2>/dev/null && [ "$(sed 's/.*) //' /proc/$1/stat 2>/dev/null | cut -c1)" != Z ]; }
ours() {
  case $1 in ''|*[!0-9]*) return 1;; esac
  alive "$1" && tr '\0' '\n' < /proc/$1/environ 2>/dev/null | grep -qx "CLUSTERCTL_SERVICE=$name"
}
# running: the keeper runs (sets kpid = the group); a daemon from before the keeper leads its group: its own keeper
running() {
  kpid=$(cat "$keeperf" 2>/dev/null)
  [ -e "$keeperf" ] || kpid=$(cat "$pidf" 2>/dev/null)
  ours "$kpid" && return 0
  # a keeper killed on its own leaves its daemon up: that group runs, and is what a stop ends
  daemon_pid && kpid=$(sed 's/.*) //' /proc/$dpid/stat 2>/dev/null | cut -d' ' -f3) && [ -n "$kpid" ]
}
# daemon_pid: the daemon is up right now (sets dpid)
daemon_pid() { dpid=$(cat "$pidf" 2>/dev/null); ours "$dpid"; }
setting() { ( set +u; . "$def" >/dev/null 2>&1; eval "printf '%s' \"\${$1:-$2}\"" ); }
clear_run() { rm -f "$pidf" "$pidf.new" "$keeperf" "$startsf"; }
do_start() {
  [ -f "$def" ] || { echo "no service definition $def" >&2; exit 4; }
  mkdir -p "$run" /var/log/clusterctl
  clear_run
  (
    set -a; . "$def"; set +a
    CLUSTERCTL_SERVICE=$name; export CLUSTERCTL_SERVICE
    [ -n "$CC_COMMAND" ] || { echo "CC_COMMAND is empty in $def" >&2; exit 4; }
    case ${CC_RESTART:-always} in always|no) ;; *) echo "CC_RESTART must be always or no in $def, got: $CC_RESTART" >&2; exit 4;; esac
    case ${CC_RESTART_SEC:-2} in *[!0-9.]*|.|*.*.*) echo "CC_RESTART_SEC must be a number of seconds in $def, got: $CC_RESTART_SEC" >&2; exit 4;; esac
    cd "${CC_DIR:-/}" || exit 4
    run_as=
    if [ -n "$CC_USER" ] && [ "$CC_USER" != root ]; then
      run_as="setpriv --reuid=$(id -u "$CC_USER") --regid=$(id -g "$CC_USER") --init-groups --"
    fi
    setsid sh -c "$keeper" clusterctl-service "$name" "$run" "${CC_RESTART:-always}" "${CC_RESTART_SEC:-2}" "$run_as" \
      >> "$log" 2>&1 < /dev/null &
  ) || exit $?
  # the keeper's first start of the daemon (or the keeper already gone), for up to 30 s on a busy host
  i=0
  while [ ! -s "$startsf" ] && [ $i -lt 300 ]; do
    [ -s "$keeperf" ] && ! running && break
    sleep 0.1; i=$((i+1))
  done
  first=$(cat "$pidf" 2>/dev/null)
  sleep "$grace"
  if running && [ "$(cat "$startsf" 2>/dev/null)" = 1 ] && [ -n "$first" ] && alive "$first"; then return 0; fi
  do_stop
  echo "service $name exited right after start; last lines of $log:" >&2; tail -n 20 "$log" >&2; exit 5
}
do_stop() {
  running || { clear_run; return 0; }
  timeout=$(setting CC_STOP_TIMEOUT 10)
  kill -TERM "-$kpid" 2>/dev/null || kill -TERM "$kpid" 2>/dev/null
  # the whole process group, as systemd's control-group kill: a child still exiting is not "stopped".
  # "kill -SIG -PGID", never "kill -SIG -- -PGID": dash and busybox refuse that "--" (nothing is sent)
  i=0; while { alive "$kpid" || kill -0 "-$kpid" 2>/dev/null; } && [ $i -lt $((timeout * 10)) ]; do sleep 0.1; i=$((i+1)); done
  kill -KILL "-$kpid" 2>/dev/null || { alive "$kpid" && kill -KILL "$kpid" 2>/dev/null; }
  i=0; while kill -0 "-$kpid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
  clear_run
}
if running; then echo "was=started"; else echo "was=stopped"; fi
[ -f "$dir/$name.enabled" ] && echo "was_enabled=yes" || echo "was_enabled=no"
if [ "$action" = start-enabled ]; then
  for f in "$dir"/*.enabled; do [ -e "$f" ] || continue; n=$(basename "$f" .enabled); sh "$dir/.supervisor" started "$n" - 0 "$grace"; done
  exit 0
fi
case $action in
  started) running || { changed=1; [ "$check" = 1 ] || do_start; } ;;
  stopped) running && { changed=1; [ "$check" = 1 ] || do_stop; } ;;
  restarted) changed=1; [ "$check" = 1 ] || { do_stop; do_start; } ;;
  reloaded) changed=1
    if [ "$check" != 1 ]; then
      if running; then
        # the daemon itself; one down between restarts comes back with the current configuration
        if daemon_pid; then kill -"$(setting CC_RELOAD_SIGNAL HUP)" "$dpid"; fi
      else do_start; fi
    fi ;;
  status) : ;;
  *) echo "unknown action $action" >&2; exit 2 ;;
esac
if [ "$want_enabled" = yes ] && [ ! -f "$dir/$name.enabled" ]; then
  changed=1; [ "$check" = 1 ] || { mkdir -p "$dir" && : > "$dir/$name.enabled"; }
elif [ "$want_enabled" = no ] && [ -f "$dir/$name.enabled" ]; then
  changed=1; [ "$check" = 1 ] || rm -f "$dir/$name.enabled"
fi
if running; then
  echo "state=started"; echo "keeper_pid=$kpid"
  if daemon_pid; then echo "pid=$dpid"; fi
  starts=$(cat "$startsf" 2>/dev/null)
  case $starts in ''|*[!0-9]*) ;; *) echo "restarts=$((starts - 1))";; esac
else echo "state=stopped"; fi
if [ -f "$dir/$name.enabled" ]; then echo "enabled=yes"; else echo "enabled=no"; fi
echo "changed=$changed"
""".replace("@KEEPER@", KEEPER.strip())

# One command: pick the manager, then decide and act with it.
_DISPATCH = r"""name=%(name)s; state=%(state)s; en=%(enabled)s; check=%(check)s
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  echo manager=systemd
  unit=$name; case $unit in *.*) ;; *) unit=$unit.service;; esac
  [ %(daemon_reload)s = 1 ] && [ "$check" != 1 ] && systemctl daemon-reload
  act=$(systemctl is-active "$unit" 2>/dev/null); ena=$(systemctl is-enabled "$unit" 2>/dev/null)
  [ "$act" = active ] && was=started || was=stopped
  echo was=$was; [ "$ena" = enabled ] && echo was_enabled=yes || echo was_enabled=no
  changed=0; cmd=
  case $state in
    started) [ $was = started ] || { changed=1; cmd=start; } ;;
    stopped) [ $was = stopped ] || { changed=1; cmd=stop; } ;;
    restarted) changed=1; cmd=restart ;;
    reloaded) changed=1; [ $was = started ] && cmd=reload || cmd=start ;;
  esac
  if [ "$check" != 1 ] && [ -n "$cmd" ]; then systemctl "$cmd" "$unit" || exit $?; fi
  if [ "$en" = yes ] && [ "$ena" != enabled ]; then changed=1; [ "$check" = 1 ] || systemctl enable "$unit" || exit $?; fi
  if [ "$en" = no ] && [ "$ena" = enabled ]; then changed=1; [ "$check" = 1 ] || systemctl disable "$unit" || exit $?; fi
  [ "$(systemctl is-active "$unit" 2>/dev/null)" = active ] && echo state=started || echo state=stopped
  [ "$(systemctl is-enabled "$unit" 2>/dev/null)" = enabled ] && echo enabled=yes || echo enabled=no
  echo changed=$changed
elif [ -f /etc/clusterctl/services/"$name".env ]; then
  echo manager=clusterctl
  sup=%(supervisor)s
  # keep the on-host copy (used at boot by start-enabled) current, but never write in check mode
  if [ "$check" != 1 ] && [ "$(cat /etc/clusterctl/services/.supervisor 2>/dev/null)" != "$sup" ]; then
    printf '%%s\n' "$sup" > /etc/clusterctl/services/.supervisor
  fi
  sh -c "$sup" clusterctl-service "$state" "$name" "$en" "$check" %(grace)s
elif [ -x /etc/init.d/"$name" ]; then
  echo manager=sysv
  s=/etc/init.d/$name
  "$s" status >/dev/null 2>&1 && was=started || was=stopped
  echo was=$was
  changed=0; cmd=
  case $state in
    started) [ $was = started ] || { changed=1; cmd=start; } ;;
    stopped) [ $was = stopped ] || { changed=1; cmd=stop; } ;;
    restarted) changed=1; cmd=restart ;;
    reloaded) changed=1; cmd=reload ;;
  esac
  if [ "$check" != 1 ] && [ -n "$cmd" ]; then "$s" "$cmd" || exit $?; fi
  ls /etc/rc[2345].d/S[0-9][0-9]"$name" >/dev/null 2>&1 && ena=yes || ena=no
  echo was_enabled=$ena
  if [ "$en" != - ] && [ "$en" != "$ena" ]; then
    changed=1
    if [ "$check" != 1 ]; then
      if command -v update-rc.d >/dev/null 2>&1; then
        if [ "$en" = yes ]; then update-rc.d "$name" defaults >/dev/null && update-rc.d "$name" enable >/dev/null; else update-rc.d "$name" disable >/dev/null; fi
      elif command -v chkconfig >/dev/null 2>&1; then chkconfig "$name" "$([ "$en" = yes ] && echo on || echo off)"
      else echo "cannot change boot-time state of $name: no update-rc.d or chkconfig" >&2; exit 6; fi
      ena=$en
    fi
  fi
  [ "$check" = 1 ] || { "$s" status >/dev/null 2>&1 && was=started || was=stopped; }
  echo state=$was; echo enabled=$ena; echo changed=$changed
else
  echo "could not find the requested service $name: no systemd, no $name in /etc/clusterctl/services, no /etc/init.d/$name" >&2
  exit 7
fi
"""


def _bool_or_none(value):
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip().lower() in ("1", "yes", "true", "on", "y")
    return bool(value)


def validate_service(args: dict) -> None:
    if args.get("name") is None:
        raise ModuleArgError("service: missing required arguments: name")
    state = args.get("state")
    if state is not None and "{{" not in str(state) and state not in STATES:
        raise ModuleArgError(f"service: value of state must be one of: {', '.join(STATES)}, got: {state}")
    if state is None and args.get("enabled") is None and not args.get("daemon_reload"):
        raise ModuleArgError("service: one of the following is required: state, enabled")


def parse_service_output(text: str) -> dict:
    """``key=value`` lines of the dispatcher -> dict (pure)."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.isidentifier():
            out[key] = value.strip()
    return out


async def run_service(ctx: ModuleContext, args: dict) -> dict:
    name = str(args["name"])
    state = args.get("state") or "status"
    enabled = _bool_or_none(args.get("enabled"))
    script = _DISPATCH % {
        "name": q(name),
        "state": q(state),
        "enabled": {True: "yes", False: "no", None: "-"}[enabled],
        "check": 1 if ctx.check_mode else 0,
        "daemon_reload": 1 if _bool_or_none(args.get("daemon_reload")) else 0,
        "supervisor": q(SUPERVISOR.strip()),
        "grace": q(str(args.get("startup_grace", 0.3))),
    }
    res = await ctx.run(script)
    info = parse_service_output(res.stdout)
    if res.rc != 0:
        detail = res.stderr.strip() or res.stdout.strip()
        return failed(f"service {name}: {detail}" if detail else f"service {name} failed (rc={res.rc})",
                      name=name, rc=res.rc, manager=info.get("manager"))
    result = ok(info.get("changed") == "1", name=name, state=info.get("state"),
                enabled=info.get("enabled") == "yes", manager=info.get("manager"),
                status={"ActiveState": "active" if info.get("state") == "started" else "inactive"})
    for key in ("pid", "keeper_pid", "restarts"):
        if info.get(key, "").isdigit():
            result[key] = int(info[key])
    if ctx.diff and result["changed"]:
        before = {"state": info.get("was"), "enabled": info.get("was_enabled") == "yes"}
        after = {"state": info.get("state") if not ctx.check_mode else ("stopped" if state == "stopped" else "started"),
                 "enabled": info.get("enabled") == "yes" if not ctx.check_mode or enabled is None else enabled}
        result["diff"] = [{"before": before, "after": after, "before_header": f"service {name}", "after_header": f"service {name}"}]
    return result
