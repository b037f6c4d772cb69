#!/usr/bin/env bash
# smoke.sh BINDIR [KUBECTL] — start BINDIR/kubesim in a fresh temp dir and prove
# the fixture: admin kubeconfig works, a namespace and a ServiceAccount are
# created, `kubectl create token` issues a token, that token is denied by RBAC
# and allowed after a RoleBinding, /version is stamped, SIGTERM exits 0.
# KUBECTL defaults to BINDIR/kubectl (same minor); pass /usr/bin/kubectl to try
# the preinstalled one.
set -euo pipefail
BIN=$(cd "${1:?usage: smoke.sh BINDIR [KUBECTL]}" && pwd)
KUBECTL=${2:-$BIN/kubectl}
DIR=$(mktemp -d /tmp/kubesim-smoke.XXXXXX)
KS_PID=
cleanup() {
  if [ -n "$KS_PID" ] && kill -0 "$KS_PID" 2>/dev/null; then kill -KILL "$KS_PID"; fi
  rm -rf "$DIR"
}
trap cleanup EXIT

step() { echo "smoke: $*"; }
# poll CMD until it succeeds, at most 15 s (RBAC reads bindings from an informer cache).
eventually() { local end=$(( $(date +%s) + 15 )); until "$@" >/dev/null 2>&1; do
  [ "$(date +%s)" -lt "$end" ] || { echo "smoke: FAIL not within 15s: $*" >&2; return 1; }; sleep 0.2; done; }
expect_fail() { if "$@" >/dev/null 2>&1; then echo "smoke: FAIL expected denial: $*" >&2; exit 1; fi; }

start=$(date +%s%N)
coproc KS { exec "$BIN/kubesim" --dir "$DIR" --port 0; }
KS_PID=$KS_PID
# The READY line is the only synchronisation point (bounded wait).
if ! read -t 180 -r line <&"${KS[0]}"; then
  echo "smoke: FAIL no READY line within 180s; log tail:" >&2; tail -30 "$DIR/kubesim.log" >&2; exit 1
fi
case "$line" in "KUBESIM READY https://127.0.0.1:"*) ;; *) echo "smoke: FAIL unexpected line: $line" >&2; exit 1;; esac
step "ready in $(( ($(date +%s%N) - start) / 1000000 )) ms: $line"
SERVER=${line#KUBESIM READY }
K=("$KUBECTL" --kubeconfig "$DIR/admin.kubeconfig")

step "kubectl $("$KUBECTL" version --client -o json | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p' | head -1), server $("${K[@]}" get --raw /version | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p')"
"${K[@]}" get ns
"${K[@]}" create namespace smoke
"${K[@]}" -n smoke create serviceaccount reader
TOKEN=$("${K[@]}" -n smoke create token reader --duration=1h)
step "token issued (${#TOKEN} chars)"

# A kubeconfig with only the service-account token.
SA_KC="$DIR/reader.kubeconfig"
"$KUBECTL" config --kubeconfig "$SA_KC" set-cluster kubesim --server "$SERVER" \
  --certificate-authority "$DIR/pki/ca.crt" --embed-certs >/dev/null
"$KUBECTL" config --kubeconfig "$SA_KC" set-credentials reader --token "$TOKEN" >/dev/null
"$KUBECTL" config --kubeconfig "$SA_KC" set-context kubesim --cluster kubesim --user reader --namespace smoke >/dev/null
"$KUBECTL" config --kubeconfig "$SA_KC" use-context kubesim >/dev/null
R=("$KUBECTL" --kubeconfig "$SA_KC")

step "whoami: $("${R[@]}" auth whoami -o jsonpath='{.status.userInfo.username}')"
expect_fail "${R[@]}" get configmaps
"${R[@]}" get configmaps 2>&1 | sed 's/^/smoke:   denied as expected: /' || true
"${K[@]}" create clusterrole smoke-reader --verb=get,list,watch --resource=configmaps
"${K[@]}" create clusterrolebinding smoke-reader --clusterrole=smoke-reader --serviceaccount=smoke:reader
eventually "${R[@]}" get configmaps
"${R[@]}" get configmaps
expect_fail "${R[@]}" create configmap nope --from-literal=a=b
step "RBAC: deny before binding, allow after, write still denied"

kill -TERM "$KS_PID"
t0=$(date +%s%N)
rc=0; wait "$KS_PID" || rc=$?
KS_PID=
step "SIGTERM -> exit $rc in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
[ "$rc" -eq 0 ] || { tail -30 "$DIR/kubesim.log" >&2; exit 1; }
step "PASS"
