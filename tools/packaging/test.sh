#!/usr/bin/env bash
# Packaging tests (README "Install on a cluster"), as root; tools/test.sh
# runs this. Usage: tools/packaging/test.sh [deb] [easybuild] (default
# both). It installs what it needs (Debian packages, cargo-deb, EasyBuild).
# Each install path is tested from this checkout with the installed binaries
# only:
#   1. the generated man pages, completions and easyconfig crate list equal
#      what the code generates now; the man pages render without warnings;
#   2. one release build (default features: no benchmark ceilings), checked,
#      packaged with cargo-deb, installed with apt into a clean Debian 12
#      chroot (debootstrap --variant=minbase, cached) which runs the age demo
#      (tools/packaging/demo.sh) as an unprivileged user, `man hpcs-mount`,
#      the bash completion, and a purge;
#   3. EasyBuild (PyPI) builds the easyconfig from the project's source
#      tarball and the locked crates, offline, into a temporary prefix; a
#      fresh shell with Lmod (Debian lmod) runs `module load hpcs`, then the
#      age demo as an unprivileged user with the module's binaries.
# Kept between runs in /var/cache/hpcs-packaging (or $HPCS_PACKAGING_CACHE),
# outside the checkout so that a fresh clone on the same machine (CI) finds it: the
# chroot's base tarball, cargo-deb, the EasyBuild virtualenv, apt's
# downloaded packages, the last EasyBuild log. Everything else lives in a
# temporary directory under /var/tmp, removed at the end.
# Prints how long each step took.
# shellcheck disable=SC2016 # the fresh shells' scripts are single-quoted on purpose
set -euo pipefail
cd "$(dirname "$0")/../.."

EASYBUILD_VERSION=5.4.1
CARGO_DEB_VERSION=3.8.0

