#!/usr/bin/env bash
# Packages the Splunk app: dist/cloudflare_network_analytics-<version>.tgz,
# one top-level folder, files 0644 and folders 0755 owned by root, nothing
# that Splunk writes at run time (local/, local.meta) and no editor or
# Python leftovers. The version is the crate's; app.conf must say the same.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
app=cloudflare_network_analytics
src="$root/splunk-app/$app"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n1)
for stanza in launcher id; do
  found=$(awk -v s="[$stanza]" '$0==s{on=1;next} /^\[/{on=0} on && $1=="version"{print $3}' "$src/default/app.conf")
  if [ "$found" != "$version" ]; then
    echo "package.sh: app.conf [$stanza] version is '$found', the crate's is '$version'" >&2
    exit 1
  fi
done
out="$root/dist/$app-$version.tgz"
mkdir -p "$root/dist"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp -R "$src" "$stage/$app"
find "$stage/$app" \( -name local -o -name local.meta -o -name '*.pyc' -o -name __pycache__ \
  -o -name '.*' -o -name '*~' -o -name '*.swp' \) -prune -exec rm -rf {} +
find "$stage/$app" -type d -exec chmod 0755 {} +
find "$stage/$app" -type f -exec chmod 0644 {} +
tar -C "$stage" --sort=name --owner=0 --group=0 --numeric-owner \
  --mtime="@${SOURCE_DATE_EPOCH:-0}" -czf "$out" "$app"
echo "$out"
