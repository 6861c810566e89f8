#!/usr/bin/env python3
"""Foreground supervisor for the single-node test cluster (tools/slurm/cluster.sh).

PID 1 on this machine does not reap orphans, and slurmd re-parents every
slurmstepd (and so every job process) away from itself. This supervisor makes
itself a child subreaper (prctl PR_SET_CHILD_SUBREAPER), starts each daemon
given as a command line (one per `--cmd` argument, a shell-quoted string) as
its own child, and reaps everything that is re-parented to it. On SIGTERM or
SIGINT it sends SIGTERM to the daemons it started, waits up to --grace
seconds, then SIGKILLs every remaining descendant and exits once nothing is
left to reap. It writes its pid to --pid-file once all daemons are started
and removes it at exit. It never restarts a daemon: if one dies, the others
are stopped too and the supervisor exits 1.
"""

import argparse
import ctypes
import os
import shlex
import signal
import sys
import time

PR_SET_CHILD_SUBREAPER = 36


def descendants():
    """Pids of every live process whose parent chain leads to us."""
    me = os.getpid()
    parent = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                stat = f.read()
            # field 4 (ppid) follows the ")" closing the command name
            rest = stat[stat.rindex(b")") + 2:].split()
            parent[int(d)] = int(rest[1])
        except (OSError, ValueError, IndexError):
            continue
    out = []
    for pid in parent:
        p, seen = pid, 0
        while p in parent and seen < 64:
            p = parent[p]
            seen += 1
            if p == me:
                out.append(pid)
                break
    return out


def reap():
    """Reaps every exited child; returns the pids reaped."""
    done = []
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return done
        if pid == 0:
            return done
        done.append(pid)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pid-file", required=True)
    ap.add_argument("--grace", type=float, default=10.0)
    ap.add_argument("--cmd", action="append", required=True)
    a = ap.parse_args()

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print("supervise: prctl(PR_SET_CHILD_SUBREAPER) failed", file=sys.stderr)
        return 1

    stopping = {"flag": False}

    def on_signal(_sig, _frm):
        stopping["flag"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    daemons = {}
    for c in a.cmd:
        argv = shlex.split(c)
        pid = os.fork()
        if pid == 0:
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                os.execvp(argv[0], argv)
            finally:
                os._exit(127)
        daemons[pid] = argv[0]
    tmp = a.pid_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{os.getpid()}\n")
    os.rename(tmp, a.pid_file)

    rc = 0
    while not stopping["flag"]:
        for pid in reap():
            if pid in daemons:
                print(f"supervise: {daemons.pop(pid)} (pid {pid}) exited; stopping the cluster",
                      file=sys.stderr)
                stopping["flag"] = True
                rc = 1
        time.sleep(0.2)

    for pid in daemons:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + a.grace
    while time.monotonic() < deadline:
        for pid in reap():
            daemons.pop(pid, None)
        if not daemons:
            break
        time.sleep(0.1)
    # Anything left (daemons that ignored SIGTERM, stray job processes):
    # SIGKILL and reap until nothing remains.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        left = descendants()
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        reap()
        if not left:
            break
        time.sleep(0.1)
    try:
        os.unlink(a.pid_file)
    except FileNotFoundError:
        pass
    return rc


if __name__ == "__main__":
    sys.exit(main())
