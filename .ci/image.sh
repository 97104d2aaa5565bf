#!/usr/bin/env bash
# The container image, built and run for real: deploy/container/Dockerfile built with buildah,
# then its entry point run as the image's non-root user on a read-only root filesystem
# (`icsync --help`, `icsync demo`).
#
# No container registry is reachable from CI, so the base image is made here: Debian bookworm
# with Python 3.11, by debootstrap from the Debian mirror this machine's apt is configured with,
# imported as a local image and passed by digest as the Dockerfile's PYTHON_IMAGE. The Python
# packages come from PyPI, as uv.lock says.
#
#   bash .ci/image.sh                 the whole check (as root; CI runs it from .ci/run)
#   bash .ci/image.sh mirror [DIR]    print the Debian mirror configured in DIR (default /etc/apt)
#
# Exit status: 0 when the image was built and ran as expected, and also when this machine refuses
# a step the check needs (no root, no Debian mirror, a package that cannot be installed,
# debootstrap or buildah denied by the sandbox): then "image: REFUSED at step ..." says which step
# and why. 1 for a defect of the project's own: the build fails, the image's configuration is
# wrong, or the entry point fails as the non-root user on the read-only root.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SUITE=bookworm                     # Debian 12: its python3 is 3.11, the version the image runs
BASE_PACKAGES=python3,python3-venv,ca-certificates
BASE_TAG=localhost/icsync-ci-base:bookworm-py3.11
IMAGE_TAG=localhost/icsync:ci

# --- the Debian mirror, as this machine's apt sources name it ---------------------------------

