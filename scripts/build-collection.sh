#!/usr/bin/env bash
# Build the Ansible collection tpv_broker.ops, install it into an empty collections path and
# syntax-check playbooks that use it by FQCN, with ansible-core plus the collections pinned in
# requirements.yml only (the Python packages' own copies of other collections are not looked at).
#
#   scripts/build-collection.sh [OUT]    # OUT (default build/collection): the tarball lands here
#
# The collection is assembled from collection/ (galaxy.yml, meta/, README.md), roles/ and
# playbooks/, with `version` from pyproject.toml: the project has one version. No Galaxy server
# is reachable from CI, so requirements.yml's collections are packed from the copies the `ansible`
# package ships, after checking that their versions are the pinned ones.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-build/collection}"
ANSIBLE_BIN="${ANSIBLE_BIN:-.venv-molecule/bin}"
PY="$ANSIBLE_BIN/python"

version="$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n1)"
[[ -n "$version" ]] || { echo "$0: no version in pyproject.toml" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
src="$work/src"
mkdir -p "$src/playbooks" "$OUT"
cp -r collection/. "$src/"
printf 'version: %s\n' "$version" >>"$src/galaxy.yml"
cp -r roles "$src/roles"
find "$src/roles" -depth -type d -name molecule -exec rm -rf {} +
cp playbooks/*.yml "$src/playbooks/"
cp LICENSE "$src/LICENSE"

rm -f "$OUT"/tpv_broker-ops-*.tar.gz
"$ANSIBLE_BIN/ansible-galaxy" collection build "$src" --output-path "$OUT" >/dev/null
artifact="$OUT/tpv_broker-ops-$version.tar.gz"
[[ -f "$artifact" ]] || { echo "$0: $artifact was not built" >&2; exit 1; }
echo "built $artifact"

# requirements.yml's collections as artifacts, from the tested Ansible's own copies.
mkdir -p "$work/deps"
"$PY" - "$work/deps" <<'PY'
import hashlib, io, json, pathlib, sys, tarfile, yaml
import ansible_collections
root = pathlib.Path(ansible_collections.__path__[0])
out = pathlib.Path(sys.argv[1])

def add_bytes(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, io.BytesIO(data))

for req in yaml.safe_load(open("requirements.yml"))["collections"]:
    ns, name = req["name"].split(".")
    coll = root / ns / name
    manifest = json.loads((coll / "MANIFEST.json").read_text())
    have = manifest["collection_info"]["version"]
    if have != str(req["version"]):
        sys.exit(f"requirements.yml pins {req['name']} {req['version']}, the tested Ansible has {have}")
    # The package ships a subset of the published files: list what is there (FILES.json).
    paths = [p for p in sorted(coll.rglob("*")) if "__pycache__" not in p.parts
             and p.name not in ("MANIFEST.json", "FILES.json")]
    files = [{"name": ".", "ftype": "dir", "chksum_type": None, "chksum_sha256": None, "format": 1}]
    for p in paths:
        rel = str(p.relative_to(coll))
        if p.is_dir():
            files.append({"name": rel, "ftype": "dir", "chksum_type": None, "chksum_sha256": None, "format": 1})
        else:
            files.append({"name": rel, "ftype": "file", "chksum_type": "sha256",
                          "chksum_sha256": hashlib.sha256(p.read_bytes()).hexdigest(), "format": 1})
    files_json = json.dumps({"files": files, "format": 1}).encode()
    manifest["file_manifest_file"]["chksum_sha256"] = hashlib.sha256(files_json).hexdigest()
    with tarfile.open(out / f"{ns}-{name}-{have}.tar.gz", "w:gz") as tar:
        add_bytes(tar, "MANIFEST.json", json.dumps(manifest).encode())
        add_bytes(tar, "FILES.json", files_json)
        for p in paths:
            tar.add(p, arcname=str(p.relative_to(coll)), recursive=False)
    print(f"packed {req['name']} {have}")
PY

# Without requirements.yml's collections the roles must not resolve (so the check below is real).
# No ansible.cfg of the checkout or the user: only what is set here.
: >"$work/ansible.cfg"
export ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false ANSIBLE_CONFIG="$work/ansible.cfg"
"$ANSIBLE_BIN/ansible-galaxy" collection install --offline --no-deps -p "$work/bare" "$artifact" >/dev/null
if ANSIBLE_COLLECTIONS_PATH="$work/bare" "$ANSIBLE_BIN/ansible-playbook" --syntax-check -i inventories/example \
    tests/collection/playbook.yml >"$work/bare.log" 2>&1; then
  echo "$0: the playbook passed without community.rabbitmq: the check would prove nothing" >&2; exit 1
fi
grep -q "community.rabbitmq" "$work/bare.log" || { cat "$work/bare.log" >&2; exit 1; }

# Into an empty path: the collection and its dependencies, offline, then the syntax checks.
"$ANSIBLE_BIN/ansible-galaxy" collection install --offline -p "$work/collections" "$artifact" "$work"/deps/*.tar.gz
export ANSIBLE_COLLECTIONS_PATH="$work/collections"
"$ANSIBLE_BIN/ansible-galaxy" collection list -p "$work/collections" --format yaml
"$ANSIBLE_BIN/ansible-playbook" --syntax-check -i inventories/example tests/collection/playbook.yml
"$ANSIBLE_BIN/ansible-playbook" --syntax-check -i inventories/example tpv_broker.ops.site
echo "collection tpv_broker.ops $version: built, installed with requirements.yml's collections, playbooks syntax-checked"
