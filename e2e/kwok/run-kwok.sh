#!/usr/bin/env bash
# Start kwok (built by e2e/tools-build/build.sh) against a kube-apiserver, configured from
# e2e/kwok/kwok.yaml.tmpl, rendered the same way the TypeScript harness renders it (the Stage files
# are read from the kwok module in the Go module cache at run time).
#
#   run-kwok.sh --kubeconfig FILE --state DIR --port PORT --echo-port PORT [-- KWOK_FLAGS...]
#
# Writes DIR/kwok.yaml, creates DIR/logs/containers.log (append CRI lines to it) and DIR/exec/
# (cwd of exec commands), then execs kwok — the pid you started is kwok's, kill it to stop kwok.
# kwok's kubelet-like server (logs/exec/attach/port-forward, TLS with a self-signed cert, /healthz)
# listens on 127.0.0.1:PORT, and the nodes it initializes advertise InternalIP 127.0.0.1 and kubelet
# port PORT, which is where kube-apiserver dials. Ready when `curl -ks https://127.0.0.1:PORT/healthz`
# answers "ok"; a node from node.yaml then turns Ready within a second.
# --echo-port: a TCP echo server on 127.0.0.1 that pod ports are port-forwarded to (pod port 7 is
# piped to `cat` instead and needs nothing).
#
# Env: KWOK=/path/to/kwok (default e2e/.cache/bin/kwok-$KWOK_VERSION/kwok), KWOK_VERSION (v0.8.0),
#      GO (go binary, used only to locate the kwok module's stage files).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
KWOK_VERSION=${KWOK_VERSION:-v0.8.0}
KWOK=${KWOK:-"$here/../.cache/bin/kwok-$KWOK_VERSION/kwok"}
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}

kubeconfig= state= port= echo_port=
while [ $# -gt 0 ]; do
  case $1 in
    --kubeconfig) kubeconfig=$2; shift 2 ;;
    --state) state=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --echo-port) echo_port=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "run-kwok.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$kubeconfig" ] && [ -n "$state" ] && [ -n "$port" ] && [ -n "$echo_port" ] || {
  echo "usage: run-kwok.sh --kubeconfig FILE --state DIR --port PORT --echo-port PORT [-- KWOK_FLAGS...]" >&2; exit 2; }
[ -x "$KWOK" ] || { echo "run-kwok.sh: $KWOK missing; run e2e/tools-build/build.sh first" >&2; exit 1; }
[ -f "$kubeconfig" ] || { echo "run-kwok.sh: kubeconfig $kubeconfig not found" >&2; exit 1; }
kubeconfig=$(cd "$(dirname "$kubeconfig")" && pwd)/$(basename "$kubeconfig")
mkdir -p "$state/logs" "$state/exec"
state=$(cd "$state" && pwd)
touch "$state/logs/containers.log"

# The stage files, from the module cache (downloaded if absent; go install already fetched it).
moddir=$(cd / && GOTOOLCHAIN=local GOFLAGS= "$GO" mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" \
  | sed -n 's/^[[:space:]]*"Dir": *"\([^"]*\)".*/\1/p')
stages=()
for s in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
         pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
  f="$moddir/kustomize/stage/$s"
  [ -f "$f" ] || { echo "run-kwok.sh: stage file $f missing (kwok $KWOK_VERSION not in the module cache?)" >&2; exit 1; }
  stages+=("$f")
done

# Render the template: the {{STAGES}} line becomes the stage files joined by ---.
awk -v logs="$state/logs/containers.log" -v execdir="$state/exec" -v echoport="$echo_port" -v stages="${stages[*]}" '
  $0 == "{{STAGES}}" {
    n = split(stages, f, " ")
    for (i = 1; i <= n; i++) { if (i > 1) print "---"; while ((getline l < f[i]) > 0) print l; close(f[i]) }
    next
  }
  { gsub(/\{\{LOGS_FILE\}\}/, logs); gsub(/\{\{EXEC_DIR\}\}/, execdir); gsub(/\{\{ECHO_PORT\}\}/, echoport); print }
' "$here/kwok.yaml.tmpl" > "$state/kwok.yaml"

# exec-path/ first on kwok's PATH: a `tar` shim so that `kubectl cp LOCAL POD:PATH` completes
# (kwok v0.8.0 never closes an exec's stdin at EOF; see exec-path/tar).
export PATH="$here/exec-path:$PATH"
cd "$state"
exec "$KWOK" \
  --kubeconfig="$kubeconfig" \
  --config="$state/kwok.yaml" \
  --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
  --node-ip=127.0.0.1 --node-name=localhost --node-port="$port" \
  --server-address="127.0.0.1:$port" \
  --node-lease-duration-seconds=40 \
  "$@"
