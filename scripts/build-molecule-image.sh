#!/usr/bin/env bash
# Build the Debian 12 image the molecule scenarios run on: systemd as PID 1, python3 for Ansible,
# and the services the scenarios need as test fixtures (RabbitMQ, InfluxDB 1.x, PostgreSQL: installed
# but not enabled, each scenario starts what it needs). No registry is reachable from CI, so the image is bootstrapped with debootstrap from the
# Debian mirror this machine's apt already uses, then imported into podman.
#
#   scripts/build-molecule-image.sh [IMAGE]      # default localhost/tpv-molecule-debian12:latest
#   FORCE=1 scripts/build-molecule-image.sh      # rebuild even when the image exists
#
# Needs root, debootstrap and podman. About one to two minutes.
set -euo pipefail

IMAGE="${1:-${TPV_MOLECULE_IMAGE:-localhost/tpv-molecule-debian12:latest}}"
SUITE="${SUITE:-bookworm}"
# Baked into the image so each scenario does not download them again. python3-venv: the roles'
# virtualenvs. The fixtures stand in for the Galaxy server's services.
PACKAGES_BASE="systemd,systemd-sysv,dbus,python3,python3-apt,python3-venv,ca-certificates,procps,iproute2"
PACKAGES_FIXTURES="rabbitmq-server influxdb postgresql"

if [[ "${FORCE:-0}" != 1 ]] && podman image exists "$IMAGE"; then
  echo "molecule image $IMAGE present: reusing it (FORCE=1 to rebuild)"
  exit 0
fi

for tool in debootstrap podman; do
  command -v "$tool" >/dev/null || { echo "$0: $tool is not installed" >&2; exit 1; }
done

# The Debian mirror (and security mirror) from this machine's apt sources, one-line or deb822.
read_mirrors() {
  python3 - "$SUITE" <<'PY'
import glob, re, sys
suite = sys.argv[1]
main, security = None, None
entries = []
for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        line = re.sub(r"\[[^]]*\]", "", line)
        parts = line.split()
        if len(parts) >= 3:
            entries.append((parts[1], [parts[2]]))
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    try:
        text = open(path).read()
    except OSError:
        continue
    for block in re.split(r"\n\s*\n", text):
        fields = {}
        for line in block.splitlines():
            if line.startswith("#") or ":" not in line or line[0].isspace():
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.split()
        if "deb" not in fields.get("types", []) or fields.get("enabled", ["yes"])[0] == "no":
            continue
        for uri in fields.get("uris", []):
            entries.append((uri, fields.get("suites", [])))
for uri, suites in entries:
    if main is None and suite in suites:
        main = uri
    if security is None and f"{suite}-security" in suites:
        security = uri
if not main:
    sys.exit(f"no apt source for suite {suite} found in /etc/apt")
print(main.rstrip("/"))
print((security or "").rstrip("/"))
PY
}
mapfile -t MIRRORS < <(read_mirrors)
MIRROR="${MIRRORS[0]}"
SECURITY="${MIRRORS[1]:-}"
echo "building $IMAGE from $MIRROR ($SUITE)"

ROOT="$(mktemp -d /var/tmp/tpv-molecule-rootfs.XXXXXX)"
chmod 0755 "$ROOT"  # apt drops privileges to _apt inside the chroot
cleanup() {
  mountpoint -q "$ROOT/proc" && umount "$ROOT/proc"
  rm -rf --one-file-system "$ROOT"
}
trap cleanup EXIT

debootstrap --variant=minbase --include="$PACKAGES_BASE" "$SUITE" "$ROOT" "$MIRROR" >/dev/null

{
  echo "deb $MIRROR $SUITE main"
  echo "deb $MIRROR $SUITE-updates main"
  [[ -n "$SECURITY" ]] && echo "deb $SECURITY $SUITE-security main"
} >"$ROOT/etc/apt/sources.list"

# The host's extra CAs (e.g. a TLS-inspecting egress proxy): pip and apt inside need them.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/"
fi
chroot "$ROOT" update-ca-certificates >/dev/null

# Install the fixtures without starting anything in the chroot (it shares the host's network).
printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
chmod 0755 "$ROOT/usr/sbin/policy-rc.d"
mount -t proc proc "$ROOT/proc"
chroot "$ROOT" apt-get update -qq
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive chroot "$ROOT" apt-get install -y -qq --no-install-recommends \
  -o Dpkg::Use-Pty=0 $PACKAGES_FIXTURES >/dev/null 2>"$ROOT/tmp/fixtures.log" \
  || { cat "$ROOT/tmp/fixtures.log" >&2; exit 1; }
umount "$ROOT/proc"
rm -f "$ROOT/usr/sbin/policy-rc.d"
# pg_createcluster picked a port free on the host's network (the host may run its own
# PostgreSQL); inside the container PostgreSQL is alone: use the default.
sed -i 's/^port = .*/port = 5432/' "$ROOT"/etc/postgresql/*/main/postgresql.conf
# shellcheck disable=SC2086
chroot "$ROOT" systemctl disable $PACKAGES_FIXTURES epmd.service epmd.socket >/dev/null 2>&1 || true
chroot "$ROOT" systemctl mask systemd-resolved.service getty@tty1.service >/dev/null 2>&1 || true
chroot "$ROOT" apt-get clean
rm -f "$ROOT/tmp/fixtures.log"

: >"$ROOT/etc/machine-id"
rm -f "$ROOT/var/lib/dbus/machine-id"

tar -C "$ROOT" -c . | podman import --change 'CMD ["/sbin/init"]' - "$IMAGE" >/dev/null
echo "molecule image $IMAGE built"
