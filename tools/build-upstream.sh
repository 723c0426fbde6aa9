#!/usr/bin/env bash
# Build the upstream binaries of tools/upstream.lock into .cache/bin/<name>-<version>.
#
# Each (module, version) gets a small wrapper module of ours under .cache/upstream/ that requires
# the upstream module and copies its replace directives (`go install pkg@version` refuses modules
# whose go.mod has any, as VictoriaMetrics' does), so the dependency graph is upstream's own.
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
print("go", mod.get("Go") or "1.22")
for r in mod.get("Replace") or []:
    old, new = r["Old"], r["New"]
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
    "$go" mod edit -json "$gomod" | python3 -c "$gomod_directives"
    echo "require $module $version"
  } >"$dir/go.mod"
  echo "$dir"
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
    (cd "$dir" && nice "$go" build -trimpath -tags="$tags" -o "$bindir/.$name-$version.tmp" "$module/$package")
    mv "$bindir/.$name-$version.tmp" "$bindir/$name-$version"
    echo "build-upstream: $name $version built in $(( $(date +%s) - start )) s" >&2
  done
done
