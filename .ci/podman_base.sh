#!/usr/bin/env bash
# Build a local stand-in for the Dockerfile's base image (python:3.13-slim)
# when no image registry can be reached.
#
#   bash .ci/podman_base.sh [--deps-only] [--force] [IMAGE]
#
# IMAGE defaults to the Dockerfile's FROM image, normalised to
# docker.io/library/python:3.13-slim.  The stand-in is a debootstrap of the
# Debian release the official image is built on (python:3.13-slim is Debian
# trixie, whose python3 is 3.13) with python3, python3-venv and
# ca-certificates, and made to look like the official image where the
# Dockerfile relies on it: `python` and `python3` on PATH, `python -m venv`
# working.  Host-specific bits are added on top so that pip inside a build
# reaches PyPI the way the host does:
#   * the host's locally added CA certificates (/usr/local/share/ca-certificates
#     and any CA bundle that the host's pip / requests / OpenSSL is pointed at
#     which is not the distribution bundle) are trusted;
#   * the host pip's network index settings (index-url, extra-index-url with
#     http(s) URLs only, trusted-host, proxy) go into the stand-in's
#     /etc/pip.conf, with cert = the stand-in's system bundle.
#
# Idempotent: does nothing when IMAGE already exists (unless --force).
# Installs what it needs itself (podman, runc, debootstrap, ...) with apt-get
# when run as root, because CI starts on a fresh machine.
# The finished debootstrap (before the host-specific bits) is cached as a
# tarball under $MONGO_SESSIONS_CI_CACHE (default /var/cache/mongo-sessions-ci)
# so a second build on the same machine skips debootstrap.
#
# Environment:
#   ENGINE              podman (default) or docker: where the image is imported
#   STANDIN_SUITE       Debian suite to debootstrap (default: derived from IMAGE)
#   DEBIAN_MIRROR       default: the host's first deb.debian.org-style mirror,
#                       else http://deb.debian.org/debian
#   MONGO_SESSIONS_CI_CACHE  cache directory
set -euo pipefail

log() { printf '[podman_base] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"

deps_only=0
force=0
image=""
for arg in "$@"; do
    case "$arg" in
        --deps-only) deps_only=1 ;;
        --force) force=1 ;;
        -h|--help) sed -n '2,33p' "${BASH_SOURCE[0]}"; exit 0 ;;
        -*) die "unknown option $arg" ;;
        *) image="$arg" ;;
    esac
done

ENGINE="${ENGINE:-podman}"
cache_dir="${MONGO_SESSIONS_CI_CACHE:-/var/cache/mongo-sessions-ci}"