fail() { echo "packaging: FAILED: $*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || fail "needs root (debootstrap, chroot, mounts)"

start=$SECONDS last=$SECONDS
step() {
  echo "packaging: [$((SECONDS - last))s] $*" >&2
  last=$SECONDS
}

# What this needs from Debian, installed here when missing (CI starts from a
# clean machine, as root, without stdin): debootstrap for the clean root,
# Lmod for the module, man-db, objcopy (binutils) for the .deb's debug
# symbols, and python3-venv for EasyBuild's virtualenv.
lmod_init=/usr/share/lmod/lmod/init/bash
need_apt=()
for c in debootstrap:debootstrap man:man-db objcopy:binutils; do
  command -v "${c%%:*}" >/dev/null || need_apt+=("${c#*:}")
done
[[ -r $lmod_init ]] || need_apt+=(lmod)
# Debian's python3 makes a virtualenv only with python3-venv (ensurepip).
python3 -m venv --help >/dev/null 2>&1 && python3 -c 'import ensurepip' 2>/dev/null || need_apt+=(python3-venv)
if ((${#need_apt[@]})); then
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" </dev/null >/dev/null
  step "installed ${need_apt[*]} from Debian"
fi
for c in debootstrap dpkg-deb unshare chroot setpriv man git python3 cargo; do
  command -v "$c" >/dev/null || fail "$c is missing"
done
[[ -r $lmod_init ]] || fail "Lmod is missing ($lmod_init; Debian package lmod)"

# The parts to run (default: both); the generated files are always checked.
parts=" ${*:-deb easybuild} "
want() { [[ $parts == *" $1 "* ]]; }
for p in $parts; do
  [[ $p == deb || $p == easybuild ]] || fail "unknown part '$p' (usage: $0 [deb] [easybuild])"
done

cache=${HPCS_PACKAGING_CACHE:-/var/cache/hpcs-packaging}
mkdir -p "$cache"
work=$(mktemp -d /var/tmp/hpcs-packaging.XXXXXX)
chmod 755 "$work" # the demo's unprivileged user reaches the module under it
cleanup() {
  local rc=$?
  # The chroot's mounts live in a private mount namespace and are gone;
  # a mount the demos left behind would make rm fail loudly, not silently.
  rm -rf --one-file-system "$work" || rc=1
  exit $rc
}
trap cleanup EXIT

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
[[ -n $version ]] || fail "no version in Cargo.toml's [workspace.package]"

# --- 1. generated files -----------------------------------------------------
# The same checks run in `cargo test --workspace`; here with tools/test.sh's
# packages and features, so that its debug build is reused.
cargo test --workspace --features hpcs/rustcrypto --locked -q --lib --bins --tests \
  -- man_pages_and_completions_are_current easyconfig_crates_are_current
for page in tools/packaging/man/*.1; do
  warnings=$(MANWIDTH=80 man --warnings -E UTF-8 -l "$page" 2>&1 >/dev/null)
  [[ -z $warnings ]] || fail "$page: groff warnings: $warnings"
done
for c in tools/packaging/completions/bash/*; do
  bash -n "$c" || fail "$c is not valid bash"
done
step "generated man pages, completions and easyconfig crate list are current"

# --- 2. release build, .deb, clean Debian 12 --------------------------------
if want deb; then
  cargo build --release --locked -p hpcs -p hpcs-pack -p hpcs-job
  rel=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release
  for b in hpcs-pack hpcs-mount hpcs-job; do
    [[ $("$rel/$b" --version) == "$b $version" ]] || fail "$b --version is not '$b $version'"
  done
  # The benchmark ceilings are not in a default build: the hidden flags are refused.
  "$rel/hpcs-mount" --bench-null a b 2>/dev/null && rc=0 || rc=$?
  [[ $rc -eq 2 ]] || fail "the release hpcs-mount accepted --bench-null (exit $rc): built with bench-ceilings?"
  step "release build (default features)"

  deb_tool=$cache/cargo-deb-$CARGO_DEB_VERSION
  if [[ ! -x $deb_tool/bin/cargo-deb ]]; then
    cargo install --locked --quiet --root "$deb_tool" "cargo-deb@$CARGO_DEB_VERSION"
    step "installed cargo-deb $CARGO_DEB_VERSION (kept in $deb_tool)"
  fi
  mkdir -p "$work/deb"
  # --fast: lighter compression, the contents are the same.
  PATH=$deb_tool/bin:$PATH cargo deb -p hpcs --no-build --locked --dbgsym --fast --output "$work/deb/" >/dev/null
  deb=$(ls "$work"/deb/hpcs_*.deb)
  depends=$(dpkg-deb -f "$deb" Depends)
  for d in fuse3 age libc6; do
    grep -qE "(^|, )$d( |,|$)" <<<"$depends" || fail "the .deb does not depend on $d: $depends"
  done
  contents=$(dpkg-deb -c "$deb" | awk '{print $6}')
  for f in ./usr/bin/hpcs-pack ./usr/bin/hpcs-mount ./usr/bin/hpcs-job \
    ./usr/share/man/man1/hpcs-mount.1.gz ./usr/share/man/man1/hpcs-pack-results-decrypt.1.gz \
    ./usr/share/bash-completion/completions/hpcs-pack ./usr/share/zsh/vendor-completions/_hpcs-mount \
    ./usr/share/fish/vendor_completions.d/hpcs-job.fish ./lib/systemd/system/hpcs-mount@.service \
    ./etc/hpcs/config.toml ./usr/share/doc/hpcs/mount.md ./usr/share/doc/hpcs/copyright; do
    grep -qxF "$f" <<<"$contents" || fail "the .deb lacks $f"
  done
  grep -q spiffe <<<"$contents" && fail "the .deb ships the development SPIFFE agent"
  dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles | grep -qx /etc/hpcs/config.toml \
    || fail "/etc/hpcs/config.toml is not a conffile"
  step "built $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB; debug symbols in the -dbgsym package)"

  # A minimal Debian 12 from the mirror apt uses here, made once and cached.
  mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
    | grep -oE 'https?://[^ ]+/debian/?( |$)' | grep -v security | head -n 1 | tr -d ' ' || true)
  mirror=${HPCS_DEBIAN_MIRROR:-${mirror:-http://deb.debian.org/debian}}
  base=$cache/debian-bookworm-minbase.tar.gz
  if [[ ! -s $base ]]; then
    debootstrap --variant=minbase bookworm "$work/base" "$mirror" >"$work/debootstrap.log" 2>&1 \
      || { tail -20 "$work/debootstrap.log" >&2; fail "debootstrap from $mirror"; }
    tar -C "$work/base" -czf "$base.tmp" . && mv "$base.tmp" "$base"
    rm -rf --one-file-system "$work/base"
    step "debootstrap bookworm minbase from $mirror (kept as $base)"
  fi
  root=$work/root
  mkdir -p "$root" "$cache/apt-archives/partial"
  tar -C "$root" -xzf "$base"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  cp "$deb" "$root/tmp/hpcs.deb"
  cp tools/packaging/demo.sh "$root/usr/local/bin/hpcs-demo"

  # Everything in the chroot runs in a private mount namespace, so its mounts
  # (and a FUSE mount the demo might leave) vanish with it.
  unshare --mount --propagation private bash tools/packaging/in-root.sh "$root" "$cache/apt-archives"
  rm -rf --one-file-system "$root"
  step "installed the .deb in a clean Debian 12 chroot: age demo, man, completion, purge"
fi

# --- 3. EasyBuild and Lmod --------------------------------------------------
if want easybuild; then
  venv=$cache/easybuild-$EASYBUILD_VERSION
  # A kept virtualenv is reused only if its eb runs from where it is now: a
  # cache copied or moved from another path keeps its old path in
  # bin/activate and in pip's shebang, so nothing below uses either.
  eb_runs() { env -i HOME="$HOME" PATH="$venv/bin:$PATH" "$venv/bin/eb" --version 2>/dev/null | grep -F "EasyBuild $EASYBUILD_VERSION" >/dev/null; }
  if ! eb_runs; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "easybuild==$EASYBUILD_VERSION"
    eb_runs || fail "EasyBuild $EASYBUILD_VERSION does not run from $venv after installing it"
    step "installed EasyBuild $EASYBUILD_VERSION from PyPI (kept in $venv)"
  fi

  # EasyBuild's sources: the project's tarball (h/hpcs/), and every crate of
  # the easyconfig from cargo's download cache as c/crates.io/NAME-VERSION.tar.gz
  # (where the Cargo easyblock looks for crates; a .crate
  # file is that tarball; its SHA-256 is Cargo.lock's checksum, which the
  # easyconfig lists). Nothing is downloaded during the build.
  ec=$work/ec/hpcs-$version.eb
  mkdir -p "$work/ec" "$work/sources/h/hpcs" "$work/sources/c/crates.io"
  cp "tools/packaging/easybuild/hpcs-$version.eb" "$ec"
  tarball=$work/sources/h/hpcs/hpcs-$version.tar.gz
  tree=$(git stash create) # the working tree's tracked files, uncommitted changes included
  git archive --format=tar.gz --prefix="hpcs-$version/" -o "$tarball" "${tree:-HEAD}"
  # The easyconfig cannot name its own tarball's checksum; EasyBuild reads it
  # from checksums.json beside the easyconfig, and --enforce-checksums
  # refuses any source without one.
  printf '{"hpcs-%s.tar.gz": "%s"}\n' "$version" "$(sha256sum "$tarball" | cut -d' ' -f1)" >"$work/ec/checksums.json"
  cargo fetch --locked -q
  registry=${CARGO_HOME:-$HOME/.cargo}/registry/cache
  n=0
  while read -r name ver; do
    crate=$(find "$registry" -mindepth 2 -maxdepth 2 -name "$name-$ver.crate" -print -quit)
    [[ -n $crate ]] || fail "crate $name $ver is not in $registry after cargo fetch"
    cp "$crate" "$work/sources/c/crates.io/$name-$ver.tar.gz"
    n=$((n + 1))
  done < <(sed -n "s/^    ('\([^']*\)', '\([^']*\)'),$/\1 \2/p" "$ec")
  step "source tarball ($(du -k "$tarball" | cut -f1) KiB) and $n crates in EasyBuild's source path"

  # A fresh shell for EasyBuild, and another for the module, as a user would.
  env -i HOME="$HOME" PATH="$PATH" TERM=dumb bash -c '
    set -euo pipefail
    . "$1"
    export VIRTUAL_ENV="$2" PATH="$2/bin:$PATH" # what bin/activate does, wherever the venv was made
    eb "$3" --prefix="$4/eb" --sourcepath="$4/sources" --installpath="$4/eb-install" \
       --buildpath="$4/eb-build" --tmpdir="$4/eb-tmp" --enforce-checksums \
       --allow-use-as-root-and-accept-consequences --trace
  ' eb-shell "$lmod_init" "$venv" "$ec" "$work" >"$work/eb.log" 2>&1 && rc=0 || rc=$?
  cp "$work/eb.log" "$cache/eb.log" # kept: the last EasyBuild run's log
  ((rc == 0)) || { tail -40 "$work/eb.log" >&2; fail "eb $ec exited $rc (log: the last lines above, all of it in $cache/eb.log)"; }
  step "EasyBuild built and installed hpcs $version from source (toolchain SYSTEM, offline)"

  mkdir -p "$work/demo-module"
  cp tools/packaging/demo.sh "$work/demo.sh"
  chown nobody "$work/demo-module"
  env -i HOME=/nonexistent PATH=/usr/bin:/bin TERM=dumb \
    setpriv --reuid=nobody --regid=nogroup --clear-groups bash -c '
    set -euo pipefail
    . "$1"
    module use "$2/eb-install/modules/all"
    module load hpcs
    case $(command -v hpcs-pack) in "$2"/eb-install/software/hpcs/*) ;; *)
      echo "module: hpcs-pack is not the module'"'"'s: $(command -v hpcs-pack)" >&2; exit 1 ;;
    esac
    case $(man -w hpcs-mount) in "$2"/eb-install/software/hpcs/*) ;; *)
      echo "module: man hpcs-mount is not the module'"'"'s: $(man -w hpcs-mount)" >&2; exit 1 ;;
    esac
    hpcs-pack --version
    bash "$3" "$2/demo-module"
   ' module-shell "$lmod_init" "$work" "$work/demo.sh"
  step "module load hpcs in a fresh shell: hpcs-pack --version, man path and the age demo"
fi

echo "packaging: ok in $((SECONDS - start))s" >&2