# Print the first http(s) URI serving "$2 main" in the apt configuration under "$1": deb822
# files (sources.list.d/*.sources) first, then the one-line format (sources.list, *.list).
debian_mirror() {
  local dir=$1 suite=$2 f
  for f in "$dir"/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v suite="$suite" '
      BEGIN { RS = ""; FS = "\n" }
      {
        types = uris = suites = comps = ""; enabled = "yes"
        for (i = 1; i <= NF; i++) {
          line = $i
          if (line ~ /^[ \t]*#/) continue
          key = tolower(line); sub(/:.*/, "", key)
          val = line; sub(/^[^:]*:[ \t]*/, "", val)
          if (key == "types") types = val
          else if (key == "uris") uris = val
          else if (key == "suites") suites = val
          else if (key == "components") comps = val
          else if (key == "enabled") enabled = tolower(val)
        }
        if (enabled == "no" || (" " types " ") !~ / deb /) next
        if ((" " suites " ") !~ (" " suite " ") || (" " comps " ") !~ / main /) next
        n = split(uris, u, /[ \t]+/)
        for (j = 1; j <= n; j++) if (u[j] ~ /^https?:\/\//) { print u[j]; exit }
      }' "$f"
  done
  for f in "$dir"/sources.list "$dir"/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk -v suite="$suite" '
      $1 != "deb" { next }
      {
        i = 2
        if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
        if ($i !~ /^https?:\/\// || $(i + 1) != suite) next
        for (j = i + 2; j <= NF; j++) if ($j == "main") { print $i; exit }
      }' "$f"
  done
}

if [ "${1:-}" = mirror ]; then
  debian_mirror "${2:-/etc/apt}" "$SUITE" | head -n 1
  exit 0
fi

# --- reporting ---------------------------------------------------------------------------------

CURRENT=start
STARTED=$SECONDS
step() {
  CURRENT=$1
  printf '\n--- image: %s (%d s so far)\n' "$1" "$((SECONDS - STARTED))"
}
refused() {
  printf 'image: REFUSED at step "%s": %s\n' "$CURRENT" "$1"
  printf 'image: this machine does not allow the image check; it was skipped (not a defect).\n'
  exit 0
}
defect() {
  printf 'image: FAILED at step "%s": %s\n' "$CURRENT" "$1" >&2
  exit 1
}
tail_of() { tail -n "${2:-25}" "$1" | sed 's/^/    /'; }

# --- the run on a read-only root (called through unshare, in a private mount namespace) --------

# _ro_run MERGED RO_DIR USER WORKDIR "VOLUMES" ENV... -- COMMAND...
if [ "${1:-}" = _ro_run ]; then
  merged=$2 ro=$3 user=$4 workdir=$5 volumes=$6
  shift 6
  envs=()
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  mount --bind "$merged" "$ro"
  mount -o remount,bind,ro "$ro"
  mount -t proc proc "$ro/proc"
  mount -t tmpfs -o mode=0755,size=1m tmpfs "$ro/dev"
  for d in null zero full random urandom; do
    touch "$ro/dev/$d" && mount --bind "/dev/$d" "$ro/dev/$d"
  done
  mount -t tmpfs -o mode=1777,size=512m tmpfs "$ro/tmp"
  for v in $volumes; do
    mount -t tmpfs -o "mode=0700,uid=${user%%:*},gid=${user##*:},size=512m" tmpfs "$ro$v"
  done
  exec chroot --userspec="$user" "$ro" /usr/bin/env -i -C "$workdir" "${envs[@]}" "$@"
fi

# --- the check ---------------------------------------------------------------------------------

step "root"
[ "$(id -u)" = 0 ] || refused "apt-get, debootstrap and buildah's mounts need root; this is uid $(id -u)"

step "Debian mirror from /etc/apt"
MIRROR="$(debian_mirror /etc/apt "$SUITE" | head -n 1)"
if [ -z "$MIRROR" ]; then
  codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-unknown}")"
  MIRROR="$(debian_mirror /etc/apt "$codename" | head -n 1)"
fi
[ -n "$MIRROR" ] || refused "no http(s) Debian mirror serving '$SUITE main' in /etc/apt/sources.list*"
echo "mirror: $MIRROR"

step "install buildah and debootstrap (apt-get)"
if ! command -v buildah >/dev/null || ! command -v debootstrap >/dev/null; then
  apt_log="$(mktemp)"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
         --no-install-recommends buildah debootstrap; } >"$apt_log" 2>&1; then
    tail_of "$apt_log"
    refused "apt-get could not install buildah and debootstrap (see above)"
  fi
  rm -f "$apt_log"
fi
buildah --version
echo "debootstrap $(dpkg-query -W -f '${Version}' debootstrap)"

WORK="$(mktemp -d /var/tmp/icsync-image.XXXXXX)"
B=(buildah --storage-driver vfs --root "$WORK/storage" --runroot "$WORK/run")
cleanup() {
  "${B[@]}" rm --all >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
free_kb="$(df -Pk "$WORK" | awk 'NR == 2 { print $4 }')"
[ "$free_kb" -ge $((4 * 1024 * 1024)) ] || refused "less than 4 GiB free under /var/tmp ($((free_kb / 1024)) MiB)"

step "Debian $SUITE with Python 3.11 (debootstrap)"
if ! debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$WORK/rootfs" "$MIRROR" \
     >"$WORK/debootstrap.log" 2>&1; then
  tail_of "$WORK/debootstrap.log"
  refused "debootstrap of $SUITE from $MIRROR failed (see above)"
fi
chroot "$WORK/rootfs" python3.11 -c 'import ensurepip, sys, venv; print(sys.version)' \
  || defect "the debootstrapped base has no working python3.11 with venv"
# The base trusts what this machine trusts (its TLS to PyPI may pass through a local CA); the
# image itself never carries this base: it is made for CI and dropped at the end.
install -m 0644 /etc/ssl/certs/ca-certificates.crt "$WORK/rootfs/etc/ssl/certs/ca-certificates.crt"
rm -rf "$WORK"/rootfs/var/lib/apt/lists/* "$WORK"/rootfs/var/cache/apt/*.bin \
  "$WORK"/rootfs/var/cache/apt/archives/*.deb

step "import the base as a local image"
if ! ctr="$("${B[@]}" from scratch 2>"$WORK/buildah.err")" \
   || ! mnt="$("${B[@]}" mount "$ctr" 2>>"$WORK/buildah.err")"; then
  tail_of "$WORK/buildah.err"
  refused "buildah cannot create or mount a container in vfs storage here (see above)"
fi
cp -a "$WORK/rootfs/." "$mnt/"
"${B[@]}" umount "$ctr" >/dev/null
# The build's RUN steps need the same: a command in a chroot of a buildah container.
if ! "${B[@]}" run --isolation chroot "$ctr" -- python3.11 -c 'print("chroot: ok")' \
     >"$WORK/buildah.err" 2>&1; then
  tail_of "$WORK/buildah.err"
  refused "buildah cannot run a command in a container with chroot isolation here (see above)"
fi
cat "$WORK/buildah.err"
"${B[@]}" config --env LANG=C.UTF-8 \
  --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd /bin/bash "$ctr"
"${B[@]}" commit --quiet --rm "$ctr" "$BASE_TAG" >/dev/null
rm -rf "$WORK/rootfs"
digest="$("${B[@]}" images --digests --format '{{.Digest}}' "$BASE_TAG")"
BASE_REF="${BASE_TAG%%:*}@$digest"
echo "base: $BASE_REF"

step "build deploy/container/Dockerfile (buildah, vfs, chroot isolation)"
build_started=$SECONDS
if ! "${B[@]}" build --isolation chroot --pull=never --format docker \
     --build-arg "PYTHON_IMAGE=$BASE_REF" -f "$ROOT/deploy/container/Dockerfile" \
     -t "$IMAGE_TAG" "$ROOT" >"$WORK/build.log" 2>&1; then
  tail_of "$WORK/build.log" 40
  defect "the Dockerfile did not build (see above)"
fi
grep -E '^\[[0-9]/[0-9]\] STEP|^Using CPython|^Installed|^uv ' "$WORK/build.log" | sed 's/^/    /'
echo "built in $((SECONDS - build_started)) s"

step "image configuration"
ctr="$("${B[@]}" from --pull=never "$IMAGE_TAG")"
inspect() { "${B[@]}" inspect --format "$1" "$ctr"; }
user="$(inspect '{{.OCIv1.Config.User}}')"
workdir="$(inspect '{{.OCIv1.Config.WorkingDir}}')"
entrypoint="$(inspect '{{range .OCIv1.Config.Entrypoint}}{{.}} {{end}}')"
volumes="$(inspect '{{range $k, $v := .OCIv1.Config.Volumes}}{{$k}} {{end}}')"
mapfile -t envs < <(inspect '{{range .OCIv1.Config.Env}}{{println .}}{{end}}' | sed '/^$/d')
echo "user=$user workdir=$workdir entrypoint=$entrypoint volumes=$volumes"
[[ "$user" =~ ^[1-9][0-9]*:[1-9][0-9]*$ ]] || defect "the image's user '$user' is not a numeric non-root uid:gid"
[ "$entrypoint" = "icsync " ] || defect "the entry point is '$entrypoint', not icsync"
[ -n "$volumes" ] || defect "the image declares no state volume"
echo "image size: $("${B[@]}" images --format '{{.Size}}' "$IMAGE_TAG")"

step "run as $user on a read-only root filesystem"
unshare --mount --propagation private true 2>"$WORK/unshare.err" \
  || refused "no private mount namespace for a read-only root: $(head -n 1 "$WORK/unshare.err")"
mkdir -p "$WORK/ro"
ro_run() {
  unshare --mount --propagation private bash "$0" _ro_run "$("${B[@]}" mount "$ctr")" \
    "$WORK/ro" "$user" "$workdir" "$volumes" "${envs[@]}" -- "$@"
}
probe="$(ro_run sh -c 'id -u; touch /var/tmp/.icsync-probe 2>&1; echo "rc=$?"' || true)"
echo "$probe" | sed 's/^/    /'
[ "$(echo "$probe" | head -n 1)" = "${user%%:*}" ] || defect "the command did not run as ${user%%:*}"
echo "$probe" | grep -q 'Read-only file system' || defect "the root filesystem was writable"
ro_run icsync --help >"$WORK/help.out" 2>&1 || { tail_of "$WORK/help.out"; defect "icsync --help failed"; }
head -n 3 "$WORK/help.out" | sed 's/^/    /'
demo_started=$SECONDS
ro_run icsync demo >"$WORK/demo.out" 2>&1 || { tail_of "$WORK/demo.out" 40; defect "icsync demo failed"; }
tail -n 1 "$WORK/demo.out" | sed 's/^/    /'
echo "demo ran in $((SECONDS - demo_started)) s"

printf '\nimage: built and ran as %s on a read-only root in %d s\n' "$user" "$((SECONDS - STARTED))"
