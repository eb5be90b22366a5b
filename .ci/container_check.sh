#!/usr/bin/env bash
# Build the demo image from the Dockerfile, run it, and check over HTTP on
# loopback that a session persists across requests with its cookie; then stop
# and remove what this script made (the container, its anonymous volume and
# the image tag).
#
#   bash .ci/container_check.sh
#
# Engine: docker where an engine answers (`docker info` succeeds), podman
# otherwise (installed with apt-get by .ci/podman_base.sh when missing and
# running as root).  The Dockerfile's FROM image is used as it is when
# present, pulled when it can be, and only when it is absent AND cannot be
# pulled (no registry reachable) is a local stand-in built by
# .ci/podman_base.sh.
#
# Checks, in order:
#   1. GET /health/ answers 200 (the first response; its delay is measured);
#   2. GET /api/counter/ (the JSON API) gives {"visits": 1} and sets
#      the sessionid cookie; again with the cookie gives {"visits": 2};
#      without a cookie, a fresh session starts at 1 again;
#   3. the image's HEALTHCHECK passes and the server runs as a non-root user;
#   4. after a restart of the container (SIGTERM, then start) the same cookie
#      gives {"visits": 3}: the session lives in the embedded server's data
#      in the /data volume;
#   5. the container stops on SIGTERM within its grace period.
#
# Environment: CONTAINER_ENGINE (docker|podman) forces an engine;
# CONTAINER_CHECK_PORT picks the loopback port (default: a free one).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
cd "$repo"

log() { printf '[container_check] %s\n' "$*"; }
die() { log "FAIL: $*"; exit 1; }
now() { printf '%s' "${EPOCHREALTIME:-$(date +%s.%N)}"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }  # seconds since $1

PY="$(command -v python3 || command -v python || true)"
[[ -n "$PY" ]] || die "python3 is needed on the host (JSON parsing, free port)"
command -v curl >/dev/null || die "curl is needed on the host"
[[ -f Dockerfile ]] || die "no Dockerfile in $repo"

# --- engine ------------------------------------------------------------------
ENGINE="${CONTAINER_ENGINE:-}"
if [[ -z "$ENGINE" ]]; then
    if command -v docker >/dev/null && timeout 30 docker info >/dev/null 2>&1; then
        ENGINE=docker
    else
        ENGINE=podman
    fi
fi
case "$ENGINE" in
    docker) engine=(docker) ;;
    podman)
        # podman, runc and rootful networking; apt-get installs what is missing.
        ENGINE=podman bash "$here/podman_base.sh" --deps-only
        # crun refuses the cgroup layout of these machines: use runc.
        engine=(podman --runtime runc)
        [[ -d /run/systemd/system ]] || engine+=(--cgroup-manager cgroupfs --events-backend file)
        ;;
    *) die "CONTAINER_ENGINE must be docker or podman, not $ENGINE" ;;
esac
export ENGINE  # for .ci/podman_base.sh
eng() { timeout "$1" "${engine[@]}" "${@:2}"; }
log "engine: ${engine[*]} ($(eng 30 --version 2>/dev/null | head -n1))"

# Resource limits: the engine must not ask for more than the host allows.
limit_args=()
if [[ "$ENGINE" == podman ]]; then
    # podman's defaults (1048576) exceed these hosts' hard limits and runc
    # then fails with "error setting rlimits ... operation not permitted".
    # nproc: conmon, which starts runc, runs with nproc 32768 here.
    hn="$(ulimit -Hn)"; hu="$(ulimit -Hu)"
    [[ "$hn" == unlimited ]] && hn=1048576
    [[ "$hu" == unlimited || "$hu" -gt 32768 ]] && hu=32768
    limit_args=(--ulimit "nofile=$hn:$hn" --ulimit "nproc=$hu:$hu")
fi

# --- bookkeeping for cleanup -----------------------------------------------------
run_id="$$-$RANDOM"
tag="localhost/mongo-sessions-demo:ci-$run_id"
name="mongo-sessions-ci-$run_id"
workdir="$(mktemp -d)"
jar="$workdir/cookies.txt"
built=0
started=0
bg_pid=""

# Long steps run in their own process group, waited for in the background so
# that INT/TERM reach the trap at once and cleanup can stop the whole group.
# Their output goes to $bg_log when set (a redirection around the function
# would swallow what the trap prints).
bg_log=""
run_bg() {
    if [[ -n "$bg_log" ]]; then
        setsid "$@" >>"$bg_log" 2>&1 &
    else
        setsid "$@" &
    fi
    bg_pid=$!
    local rc=0
    wait "$bg_pid" || rc=$?
    bg_pid=""
    return "$rc"
}

