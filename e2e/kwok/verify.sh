#!/usr/bin/env bash
# Proves the kwok wiring against the real kube-apiserver (kubesim), end to end, with kubectl and helm:
# node Ready, pod Running, logs / logs -f, exec (WebSocket and SPDY, stdin, exit code), attach,
# port-forward (WebSocket and SPDY, to a TCP echo server and to a `cat` pipe), cp both ways,
# delete, and helm install/upgrade/rollback/uninstall of e2e/chart. One line per check; exits
# non-zero if any check fails. Every process it starts is stopped on exit.
#
#   e2e/kwok/verify.sh            (KEEP=1 keeps the work folder; KUBECTL=/path picks a kubectl)
#
# Binaries: KUBESIM (default: newest e2e/.cache/bin/**/kubesim), KUBECTL (default: kubectl on PATH),
# KWOK / HELM (default: built or found by e2e/tools-build/build.sh).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
e2e=$(cd "$here/.." && pwd)
export PATH="/usr/local/go/bin:$PATH"

t0=$SECONDS
say() { echo "[verify +$((SECONDS - t0))s] $*"; }
die() { say "FATAL: $*"; exit 1; }

tools=$("$e2e/tools-build/build.sh") || die "tools build failed"
KWOK=${KWOK:-$(echo "$tools" | awk '$1=="kwok"{print $2}')}
HELM=${HELM:-$(echo "$tools" | awk '$1=="helm"{print $2}')}
KUBESIM=${KUBESIM:-$(find "$e2e/.cache/bin" -type f -name kubesim -perm -u+x -printf '%T@ %p\n' 2>/dev/null | sort -rn | head -1 | cut -d' ' -f2)}
KUBECTL=${KUBECTL:-$(command -v kubectl)}
[ -x "$KUBESIM" ] || die "no kubesim binary (build e2e/kubesim first or set KUBESIM=)"
[ -x "$KUBECTL" ] || die "no kubectl"
say "kubesim=$KUBESIM kubectl=$KUBECTL kwok=$KWOK helm=$HELM"

work=$(mktemp -d /tmp/kwok-verify.XXXXXX)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done  # bounded wait for exit
    kill -KILL "$p" 2>/dev/null
  done
  wait 2>/dev/null
  if [ "${KEEP:-}" = 1 ]; then echo "[verify] work folder kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for FILE REGEX SECONDS: poll a process's output file for a printed line (bounded).
wait_for() {
  local deadline=$((SECONDS + $3))
  until grep -Eq "$2" "$1" 2>/dev/null; do
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.1
  done
}
# poll SECONDS CMD...: rerun CMD until it succeeds (bounded).
poll() {
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do [ $SECONDS -ge $deadline ] && return 1; sleep 0.2; done
}
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

fails=0
check() {  # check NAME CMD... : one result line per check
  local name=$1; shift
  local start=$SECONDS out
  local run=(timeout 60); declare -F "$1" >/dev/null && run=()   # helpers bound their own waits
  if out=$("${run[@]}" "$@" 2>&1); then say "PASS $name ($((SECONDS - start))s)"
  else fails=$((fails + 1)); say "FAIL $name ($((SECONDS - start))s): $(echo "$out" | tail -5 | tr '\n' ' ')"; fi
}

# ---- kube-apiserver ------------------------------------------------------------------------
"$KUBESIM" --dir "$work/sim" --port 0 > "$work/kubesim.log" 2>&1 & pids+=($!)
wait_for "$work/kubesim.log" '^KUBESIM READY https://' 240 || { tail -20 "$work/kubesim.log"; die "kubesim not ready"; }
say "$(grep -m1 '^KUBESIM READY' "$work/kubesim.log")"
export KUBECONFIG="$work/sim/admin.kubeconfig"
k() { "$KUBECTL" "$@"; }
poll 60 sh -c '[ "$("$0" get --raw /readyz)" = ok ]' "$KUBECTL" || die "/readyz not ok"
say "versions: $(k version -o json 2>/dev/null | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const v=JSON.parse(s);console.log("client "+v.clientVersion.gitVersion+", server "+v.serverVersion.gitVersion)})')"

# ---- TCP echo server (port-forward target) and kwok ------------------------------------------
node -e 'const n=require("net");const s=n.createServer(c=>{c.on("error",()=>{});c.pipe(c)});s.listen(0,"127.0.0.1",()=>console.log("ECHO "+s.address().port))' > "$work/echo.log" 2>&1 & pids+=($!)
wait_for "$work/echo.log" '^ECHO [0-9]+' 10 || die "echo server did not start"
echo_port=$(sed -n 's/^ECHO //p' "$work/echo.log")
kport=$(free_port)
"$here/run-kwok.sh" --kubeconfig "$KUBECONFIG" --state "$work/kwok" --port "$kport" --echo-port "$echo_port" \
  > "$work/kwok.log" 2>&1 & pids+=($!)
