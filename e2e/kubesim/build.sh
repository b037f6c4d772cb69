#!/usr/bin/env bash
# build.sh OUTDIR — build OUTDIR/kubesim-<k8s version>/{kubesim,kubectl} (same
# Kubernetes version) from Go modules, only if missing or stale. The last two
# lines on stdout are "kubesim /abs/path" and "kubectl /abs/path".
#
# Staleness key: Kubernetes version (from go.mod) + Go version + sha256 of
# build.sh, go.mod, go.sum and *.go. A second run with the same key builds
# nothing and prints one line. Exit status non-zero on any failure.
#
# Environment:
#   GO               go binary (default: go on PATH, else /usr/local/go/bin/go)
#   KUBESIM_NICE     niceness for the compiler (default 10; shared machines)
#   GOFLAGS          kept (e.g. -p=1 on a shared machine); -mod=mod is added
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
OUTROOT=$(cd "$1" && pwd)

GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
export GOTOOLCHAIN=local CGO_ENABLED=0
export GOFLAGS="-mod=mod${GOFLAGS:+ $GOFLAGS}"
NICE=${KUBESIM_NICE:-10}

cd "$HERE"
K8S=$(sed -n 's#^[[:space:]]*k8s.io/kubernetes[[:space:]]\(v[0-9][^[:space:]]*\).*#\1#p' go.mod | head -1)
[ -n "$K8S" ] || { echo "kubesim build: cannot read the k8s.io/kubernetes version from go.mod" >&2; exit 1; }
OUT=$OUTROOT/kubesim-$K8S
mkdir -p "$OUT"
GOVERSION=$("$GO" env GOVERSION)
KEY=$( { echo "$K8S $GOVERSION"; cat build.sh go.mod go.sum; ls *.go | sort | xargs cat; } | sha256sum | cut -c1-16)
STAMP="$OUT/.kubesim-build-key"

if [ -x "$OUT/kubesim" ] && [ -x "$OUT/kubectl" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$KEY" ]; then
  echo "kubesim build: up to date ($K8S, key $KEY)"
  echo "kubesim $OUT/kubesim"
  echo "kubectl $OUT/kubectl"
  exit 0
fi

# Version stamping, as upstream hack/lib/version.sh does, for both the
# server-side (component-base) and client-side (client-go) version packages:
# /version and `kubectl version` then report $K8S instead of v0.0.0-master.
MAJOR=${K8S#v}; MAJOR=${MAJOR%%.*}
MINOR=${K8S#v*.}; MINOR=${MINOR%%.*}
BUILD_DATE=$("$GO" mod download -json "k8s.io/kubernetes@$K8S" | sed -n 's/.*"Info": *"\([^"]*\)".*/\1/p' | xargs cat | sed -n 's/.*"Time":"\([^"]*\)".*/\1/p')
LDFLAGS="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  LDFLAGS="$LDFLAGS -X $pkg.gitVersion=$K8S -X $pkg.gitMajor=$MAJOR -X $pkg.gitMinor=$MINOR"
  # gitCommit: the proxy does not say which commit a tag is; empty beats "$Format:%H$".
  LDFLAGS="$LDFLAGS -X $pkg.gitCommit= -X $pkg.gitTreeState=archive -X $pkg.buildDate=${BUILD_DATE:-1970-01-01T00:00:00Z}"
done

# Heartbeat: go build prints nothing for minutes on a cold cache.
# Killed with TERM when the compile ends; the trap also ends the pending sleep
# at once (bash runs traps during `wait`, not during a foreground child), and
# the sleep never holds our stdout open.
progress() { # name start
  local s=
  trap '[ -n "$s" ] && kill "$s" 2>/dev/null; exit 0' TERM
  while :; do
    sleep 30 >/dev/null 2>&1 & s=$!
    wait "$s"
    echo "kubesim build: ... still compiling $1 ($(( $(date +%s) - $2 ))s)"
  done
}

build() { # name package
  local start=$(date +%s) hb
  echo "kubesim build: compiling $1 ($K8S, $GOVERSION) -> $OUT/$1"
  progress "$1" "$start" & hb=$!
  if ! nice -n "$NICE" "$GO" build -trimpath -ldflags "$LDFLAGS" -o "$OUT/.$1.tmp" "$2"; then
    kill "$hb" 2>/dev/null; wait "$hb" 2>/dev/null || true
    echo "kubesim build: FAILED compiling $1" >&2
    return 1
  fi
  kill "$hb" 2>/dev/null; wait "$hb" 2>/dev/null || true
  mv -f "$OUT/.$1.tmp" "$OUT/$1"
  echo "kubesim build: $1 done in $(( $(date +%s) - start ))s"
}

rm -f "$STAMP"
echo "kubesim build: downloading modules (first run: several hundred MB into $("$GO" env GOMODCACHE))"
"$GO" mod download
echo "kubesim build: first build takes many minutes on 2 cores (later builds are cached in $("$GO" env GOCACHE))"
build kubesim .
build kubectl k8s.io/kubernetes/cmd/kubectl
echo "$KEY" > "$STAMP"
echo "kubesim build: ready ($K8S, key $KEY)"
echo "kubesim $OUT/kubesim"
echo "kubectl $OUT/kubectl"
