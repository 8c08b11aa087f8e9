#!/bin/sh
# Make the Debian base image locally, for a docker host that cannot pull images.
#
#   sh docker/offline/debian-base.sh [TAG]        (root; needs debootstrap and a Debian mirror)
#
# Debian's official debian:bookworm image is a `debootstrap --variant=minbase` tree too;
# this makes the same tree from the mirror (DEBIAN_MIRROR, default deb.debian.org), with
# the official image's package sources (bookworm, -updates, -security) and no package
# caches, and imports it as TAG (default debian:bookworm). An existing TAG is kept.
#
# A host behind a TLS-intercepting proxy trusts that proxy's certificate authority through
# /usr/local/share/ca-certificates/*.crt: those are added to the image too (with
# ca-certificates, pip's and Node's settings to use them), so that builds on it reach PyPI
# and npm the way the host does. Other hosts get the plain Debian tree.
set -eu
tag=${1:-debian:bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}

if docker image inspect "$tag" >/dev/null 2>&1; then
    echo "debian-base: $tag exists" >&2
    exit 0
fi
root=$(mktemp -d /tmp/debian-base.XXXXXX)
trap 'rm -rf "$root"' EXIT INT TERM
extra_ca=$(ls /usr/local/share/ca-certificates/*.crt 2>/dev/null || true)
debootstrap --variant=minbase ${extra_ca:+--include=ca-certificates} bookworm "$root" "$mirror" >&2
env_change=
if [ -n "$extra_ca" ]; then
    cp $extra_ca "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates >&2
    printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' > "$root/etc/pip.conf"
    env_change="ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt"
fi

rm -f "$root/etc/apt/sources.list"
cat > "$root/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
# as in the official image: apt keeps no downloaded packages, no translations
cat > "$root/etc/apt/apt.conf.d/docker-clean" <<'CLEAN'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";
CLEAN
echo 'Acquire::Languages "none";' > "$root/etc/apt/apt.conf.d/docker-no-languages"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/* \
       "$root"/var/log/* "$root"/dev/* "$root"/tmp/* "$root"/root/.bash_history
tar -C "$root" --numeric-owner -c . \
    | docker import --change 'CMD ["bash"]' ${env_change:+--change "$env_change"} - "$tag" >&2
echo "debian-base: made $tag" >&2