poll 60 sh -c '[ "$(curl -ks "https://127.0.0.1:$0/healthz")" = ok ]' "$kport" || { tail -5 "$work/kwok.log"; die "kwok /healthz"; }
say "kwok serving on 127.0.0.1:$kport (echo on $echo_port)"
logs="$work/kwok/logs/containers.log"
log_line() { printf '%s stdout F %s\n' "$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)" "$1" >> "$logs"; }
log_line "hello line 1"; log_line "hello line 2"

# ---- node and pod ------------------------------------------------------------------------
check "node Ready" sh -c 'k=$0; $k apply -f "$1" && $k wait --for=condition=Ready node/kwok-node-0 --timeout=60s' "$KUBECTL" "$here/node.yaml"
check "node addresses point at kwok" sh -c '[ "$($0 get node kwok-node-0 -o jsonpath="{.status.addresses[?(@.type==\"InternalIP\")].address}:{.status.daemonEndpoints.kubeletEndpoint.Port}")" = "127.0.0.1:$1" ]' "$KUBECTL" "$kport"
# no kube-controller-manager: the `default` ServiceAccount must be created by hand
poll 30 k get namespace default || die "namespace default missing"
k get serviceaccount default >/dev/null 2>&1 || k create serviceaccount default >/dev/null
check "pod Running+Ready" sh -c 'k=$0; $k apply -f "$1" && $k wait --for=condition=Ready pod/web --timeout=60s && [ "$($k get pod web -o jsonpath={.status.phase})" = Running ]' "$KUBECTL" "$here/pod.yaml"

# ---- logs ---------------------------------------------------------------------------------
check "logs" sh -c '[ "$($0 logs web)" = "$(printf "hello line 1\nhello line 2")" ]' "$KUBECTL"
check "logs --tail=1" sh -c '[ "$($0 logs web --tail=1)" = "hello line 2" ]' "$KUBECTL"
# (checks run in a subshell: each helper stops the background process it started on every path)
logs_follow() {
  "$KUBECTL" logs -f web > "$work/follow.out" 2>&1 & local p=$! rc=0
  wait_for "$work/follow.out" 'hello line 2' 20 || rc=1
  [ $rc = 0 ] && log_line "appended while following"
  [ $rc = 0 ] && { wait_for "$work/follow.out" 'appended while following' 20 || rc=1; }
  kill "$p"; wait "$p" 2>/dev/null; [ $rc = 0 ] || cat "$work/follow.out"; return $rc
}
check "logs -f (line appended after start shows up)" logs_follow
attach() {  # attach PROTO: kwok streams the log file from its end, so append once kubectl is attached
  local ws=true rc=0; [ "$1" = spdy ] && ws=false
  KUBECTL_REMOTE_COMMAND_WEBSOCKETS=$ws "$KUBECTL" attach web > "$work/attach.out" 2>&1 & local p=$!
  wait_for "$work/attach.out" "see a command prompt" 20 || rc=1
  local i
  for i in $(seq 1 50); do   # bounded: append until the streamed line shows up
    [ $rc = 0 ] || break
    log_line "appended while attached $i"
    grep -q 'appended while attached' "$work/attach.out" && break
    [ "$i" = 50 ] && rc=1
    sleep 0.2
  done
  kill "$p"; wait "$p" 2>/dev/null; [ $rc = 0 ] || cat "$work/attach.out"; return $rc
}
check "attach (output only) [websocket]" attach websocket
check "attach (output only) [spdy]" attach spdy

# ---- exec ---------------------------------------------------------------------------------
for proto in websocket spdy; do
  ws=true; [ $proto = spdy ] && ws=false
  export KUBECTL_REMOTE_COMMAND_WEBSOCKETS=$ws
  check "exec -- echo hi [$proto]" sh -c '[ "$($0 exec web -- echo hi)" = hi ]' "$KUBECTL"
  # stdin: `head -n 2`, not `cat` — kwok v0.8.0 never closes the exec's stdin at EOF, so `cat` would
  # never exit (see exec-path/tar and README.md)
  check "exec -i -- head -n 2 (stdin) [$proto]" sh -c '[ "$(printf "line a\nline b\n" | $0 exec -i web -- head -n 2)" = "$(printf "line a\nline b")" ]' "$KUBECTL"
  check "exec env + cwd [$proto]" sh -c '[ "$($0 exec web -- sh -c "echo \$KWOK \$(basename \$(pwd))")" = "1 exec" ]' "$KUBECTL"
  # kwok returns a failed command as an InternalError "... exit status 3" (kubelet would send exit
  # code 3, which kubectl exits with); kubectl exits 1
  check "exec failing command -> error naming exit status 3 [$proto]" sh -c 'out=$($0 exec web -- sh -c "exit 3" 2>&1); rc=$?; [ $rc -ne 0 ] && echo "$out" | grep -q "exit status 3"' "$KUBECTL"
  check "exec stderr [$proto]" sh -c '[ "$($0 exec web -- sh -c "echo oops >&2" 2>&1 >/dev/null)" = oops ]' "$KUBECTL"
