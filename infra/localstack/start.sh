#!/usr/bin/env bash
# Start LocalStack in the background (for tests and CI) and wait until s3, sqs
# and dynamodb report healthy. Log: $SQUEEZER_STATE_DIR/localstack/run/localstack.log.
# Env: LOCALSTACK_PORT (4566), LOCALSTACK_START_TIMEOUT (120 s).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

timeout="${LOCALSTACK_START_TIMEOUT:-120}"
ls_check_setup
mkdir -p "$LS_RUN"

old="$(cat "$LS_PIDFILE" 2>/dev/null || true)"
if [ -n "$old" ] && ls_is_our_localstack "$old"; then
  if ls_healthy; then
    ls_log "already running (pid $old) on http://127.0.0.1:$LOCALSTACK_PORT"
    exit 0
  fi
  ls_die "LocalStack (pid $old) is running but not healthy on port $LOCALSTACK_PORT; run stop.sh first"
fi
if ls_port_busy "$LOCALSTACK_PORT"; then
  ls_die "port 127.0.0.1:$LOCALSTACK_PORT is already in use; stop whatever listens there or set LOCALSTACK_PORT"
fi

t0=$(date +%s.%N)
rm -f "$LS_PIDFILE"
# run.sh supervises LocalStack and cleans up on SIGTERM; detach it from our
# terminal/session so it outlives this script.
setsid_cmd=()
command -v setsid >/dev/null 2>&1 && setsid_cmd=(setsid)
"${setsid_cmd[@]}" bash "$LS_SCRIPT_DIR/run.sh" >"$LS_LOG" 2>&1 </dev/null &

deadline=$((SECONDS + timeout))
while :; do
  if ls_healthy; then
    break
  fi
  wrapper="$(cat "$LS_WRAPPER_PIDFILE" 2>/dev/null || true)"
  if [ $SECONDS -ge $deadline ] || { [ -f "$LS_LOG" ] && grep -q '^\[localstack\] ERROR' "$LS_LOG"; } \
     || { [ $SECONDS -gt 3 ] && ! ls_alive "$wrapper"; }; then
    echo "----- last lines of $LS_LOG -----" >&2
    tail -n 40 "$LS_LOG" >&2 || true
    echo "-----" >&2
    bash "$LS_SCRIPT_DIR/stop.sh" >/dev/null 2>&1 || true
    ls_die "LocalStack did not become healthy within ${timeout}s (health: $(ls_health))"
  fi
  sleep 0.5
done
t1=$(date +%s.%N)
ls_log "healthy on http://127.0.0.1:$LOCALSTACK_PORT after $(awk "BEGIN{printf \"%.1f\", $t1-$t0}") s (pid $(cat "$LS_PIDFILE"), log $LS_LOG)"
