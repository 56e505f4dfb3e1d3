#!/bin/sh
# cloudbroker-client: a deployment's VM talks to its broker (POSIX sh + curl).
#
#   cloudbroker-client get NAME [TIMEOUT]   print NAME's value; wait until it is set
#                                           (at most TIMEOUT seconds, default 600; exit 1 then)
#   cloudbroker-client set NAME VALUE       publish one of this node's outputs
#   cloudbroker-client ready                this VM is ready
#   cloudbroker-client abort MESSAGE        stop the whole deployment with MESSAGE
#   cloudbroker-client self                 this VM's deployment, node, index and parameters (JSON)
#
# Reads CLOUDBROKER_URL and CLOUDBROKER_TOKEN from the environment, else from
# /etc/cloudbroker/env (CLOUDBROKER_ENV_FILE names another file). Exit codes:
# 0 done, 1 timed out, 2 refused or failed (the broker's message on stderr).
# Served by the broker at /client/cloudbroker-client.sh.
set -u

if [ -z "${CLOUDBROKER_URL:-}" ] || [ -z "${CLOUDBROKER_TOKEN:-}" ]; then
    env_file="${CLOUDBROKER_ENV_FILE:-/etc/cloudbroker/env}"
    if [ -r "$env_file" ]; then
        # shellcheck disable=SC1090
        . "$env_file"
    fi
fi
if [ -z "${CLOUDBROKER_URL:-}" ] || [ -z "${CLOUDBROKER_TOKEN:-}" ]; then
    echo "cloudbroker-client: CLOUDBROKER_URL and CLOUDBROKER_TOKEN are not set (nor in ${CLOUDBROKER_ENV_FILE:-/etc/cloudbroker/env})" >&2
    exit 2
fi
if ! command -v curl >/dev/null 2>&1; then
    echo "cloudbroker-client: curl is needed" >&2
    exit 2
fi

api="${CLOUDBROKER_URL%/}/api/v1/exchange"
body_file=$(mktemp "${TMPDIR:-/tmp}/cloudbroker-client.XXXXXX") || exit 2
trap 'rm -f "$body_file"' EXIT

usage() {
    sed -n '4,9p' "$0" 2>/dev/null | sed 's/^# \{0,1\}//' >&2 || echo "usage: cloudbroker-client get|set|ready|abort|self ..." >&2
    exit 2
}

# call METHOD PATH [CURL ARGS...]: the HTTP status on stdout ("000" when the
# broker was not reached), the body in $body_file.
call() {
    method=$1
    path=$2
    shift 2
    curl -sS -o "$body_file" -w '%{http_code}' -X "$method" \
        -H "Authorization: Bearer $CLOUDBROKER_TOKEN" "$@" "$api$path" 2>/dev/null || true
}

# The broker's message of an error body (the JSON's "message"), else the body.
message() {
    m=$(sed -n 's/.*"message"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' "$body_file" | head -n 1)
    if [ -n "$m" ]; then printf '%s' "$m"; else head -c 300 "$body_file"; fi
}

fail() {
    echo "cloudbroker-client: $1 (HTTP $2): $(message)" >&2
    exit 2
}

valid_name() {
    case "$1" in
        '' | *[!a-z0-9_.]*) echo "cloudbroker-client: '$1' is not a parameter name" >&2; exit 2 ;;
    esac
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
get)
    [ $# -ge 1 ] || usage
    name=$1
    valid_name "$name"
    timeout=${2:-600}
    case "$timeout" in '' | *[!0-9]*) echo "cloudbroker-client: TIMEOUT must be whole seconds" >&2; exit 2 ;; esac
    deadline=$(( $(date +%s) + timeout ))
    while :; do
        left=$(( deadline - $(date +%s) ))
        [ "$left" -lt 0 ] && left=0
        wait=$left
        [ "$wait" -gt 60 ] && wait=60
        status=$(call GET "/params/$name?wait=$wait" -H 'Accept: text/plain' --max-time $(( wait + 30 )))
        case "$status" in
        200)
            cat "$body_file"
            echo
            exit 0
            ;;
        404)
            if ! grep -q '"not_set"' "$body_file"; then fail "get $name" "$status"; fi
            ;;
        000 | 502 | 503 | 504)
            # The broker is restarting or unreachable: try again until the deadline.
            sleep 2
            ;;
        *) fail "get $name" "$status" ;;
        esac
        if [ "$(date +%s)" -ge "$deadline" ]; then
            echo "cloudbroker-client: $name was not set within ${timeout}s" >&2
            exit 1
        fi
    done
    ;;
set)
    [ $# -eq 2 ] || usage
    valid_name "$1"
    status=$(call PUT "/params/$1" -H 'Content-Type: text/plain; charset=utf-8' --data-binary "$2" --max-time 60)
    case "$status" in
    2??) exit 0 ;;
    *) fail "set $1" "$status" ;;
    esac
    ;;
ready)
    [ $# -eq 0 ] || usage
    status=$(call POST /ready --max-time 60)
    case "$status" in
    2??) exit 0 ;;
    *) fail ready "$status" ;;
    esac
    ;;
abort)
    [ $# -ge 1 ] || usage
    status=$(call POST /abort -H 'Content-Type: text/plain; charset=utf-8' --data-binary "$*" --max-time 60)
    case "$status" in
    2??) exit 0 ;;
    *) fail abort "$status" ;;
    esac
    ;;
self)
    status=$(call GET /self --max-time 60)
    case "$status" in
    200) cat "$body_file"; echo; exit 0 ;;
    *) fail self "$status" ;;
    esac
    ;;
*) usage ;;
esac
