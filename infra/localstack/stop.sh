#!/usr/bin/env bash
# Stop the LocalStack started by start.sh or run.sh from this state dir, with the
# DynamoDB Local JVM it started; remove its S3 object storage. Idempotent.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

pid="$(cat "$LS_PIDFILE" 2>/dev/null || true)"
wrapper="$(cat "$LS_WRAPPER_PIDFILE" 2>/dev/null || true)"
[ -n "$pid" ] && ! ls_is_our_localstack "$pid" && pid=""
if [ -n "$wrapper" ] && ! { ls_alive "$wrapper" && grep -qaF -e "$LS_SCRIPT_DIR/run.sh" "/proc/$wrapper/cmdline" 2>/dev/null; }; then
  wrapper=""
fi

if [ -z "$pid" ] && [ -z "$wrapper" ] && [ -z "$(ls_orphans)" ]; then
  ls_log "not running"
else
  ls_log "stopping LocalStack (pid ${pid:-none})"
  # run.sh stops LocalStack gracefully and cleans up on SIGTERM
  if [ -n "$wrapper" ]; then
    kill -TERM "$wrapper" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do
      ls_alive "$wrapper" || break
      sleep 0.1
    done
  fi
  # whatever is left (run.sh killed hard, LocalStack hung, orphaned JVM)
  ls_stop_tree "$pid" 5
  [ -n "$wrapper" ] && ls_alive "$wrapper" && kill -KILL "$wrapper" 2>/dev/null || true
  left="$(ls_orphans)"
  [ -z "$left" ] || ls_die "processes still running: $left"
  ls_log "stopped"
fi
ls_clean_storage
rm -f "$LS_PIDFILE" "$LS_WRAPPER_PIDFILE"