# --- the FROM image ---------------------------------------------------------
normalise_image() {
    # python:3.13-slim -> docker.io/library/python:3.13-slim
    local ref="$1" first
    first="${ref%%/*}"
    if [[ "$ref" != */* ]]; then
        ref="docker.io/library/$ref"
    elif [[ "$first" != *.* && "$first" != *:* && "$first" != localhost ]]; then
        ref="docker.io/$ref"
    fi
    [[ "${ref##*/}" == *:* || "$ref" == *@* ]] || ref="$ref:latest"
    printf '%s\n' "$ref"
}

if [[ -z "$image" ]]; then
    image="$(awk 'toupper($1) == "FROM" { for (i = 2; i <= NF; i++) if ($i !~ /^--/) { print $i; exit } }' "$repo/Dockerfile")"
    [[ -n "$image" ]] || die "no FROM line in $repo/Dockerfile"
fi
image="$(normalise_image "$image")"

# --- tools -------------------------------------------------------------------
apt_install() {
    [[ "$(id -u)" == 0 ]] || die "missing $*; run as root or install them"
    command -v apt-get >/dev/null || die "missing $* and no apt-get to install them"
    log "installing $*"
    export DEBIAN_FRONTEND=noninteractive
    timeout 300 apt-get update -qq || die "apt-get update failed"
    timeout 600 apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
        || die "apt-get install $* failed"
}

need=()
if [[ "$ENGINE" == podman ]]; then
    command -v podman >/dev/null || need+=(podman)
    command -v runc >/dev/null || need+=(runc)
    # rootful podman networking (bridge + port publishing) and DNS in builds
    [[ -x /usr/lib/podman/netavark || -x /usr/libexec/podman/netavark ]] || need+=(netavark)
    [[ -x /usr/lib/podman/aardvark-dns || -x /usr/libexec/podman/aardvark-dns ]] || need+=(aardvark-dns)
    command -v iptables >/dev/null || need+=(iptables)
fi
if (( ! deps_only )); then
    command -v debootstrap >/dev/null || need+=(debootstrap)
    [[ -s /usr/share/keyrings/debian-archive-keyring.gpg ]] || need+=(debian-archive-keyring)
    [[ -s /etc/ssl/certs/ca-certificates.crt ]] || need+=(ca-certificates)
fi
command -v flock >/dev/null || need+=(util-linux)
(( ${#need[@]} == 0 )) || apt_install "${need[@]}"
(( deps_only )) && { log "tools present"; exit 0; }

engine=("$ENGINE")
if [[ "$ENGINE" == podman ]]; then
    # crun refuses the cgroup layout of these machines; runc works.
    engine+=(--runtime runc)
    [[ -d /run/systemd/system ]] || engine+=(--cgroup-manager cgroupfs --events-backend file)
fi

image_exists() {
    if [[ "$ENGINE" == podman ]]; then
        timeout 60 "${engine[@]}" image exists "$1"
    else
        timeout 60 "${engine[@]}" image inspect "$1" >/dev/null 2>&1
    fi
}

mkdir -p "$cache_dir"
exec 9>"$cache_dir/podman_base.lock"
timeout 1800 flock 9 || die "could not lock $cache_dir/podman_base.lock"

old_id=""
if image_exists "$image"; then
    if (( ! force )); then
        log "$image already exists; nothing to do"
        exit 0
    fi
    old_id="$(timeout 60 "${engine[@]}" image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)"
fi

# --- which Debian ------------------------------------------------------------
tag="${image##*/}"; tag="${tag#*:}"           # 3.13-slim, 3.13-slim-trixie, ...
repo_name="${image##*/}"; repo_name="${repo_name%%:*}"
[[ "$repo_name" == python ]] || log "WARNING: $image is not a python image; building a Debian+python3 stand-in anyway"
pyver="$(grep -oE '^[0-9]+\.[0-9]+' <<<"$tag" || true)"
suite="${STANDIN_SUITE:-}"
if [[ -z "$suite" ]]; then
    for s in bookworm trixie forky; do
        [[ "$tag" == *"-$s" || "$tag" == *"-$s-"* ]] && suite="$s"
    done
fi
if [[ -z "$suite" ]]; then
    # The Debian release whose python3 is that version (the official
    # python:X.Y-slim images are built on the current Debian stable).
    case "$pyver" in
        3.13) suite=trixie ;;
        3.11) suite=bookworm ;;
        *) die "no Debian release ships python $pyver as python3; set STANDIN_SUITE" ;;
    esac
fi

mirror="${DEBIAN_MIRROR:-}"
if [[ -z "$mirror" ]]; then
    mirror="$(grep -rhoE '^(URIs:|deb)[[:space:]]+https?://[^[:space:]]+/debian/?([[:space:]]|$)' \
        /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
        | awk '{print $2}' | head -n1 || true)"
    mirror="${mirror:-http://deb.debian.org/debian}"
fi

packages="python3,python3-venv,ca-certificates"
cache_tar="$cache_dir/standin-$suite-$(tr ',' '-' <<<"$packages").tar"

