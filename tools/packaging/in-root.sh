#!/usr/bin/env bash
# Part of tools/packaging/test.sh: in a private mount namespace (unshare), in
# the clean Debian root R, install /tmp/hpcs.deb with apt (downloads cached in
# ARCHIVES), run the age demo as an unprivileged user with the installed
# binaries only, check `man hpcs-mount`, a subcommand's page and the bash
# completion, then purge and check nothing is left.
# Usage: unshare --mount --propagation private in-root.sh R ARCHIVES
set -euo pipefail
R=$1 archives=$2
[[ -n $R && -d $R/tmp && -d $archives ]] || { echo "usage: $0 ROOT ARCHIVES" >&2; exit 2; }
mount --bind /dev "$R/dev"
mount --bind /dev/pts "$R/dev/pts"
mount -t proc proc "$R/proc"
mount -t sysfs sysfs "$R/sys"
mount --bind "$archives" "$R/var/cache/apt/archives"
# A booted Debian has /etc/mtab (systemd-tmpfiles makes it); a debootstrap
# root does not, and without it fusermount3 -u cannot find the user's mount.
ln -sfn ../proc/self/mounts "$R/etc/mtab"
run() {
  chroot "$R" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive "$@"
}
run apt-get update -qq
run apt-get install -y -qq --no-install-recommends /tmp/hpcs.deb man-db >/dev/null
echo "chroot: installed: $(run dpkg-query -W -f '${Package} ${Version} ' hpcs fuse3 age)"
run useradd --create-home --shell /bin/bash demo
# Only the installed binaries exist in the chroot; the demo runs as "demo".
chroot --userspec=demo:demo "$R" env -i PATH=/usr/bin:/bin HOME=/home/demo LANG=C.UTF-8 \
  /usr/local/bin/hpcs-demo /home/demo
page=$(run env MANPAGER=cat MANWIDTH=100 man hpcs-mount 2>&1)
for want in 'EXIT STATUS' '--cache-size' 'the mount point is already mounted on, or not empty'; do
  grep -qF -- "$want" <<<"$page" || { echo "chroot: man hpcs-mount lacks '$want'" >&2; exit 1; }
done
page=$(run env MANPAGER=cat MANWIDTH=100 man hpcs-pack-results-decrypt 2>&1)
grep -qF -- '-o, --output <DEST>' <<<"$page" || { echo "chroot: man hpcs-pack-results-decrypt is wrong" >&2; exit 1; }
spec=$(run bash -c '. /usr/share/bash-completion/completions/hpcs-pack && complete -p hpcs-pack')
[[ $spec == *' hpcs-pack' ]] || { echo "chroot: the bash completion of hpcs-pack does not register: $spec" >&2; exit 1; }
run apt-get purge -y -qq hpcs >/dev/null
for gone in /usr/bin/hpcs-mount /etc/hpcs/config.toml /usr/share/man/man1/hpcs-mount.1.gz; do
  [[ ! -e $R$gone ]] || { echo "chroot: $gone is left after apt-get purge hpcs" >&2; exit 1; }
done
echo "chroot: man pages, completion and purge ok"
