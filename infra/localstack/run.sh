#!/usr/bin/env bash
# Run LocalStack (s3, sqs, dynamodb) in the foreground on 127.0.0.1:${LOCALSTACK_PORT:-4566}.
# Ctrl-C / SIGTERM stops LocalStack and the DynamoDB Local JVM it started, and
# removes the S3 object storage of this run. Run setup.sh once before.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ls_check_setup
mkdir -p "$LS_RUN" "$LS_TMP" "$LS_CACHE"

old="$(cat "$LS_PIDFILE" 2>/dev/null || true)"
if [ -n "$old" ] && ls_is_our_localstack "$old"; then
  ls_die "LocalStack from this state dir is already running (pid $old); stop it with infra/localstack/stop.sh"
fi
if ls_port_busy "$LOCALSTACK_PORT"; then
  ls_die "port 127.0.0.1:$LOCALSTACK_PORT is already in use; stop whatever listens there or set LOCALSTACK_PORT"
fi
# leftovers of a run that was killed hard
ls_stop_tree "" 0
ls_clean_storage
mkdir -p "$LS_S3_STORAGE"

ls_export_env
ls_log "starting LocalStack on http://127.0.0.1:$LOCALSTACK_PORT (state: $LS_HOME)"

LS_PID=""
stopping=0
on_signal() {
  [ "$stopping" = 1 ] && return
  stopping=1
  ls_log "stopping LocalStack (pid ${LS_PID:-?})"
  ls_stop_tree "$LS_PID" 20
}
cleanup() {
  ls_stop_tree "$LS_PID" 5
  ls_clean_storage
  rm -f "$LS_PIDFILE" "$LS_WRAPPER_PIDFILE"
}
trap on_signal INT TERM HUP
trap cleanup EXIT

printf '%s\n' "$$" >"$LS_WRAPPER_PIDFILE"
"$LS_VENV/bin/python" "$LS_SCRIPT_DIR/launch.py" </dev/null &
LS_PID=$!
printf '%s\n' "$LS_PID" >"$LS_PIDFILE"

rc=0
# `wait` returns early when a trapped signal arrives: keep waiting until LocalStack is gone.
while ls_alive "$LS_PID"; do
  wait "$LS_PID" && rc=0 || rc=$?
done
if [ "$stopping" = 1 ]; then
  ls_log "stopped"
  exit 0
fi
ls_log "LocalStack exited with status $rc"
exit "$rc"