done
unset KUBECTL_REMOTE_COMMAND_WEBSOCKETS

# ---- port-forward ---------------------------------------------------------------------------
# roundtrip PORT: send bytes, expect the same bytes back (no half-close: WebSocket port-forward has none)
roundtrip() {
  node -e '
    const msg = "ping-" + Math.random().toString(36).slice(2) + "-".repeat(20000);
    const s = require("net").connect(+process.argv[1], "127.0.0.1", () => s.write(msg));
    let got = ""; const t = setTimeout(() => { console.error("timeout, got " + got.length + " bytes"); process.exit(1); }, 15000);
    s.on("data", (d) => { got += d; if (got.length >= msg.length) { clearTimeout(t); s.destroy(); process.exit(got === msg ? 0 : 1); } });
    s.on("error", (e) => { console.error(e.message); process.exit(1); });' "$1"
}
port_forward() {  # port_forward POD_PORT PROTO
  local out="$work/pf-$1-$2.out" ws=true rc=0 lport; [ "$2" = spdy ] && ws=false
  KUBECTL_PORT_FORWARD_WEBSOCKETS=$ws "$KUBECTL" port-forward pod/web "0:$1" > "$out" 2>&1 & local p=$!
  if wait_for "$out" 'Forwarding from 127.0.0.1:[0-9]+' 20; then
    lport=$(sed -n 's/^Forwarding from 127.0.0.1:\([0-9]*\).*/\1/p' "$out" | head -1)
    roundtrip "$lport" && roundtrip "$lport" || rc=1   # two connections through one port-forward
  else rc=1; fi
  kill "$p"; wait "$p" 2>/dev/null; [ $rc = 0 ] || cat "$out"; return $rc
}
for proto in websocket spdy; do
  check "port-forward 8080 -> TCP echo [$proto]" port_forward 8080 $proto
  check "port-forward 7 -> cat pipe [$proto]" port_forward 7 $proto
done

# ---- cp (tar through exec; relative pod paths = kwok exec dir on the host) --------------------
cp_both_ways() {
  head -c 300000 /dev/urandom | base64 > "$work/cp-src.txt"
  timeout 30 "$KUBECTL" cp "$work/cp-src.txt" web:copied.txt || return 1
  cmp "$work/cp-src.txt" "$work/kwok/exec/copied.txt" || return 1
  timeout 30 "$KUBECTL" cp web:copied.txt "$work/cp-back.txt" || return 1
  cmp "$work/cp-src.txt" "$work/cp-back.txt" || return 1
  mkdir -p "$work/cp-dir/sub" && echo nested > "$work/cp-dir/sub/file"
  timeout 30 "$KUBECTL" cp "$work/cp-dir" web:dir-copy || return 1
  [ "$(cat "$work/kwok/exec/dir-copy/sub/file")" = nested ]
}
check "cp file and folder, local -> pod -> local" cp_both_ways

# ---- delete -------------------------------------------------------------------------------
check "delete pod --wait" sh -c '$0 delete pod web --wait --timeout=30s && ! $0 get pod web 2>/dev/null' "$KUBECTL"

# ---- helm ---------------------------------------------------------------------------------
export HELM_CACHE_HOME="$work/helm/cache" HELM_CONFIG_HOME="$work/helm/config" HELM_DATA_HOME="$work/helm/data"
check "helm install" sh -c '"$0" install demo "$1" --wait --timeout 60s && [ "$("$2" get configmap demo-config -o jsonpath={.data.message})" = "hello from the e2e chart" ] && "$2" wait --for=condition=Ready pod/demo-app --timeout=60s' "$HELM" "$e2e/chart" "$KUBECTL"
check "helm upgrade" sh -c '"$0" upgrade demo "$1" --set message=upgraded --wait --timeout 60s && [ "$("$2" get configmap demo-config -o jsonpath={.data.message})" = upgraded ] && [ "$("$2" get pod demo-app -o jsonpath={.metadata.annotations.e2e/message})" = upgraded ]' "$HELM" "$e2e/chart" "$KUBECTL"
check "helm rollback" sh -c '"$0" rollback demo 1 --wait --timeout 60s && [ "$("$1" get configmap demo-config -o jsonpath={.data.message})" = "hello from the e2e chart" ] && [ "$("$0" history demo -o json | grep -o "\"revision\":" | wc -l)" -eq 3 ]' "$HELM" "$KUBECTL"
check "helm uninstall" sh -c '"$0" uninstall demo --wait --timeout 60s && ! "$1" get configmap demo-config 2>/dev/null && ! "$1" get pod demo-app 2>/dev/null' "$HELM" "$KUBECTL"

say "done: $fails failed check(s)"
[ "$fails" -eq 0 ]
