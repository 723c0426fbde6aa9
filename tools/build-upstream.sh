#!/usr/bin/env bash
# Build the upstream binaries of tools/upstream.lock into .cache/bin/<name>-<version>.
#
# Each (module, version) gets a small wrapper module of ours under .cache/upstream/ that requires
# the upstream module and copies its replace directives (`go install pkg@version` refuses modules
# whose go.mod has any, as VictoriaMetrics' does), so the dependency graph is upstream's own.
# k8s.io/kubernetes replaces its ~30 staging modules (k8s.io/api, k8s.io/apiserver, ...) with
# local paths (./staging/src/k8s.io/<name>); the wrapper points each at its published release
# instead, which Kubernetes tags v0.<minor>.<patch> with every v1.<minor>.<patch>, and stamps the
# release into the binary (`kube-apiserver --version`, the API server's /version).
# Nothing of upstream's source enters the repo; Go's module and build caches are reused, and a
# binary already in .cache/bin is not rebuilt, so a second `make setup` costs a few stat calls.
#
# Usage: tools/build-upstream.sh [NAME ...]   (default: every binary in the lock file)
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
repo=$PWD
lock=tools/upstream.lock
bindir=$repo/.cache/bin
workroot=$repo/.cache/upstream

wanted=("$@")
is_wanted() {
  [ ${#wanted[@]} -eq 0 ] && return 0
  local w
  for w in "${wanted[@]}"; do [ "$w" = "$1" ] && return 0; done
  return 1
}

# Lines of the lock file: name module version package tags (the rest is the description).
entries=$(grep -v '^\s*\(#\|$\)' "$lock" | awk '{print $1, $2, $3, $4, $5}')
missing=()
while read -r name module version package tags; do
  is_wanted "$name" || continue
  [ -x "$bindir/$name-$version" ] || missing+=("$name")
done <<<"$entries"
[ ${#missing[@]} -eq 0 ] && exit 0

go=$(command -v go || true)
[ -n "$go" ] || { [ -x /usr/local/go/bin/go ] && go=/usr/local/go/bin/go; }
[ -n "$go" ] || { echo "build-upstream: Go not found (PATH or /usr/local/go/bin/go); needed to build ${missing[*]}" >&2; exit 1; }

# The module proxy is the trust root here: sum.golang.org is not reachable from CI, and every
# module comes from the one proxy over TLS. The toolchain is the local one, never a download;
# no VCS stamp (the wrapper sits inside this repo, whose state must not change the binary).
export GOSUMDB=off GOTOOLCHAIN=local GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0
mkdir -p "$bindir" "$workroot"

# From upstream's `go mod edit -json`: its go version and its replace directives, as go.mod lines.
gomod_directives='
import json, sys
mod = json.load(sys.stdin)
version = sys.argv[1]
print("go", mod.get("Go") or "1.22")
for r in mod.get("Replace") or []:
    old, new = r["Old"], r["New"]
    staging = "./staging/src/" + old["Path"]
    if mod["Module"]["Path"] == "k8s.io/kubernetes" and new["Path"] == staging:
        print("replace %s => %s v0.%s" % (old["Path"], old["Path"], version.split(".", 1)[1]))
        continue
    if new["Path"].startswith((".", "/")):
        sys.exit("build-upstream: %s replaces %s with a local path; needs a hand-made wrapper"
                 % (mod["Module"]["Path"], old["Path"]))
    lhs = old["Path"] + (" " + old["Version"] if old.get("Version") else "")
    print("replace %s => %s %s" % (lhs, new["Path"], new["Version"]))
'

wrapper() {  # module version -> the wrapper module's directory
  # No `go mod tidy`: it would fetch every dependency regardless of build tags; `go build
  # -mod=mod` adds only the requirements and sums the packages built with their tags need.
  local module=$1 version=$2 dir gomod
  dir=$workroot/$(echo "$module" | tr '/' '_')@$version
  mkdir -p "$dir"
  gomod=$(cd "$workroot" && "$go" mod download -json "$module@$version" | sed -n 's/^\s*"GoMod": "\(.*\)",\?$/\1/p')
  [ -f "$gomod" ] || { echo "build-upstream: cannot download $module@$version" >&2; return 1; }
  rm -f "$dir/go.sum"
  {
    echo "module starform.local/upstream/$(basename "$module")"
    echo
    "$go" mod edit -json "$gomod" | python3 -c "$gomod_directives" "$version"
    echo "require $module $version"
  } >"$dir/go.mod"
  echo "$dir"
}

version_ldflags() {  # module version -> -X flags that stamp the release (Kubernetes builds it so)
  local module=$1 version=$2 minor
  [ "$module" = k8s.io/kubernetes ] || return 0
  minor=$(echo "$version" | cut -d. -f2)
  local v
  for v in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    printf -- '-X %s.gitVersion=%s -X %s.gitMajor=1 -X %s.gitMinor=%s -X %s.gitTreeState=clean ' \
      "$v" "$version" "$v" "$v" "$minor" "$v"
  done
}

# Group the missing binaries by module@version: one wrapper module per upstream release.
declare -A packages_of
while read -r name module version package tags; do
  [[ " ${missing[*]} " == *" $name "* ]] || continue
  packages_of["$module $version"]+="$name:$package:$tags "
done <<<"$entries"

for key in "${!packages_of[@]}"; do
  read -r module version <<<"$key"
  dir=$(wrapper "$module" "$version")
  for item in ${packages_of[$key]}; do
    IFS=: read -r name package tags <<<"$item"
    [ "$tags" = "-" ] && tags=""
    echo "build-upstream: building $name $version ($module/$package${tags:+, tags $tags})" >&2
    start=$(date +%s)
    (cd "$dir" && nice "$go" build -trimpath -tags="$tags" -ldflags="$(version_ldflags "$module" "$version")" \
      -o "$bindir/.$name-$version.tmp" "$module/$package")
    mv "$bindir/.$name-$version.tmp" "$bindir/$name-$version"
    echo "build-upstream: $name $version built in $(( $(date +%s) - start )) s" >&2
  done
done
