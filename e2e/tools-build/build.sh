#!/usr/bin/env bash
# Build the e2e fixture's Go tools (kwok, helm) from Go modules with `go install`,
# into OUTDIR/<name>-<version>/<name>. A tool whose binary already exists is not rebuilt,
# so a second run builds nothing. Prints one line per tool: "<name> <path>".
#
#   e2e/tools-build/build.sh [OUTDIR]        default OUTDIR: e2e/.cache/bin
#
# Versions can be overridden: KWOK_VERSION=v0.8.0 HELM_VERSION=v3.22.0.
# Needs Go >= 1.26 (both modules declare `go 1.26.0`); GO=/path/to/go to pick one.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
OUTDIR=${1:-"$here/../.cache/bin"}
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)

KWOK_VERSION=${KWOK_VERSION:-v0.8.0}
HELM_VERSION=${HELM_VERSION:-v3.22.0}

GO=${GO:-}
if [ -z "$GO" ]; then
  if command -v go >/dev/null 2>&1; then GO=$(command -v go); else GO=/usr/local/go/bin/go; fi
fi
[ -x "$GO" ] || { echo "build.sh: no go toolchain (set GO=/path/to/go)" >&2; exit 1; }

export GOTOOLCHAIN=local CGO_ENABLED=0
# Two cores are shared with other builds: one package at a time unless the caller says otherwise.
export GOFLAGS="${GOFLAGS:--p=1} -trimpath"

log() { echo "[tools-build] $*" >&2; }

# install NAME PACKAGE VERSION [EXTRA_LDFLAGS]
install_tool() {
  local name=$1 pkg=$2 version=$3 ldflags="-s -w ${4:-}"
  local dir="$OUTDIR/$name-$version" bin="$OUTDIR/$name-$version/$name"
  if [ -x "$bin" ]; then
    log "$name $version: cached ($bin)"
  else
    log "$name $version: building $pkg@$version with $("$GO" env GOVERSION) (first build takes minutes)..."
    local start=$SECONDS tmp="$dir.tmp.$$"
    rm -rf "$tmp"; mkdir -p "$tmp"
    # -v prints each package as it is compiled: the progress lines of a cold build.
    if ! GOBIN="$tmp" nice -n 10 "$GO" install -v -ldflags "$ldflags" "$pkg@$version" 2>&1 \
        | awk -v n="$name" '
          /^go: downloading / { d++; if (d % 25 == 0) { printf "[tools-build] %s: %d modules downloaded (%s)\n", n, d, $3; fflush() } next }
          /^go: |\.go:[0-9]+|^# / { print "[tools-build] " n ": " $0; fflush(); next }
          { c++; if (c % 50 == 0) { printf "[tools-build] %s: %d packages compiled (%s)\n", n, c, $0; fflush() } }' >&2; then
      rm -rf "$tmp"; log "$name: go install failed"; exit 1
    fi
    [ -x "$tmp/$name" ] || { rm -rf "$tmp"; log "$name: go install produced no binary"; exit 1; }
    rm -rf "$dir"; mv "$tmp" "$dir"
    log "$name $version: built in $((SECONDS - start))s -> $bin"
  fi
  echo "$name $bin"
}

install_tool kwok sigs.k8s.io/kwok/cmd/kwok "$KWOK_VERSION"
# helm's own Makefile sets these: the version `helm version` prints, and the Kubernetes version
# of its client libraries (default capabilities for `helm template`; otherwise v1.20).
helm_ldflags() {
  [ -x "$OUTDIR/helm-$HELM_VERSION/helm" ] && return 0   # cached: not needed
  local gomod minor
  gomod=$(cd / && GOFLAGS= "$GO" mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/^[[:space:]]*"GoMod": *"\([^"]*\)".*/\1/p')
  minor=$(sed -n 's#^[[:space:]]*k8s.io/client-go v0\.\([0-9]*\)\..*#\1#p' "$gomod" | head -1)
  echo "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  [ -n "$minor" ] && for p in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    echo "-X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=$minor"
  done
}
install_tool helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" "$(helm_ldflags | tr '\n' ' ')"