buildah_runc_ids() {  # the runc containers of podman build's RUN steps
    command -v runc >/dev/null || return 0
    timeout 30 runc list -q 2>/dev/null | grep '^buildah-' || true
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    (( rc == 130 || rc == 143 )) && log "interrupted: cleaning up"
    if [[ -n "$bg_pid" ]]; then  # interrupted during a long step: stop it first
        kill -TERM -- "-$bg_pid" 2>/dev/null
        wait "$bg_pid" 2>/dev/null
    fi
    if (( started )); then
        if (( rc != 0 )); then
            log "container logs (last 60 lines):"
            eng 30 logs --tail 60 "$name" 2>&1 | sed 's/^/    /'
        fi
        if eng 60 rm -f -v "$name" >/dev/null 2>&1; then
            log "removed container $name"
        else
            log "WARNING: could not remove container $name"
        fi
    fi
    if (( built )) && eng 60 image inspect "$tag" >/dev/null 2>&1; then
        if eng 120 rmi "$tag" >/dev/null 2>&1; then
            log "removed image tag $tag"
        else
            log "WARNING: could not remove image $tag"
        fi
    fi
    if (( built && rc != 0 )) && [[ "$ENGINE" == podman ]]; then
        # A build stopped half-way leaves buildah working containers behind,
        # and the runc container of a RUN step that was going on.
        local cid bundle
        for cid in $(eng 60 ps -a -q --no-trunc --external 2>/dev/null); do
            grep -qxF "$cid" "$workdir/containers-before" 2>/dev/null && continue
            eng 60 rm -f "$cid" >/dev/null 2>&1 && log "removed build container ${cid:0:12}"
        done
        for cid in $(buildah_runc_ids); do
            grep -qxF "$cid" "$workdir/runc-before" 2>/dev/null && continue
            bundle="$(timeout 30 runc state "$cid" 2>/dev/null \
                | sed -n 's/.*"bundle": *"\([^"]*\)".*/\1/p')"
            timeout 60 runc delete --force "$cid" >/dev/null 2>&1 && log "removed RUN container $cid"
            case "$bundle" in /var/tmp/buildah[0-9]*) rm -rf --one-file-system "$bundle" ;; esac
        done
    fi
    if (( built )); then
        # Untagged layers that an interrupted or failed build left behind (an
        # image still in use by something else is refused, and kept).
        local id n=0 pass removed
        for pass in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
            removed=0  # removing a top layer leaves its parent dangling: repeat
            for id in $(eng 60 images -a -q --no-trunc --filter dangling=true 2>/dev/null); do
                grep -qxF "$id" "$workdir/images-before" 2>/dev/null && continue
                eng 60 rmi "$id" >/dev/null 2>&1 && removed=$((removed + 1))
            done
            n=$((n + removed))
            (( removed > 0 )) || break
        done
        : "$pass"
        (( n == 0 )) || log "removed $n untagged layer image(s) this build left"
    fi
    rm -rf "$workdir"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- base image ----------------------------------------------------------------
from_image="$(awk 'toupper($1) == "FROM" { for (i = 2; i <= NF; i++) if ($i !~ /^--/) { print $i; exit } }' Dockerfile)"
[[ -n "$from_image" ]] || die "no FROM line in the Dockerfile"
[[ "$from_image" == */* ]] || from_image="docker.io/library/$from_image"
base_note=""
t0=$(now)
if eng 60 image inspect "$from_image" >/dev/null 2>&1; then
    base_note="present, not built"
elif log "pulling $from_image" && run_bg timeout 300 "${engine[@]}" pull "$from_image"; then
    base_note="pulled in $(since "$t0") s"
else
    log "$from_image is absent and cannot be pulled: building a local stand-in"
    run_bg timeout 2400 bash "$here/podman_base.sh" "$from_image" \
        || die "could not build a stand-in for $from_image"
    base_note="stand-in built in $(since "$t0") s"
fi
log "base image $from_image: $base_note"

# --- build ---------------------------------------------------------------------
build_args=(build -f Dockerfile -t "$tag")
# OCI image format drops HEALTHCHECK: keep the Docker format under podman.
[[ "$ENGINE" == podman ]] && build_args+=(--format docker "${limit_args[@]}")
log "building $tag"
t0=$(now)
eng 60 images -a -q --no-trunc >"$workdir/images-before" 2>/dev/null || true
if [[ "$ENGINE" == podman ]]; then
    eng 60 ps -a -q --no-trunc --external >"$workdir/containers-before" 2>/dev/null || true
    buildah_runc_ids >"$workdir/runc-before"
fi
built=1   # a failed build may still leave the tag behind: always try to remove it
bg_log="$workdir/build.log"
if ! run_bg timeout 1500 "${engine[@]}" "${build_args[@]}" .; then
    tail -n 60 "$workdir/build.log" | sed 's/^/    /'
    die "image build failed (see above)"
fi
bg_log=""
tail -n 12 "$workdir/build.log" | sed 's/^/    /'
build_s="$(since "$t0")"
log "image built in $build_s s"

user="$(eng 30 image inspect --format '{{.Config.User}}' "$tag")"
[[ -n "$user" && "$user" != root && "$user" != 0 && "$user" != 0:* ]] \
    || die "the image runs as '${user:-root}', not as a non-root user"
hc="$(eng 30 image inspect --format '{{if .Config.Healthcheck}}{{.Config.Healthcheck.Test}}{{end}}' "$tag")"
[[ -n "$hc" ]] || die "the image has no HEALTHCHECK"
log "image user: $user; healthcheck: $hc"

# --- run -----------------------------------------------------------------------
port="${CONTAINER_CHECK_PORT:-$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
base="http://127.0.0.1:$port"
secret="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"

running() { [[ "$(eng 30 inspect --format '{{.State.Running}}' "$name" 2>/dev/null)" == true ]]; }

wait_health() {  # $1: seconds; prints the seconds it took since $2
    local deadline=$((SECONDS + $1)) code
    while (( SECONDS < deadline )); do
        code="$(curl -s -o /dev/null -w '%{http_code}' -m 5 "$base/health/" || true)"
        [[ "$code" == 200 ]] && { since "$2"; return 0; }
        running || { log "the container stopped while starting"; return 1; }
        sleep 0.2
    done
    log "no 200 from /health/ within $1 s (last status: ${code:-none})"
    return 1
}

visits() {  # $1: curl cookie options ("jar" or "none"); prints the visit count
    local body
    if [[ "$1" == jar ]]; then
        body="$(curl -fsS -m 15 -c "$jar" -b "$jar" "$base/api/counter/")"
    else
        body="$(curl -fsS -m 15 "$base/api/counter/")"
    fi || return 1
    log "GET /api/counter/ ($1 cookie) -> $body" >&2
    "$PY" -c 'import json, sys; print(json.loads(sys.argv[1])["visits"])' "$body"
}

log "starting $name on 127.0.0.1:$port"
t0=$(now)
started=1
eng 120 run -d --name "$name" -p "127.0.0.1:$port:8000" \
    -e DJANGO_SECRET_KEY="$secret" "${limit_args[@]}" "$tag" >/dev/null \
    || die "could not start the container"
first_s="$(wait_health 240 "$t0")" || die "the demo did not come up"
log "first response (GET /health/ -> 200) $first_s s after start"

v1="$(visits jar)" || die "GET /api/counter/ failed"
[[ "$v1" == 1 ]] || die "first visit gave visits=$v1, expected 1"
grep -q 'sessionid' "$jar" || die "no sessionid cookie was set"
v2="$(visits jar)" || die "GET /api/counter/ with the cookie failed"
[[ "$v2" == 2 ]] || die "second visit with the cookie gave visits=$v2, expected 2"
log "OK: visits $v1 then $v2 with the sessionid cookie"
v_new="$(visits none)" || die "GET /api/counter/ without a cookie failed"
[[ "$v_new" == 1 ]] || die "a request without the cookie gave visits=$v_new, expected 1"

uid="$(eng 30 exec "$name" id -u)" || die "could not exec in the container"
[[ "$uid" != 0 ]] || die "the demo runs as root"
if [[ "$ENGINE" == podman ]]; then
    # podman runs health checks from systemd timers, which this machine may not
    # have (hence its "unable to get systemd connection" messages): run it once.
    hc_out="$(eng 60 healthcheck run "$name" 2>&1)" || die "HEALTHCHECK failed: $hc_out"
    log "HEALTHCHECK: ${hc_out:-healthy}"
else
    deadline=$((SECONDS + 120)); status=""
    while (( SECONDS < deadline )); do
        status="$(eng 30 inspect --format '{{.State.Health.Status}}' "$name")"
        [[ "$status" == healthy || "$status" == unhealthy ]] && break
        sleep 2
    done
    [[ "$status" == healthy ]] || die "HEALTHCHECK status: ${status:-none}"
    log "HEALTHCHECK: $status"
fi
log "server runs as uid $uid"

# Restart: SIGTERM must stop the demo in time; the session must survive.
t0=$(now)
eng 90 stop -t 30 "$name" >/dev/null || die "could not stop the container"
stop_s="$(since "$t0")"
code="$(eng 30 inspect --format '{{.State.ExitCode}}' "$name")"
log "stopped on SIGTERM in $stop_s s (exit code $code)"
[[ "$code" != 137 ]] || die "the demo ignored SIGTERM and was killed"
t0=$(now)
eng 60 start "$name" >/dev/null || die "could not restart the container"
restart_s="$(wait_health 240 "$t0")" || die "the demo did not come back after a restart"
v3="$(visits jar)" || die "GET /api/counter/ after the restart failed"
[[ "$v3" == 3 ]] || die "after a restart the cookie gave visits=$v3, expected 3"
log "OK: after a restart (up again in $restart_s s) the same cookie gives visits $v3"

t0=$(now)
eng 90 stop -t 30 "$name" >/dev/null || die "could not stop the container"
code="$(eng 30 inspect --format '{{.State.ExitCode}}' "$name")"
[[ "$code" != 137 ]] || die "the demo ignored SIGTERM and was killed"
final_stop_s="$(since "$t0")"

log "PASS: session persisted across requests (visits 1 -> 2) and across a restart (-> 3)"
echo "== timings =="
echo "stand-in base image:   $base_note"
echo "image build:           $build_s s"
echo "first response:        $first_s s after container start"
echo "restart to response:   $restart_s s"
echo "stop on SIGTERM:       $stop_s s, then $final_stop_s s (exit code $code)"