work="$(mktemp -d /var/tmp/mongo-sessions-base.XXXXXX)"
cleanup() { rm -rf --one-file-system "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
rootfs="$work/rootfs"
mkdir -p "$rootfs"

t0=$SECONDS
if [[ -s "$cache_tar" ]]; then
    log "unpacking cached $cache_tar"
    timeout 300 tar -C "$rootfs" --numeric-owner -xpf "$cache_tar"
else
    log "debootstrap $suite from $mirror ($packages)"
    timeout 1200 debootstrap --variant=minbase --include="$packages" \
        "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
        || { tail -n 30 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
    # Trim what a slim image does not carry.
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
        "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/* "$rootfs"/usr/share/doc/* \
        "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*
    # Official image: `python` (and python3) on PATH.
    ln -sf /usr/bin/python3 "$rootfs/usr/local/bin/python"
    timeout 300 tar -C "$rootfs" --numeric-owner -cpf "$cache_tar.tmp" . && mv "$cache_tar.tmp" "$cache_tar"
    log "cached $cache_tar"
fi

have="$(chroot "$rootfs" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [[ -n "$pyver" && "$have" != "$pyver" ]]; then
    die "$suite has python $have, but $image is python $pyver; set STANDIN_SUITE"
fi

# --- host-specific trust and pip settings -----------------------------------
host_pip=()
for py in python3 python; do
    if command -v "$py" >/dev/null && "$py" -m pip --version >/dev/null 2>&1; then
        host_pip=("$py" -m pip); break
    fi
done
pip_conf_lines=""
if (( ${#host_pip[@]} )); then
    pip_conf_lines="$(PIP_DISABLE_PIP_VERSION_CHECK=1 timeout 60 "${host_pip[@]}" config list 2>/dev/null || true)"
fi
# value of a pip setting: env (:env:) wins over files, later files win
pip_setting() {
    local key="$1" val=""
    val="$(sed -nE "s/^[^.]*\.${key}='(.*)'$/\1/p" <<<"$pip_conf_lines" | tail -n1)"
    local envval
    envval="$(sed -nE "s/^:env:\.${key}='(.*)'$/\1/p" <<<"$pip_conf_lines" | tail -n1)"
    [[ -n "$envval" ]] && val="$envval"
    printf '%s' "$val"
}
http_only() { tr ' ' '\n' | grep -E '^https?://' | paste -sd' ' - || true; }

index_url="$(pip_setting index-url | http_only)"
extra_index="$(pip_setting extra-index-url | http_only)"
trusted_host="$(pip_setting trusted-host)"
proxy="$(pip_setting proxy)"
[[ -n "$index_url" ]] || index_url="$(printf '%s' "${PIP_INDEX_URL:-}" | http_only)"
[[ -n "$extra_index" ]] || extra_index="$(printf '%s' "${PIP_EXTRA_INDEX_URL:-}" | http_only)"

mkdir -p "$rootfs/usr/local/share/ca-certificates"
n_ca=0
if compgen -G "/usr/local/share/ca-certificates/*" >/dev/null; then
    cp -rL /usr/local/share/ca-certificates/. "$rootfs/usr/local/share/ca-certificates/"
    n_ca=$(find /usr/local/share/ca-certificates -name '*.crt' | wc -l)
fi
# CA bundles the host's pip/requests/OpenSSL are pointed at, unless that is
# just the distribution bundle (already covered by ca-certificates + the
# locally added certificates above).
i=0
for bundle in "$(pip_setting cert)" "${PIP_CERT:-}" "${REQUESTS_CA_BUNDLE:-}" "${SSL_CERT_FILE:-}" "${CURL_CA_BUNDLE:-}"; do
    [[ -n "$bundle" && -f "$bundle" ]] || continue
    real="$(readlink -f "$bundle")"
    case "$real" in
        /etc/ssl/certs/ca-certificates.crt|/usr/local/share/ca-certificates/*) continue ;;
    esac
    i=$((i + 1))
    cp "$real" "$rootfs/usr/local/share/ca-certificates/host-bundle-$i.crt"
    n_ca=$((n_ca + 1))
done
chroot "$rootfs" update-ca-certificates >/dev/null 2>&1 || die "update-ca-certificates failed in the stand-in"
log "trusted $n_ca host CA file(s) in the stand-in"

{
    echo "# Written by .ci/podman_base.sh: pip in this stand-in reaches the package"
    echo "# index the way the host that built it does."
    echo "[global]"
    echo "cert = /etc/ssl/certs/ca-certificates.crt"
    [[ -n "$index_url" ]] && echo "index-url = $index_url"
    [[ -n "$extra_index" ]] && echo "extra-index-url = $extra_index"
    [[ -n "$trusted_host" ]] && echo "trusted-host = $trusted_host"
    [[ -n "$proxy" ]] && echo "proxy = $proxy"
    true
} >"$rootfs/etc/pip.conf"
log "stand-in /etc/pip.conf: $(grep -v '^#' "$rootfs/etc/pip.conf" | tr '\n' ' ')"

# Smoke test in a chroot: the Dockerfile relies on these.
chroot "$rootfs" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin sh -c \
    'python --version && python3 --version && python -m venv /tmp/venv-check && /tmp/venv-check/bin/pip --version && rm -rf /tmp/venv-check' \
    >&2 || die "python -m venv does not work in the stand-in"
rm -rf "$rootfs/root/.cache" "$rootfs/tmp/"*

# --- import ------------------------------------------------------------------
changes=(
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin'
    --change 'ENV LANG=C.UTF-8'
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt'
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt'
    --change 'CMD ["python3"]'
)
log "importing as $image"
timeout 600 tar -C "$rootfs" --numeric-owner -cf - . \
    | timeout 600 "${engine[@]}" import "${changes[@]}" \
        --message "stand-in for $image: debootstrap $suite + $packages (.ci/podman_base.sh)" \
        - "$image" >/dev/null \
    || die "$ENGINE import failed"
if [[ -n "$old_id" ]]; then  # --force: drop the image this one replaced, unless in use
    timeout 120 "${engine[@]}" rmi "$old_id" >/dev/null 2>&1 || true
fi
log "built stand-in $image (python $have, Debian $suite) in $((SECONDS - t0)) s"
