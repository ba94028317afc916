#!/usr/bin/env bash
# Builds the provider release the way the Terraform Registry and a filesystem mirror expect:
#
#   bash scripts/release.sh [OUT_DIR]          (default: dist/)
#
# OUT_DIR/
#   terraform-provider-bentocloud_VERSION_OS_ARCH.zip   (holds terraform-provider-bentocloud_vVERSION)
#   terraform-provider-bentocloud_VERSION_manifest.json (copy of terraform-registry-manifest.json)
#   terraform-provider-bentocloud_VERSION_SHA256SUMS    (zips + manifest)
#   mirror/registry.terraform.io/bentocloud/bentocloud/terraform-provider-bentocloud_VERSION_OS_ARCH.zip
#     (packed filesystem-mirror layout: `provider_installation { filesystem_mirror { path = "OUT_DIR/mirror" } }`)
#
# The provider package is built alone (`-p terraform-provider-bentocloud`: the control plane is
# another crate of the workspace, which the provider does not depend on). RELEASE_BINARY
# packages an existing binary instead of building one (the test suite uses it to package the
# debug build it already has).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="${1:-$ROOT/dist}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"

VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)"
case "$(uname -s)" in Linux) OS=linux ;; Darwin) OS=darwin ;; *) OS="$(uname -s | tr '[:upper:]' '[:lower:]')" ;; esac
case "$(uname -m)" in x86_64 | amd64) ARCH=amd64 ;; aarch64 | arm64) ARCH=arm64 ;; *) ARCH="$(uname -m)" ;; esac
NAME="terraform-provider-bentocloud"

if [ -n "${RELEASE_BINARY:-}" ]; then
    BIN="$RELEASE_BINARY"
else
    # The pinned Rust and protoc (scripts/setup.sh --for=build), checked before cargo runs.
    # shellcheck source=scripts/setup.sh
    source "$ROOT/scripts/setup.sh" --for=build
    echo "building $NAME $VERSION (profile dist, no control plane)..." >&2
    cargo build -p "$NAME" --profile dist --bin "$NAME"
    BIN="$ROOT/target/dist/$NAME"
fi
[ -x "$BIN" ] || { echo "error: no provider binary at $BIN" >&2; exit 1; }

python3 - "$BIN" "$OUT" "$NAME" "$VERSION" "$OS" "$ARCH" "$ROOT/terraform-registry-manifest.json" <<'PY'
import hashlib, os, shutil, sys, zipfile
bin_path, out, name, version, os_, arch, manifest = sys.argv[1:]
zip_name = f"{name}_{version}_{os_}_{arch}.zip"
zip_path = os.path.join(out, zip_name)
info = zipfile.ZipInfo(f"{name}_v{version}", date_time=(2020, 1, 1, 0, 0, 0))
info.external_attr = 0o755 << 16
info.compress_type = zipfile.ZIP_DEFLATED
with open(bin_path, "rb") as f, zipfile.ZipFile(zip_path, "w") as z:
    z.writestr(info, f.read())
manifest_name = f"{name}_{version}_manifest.json"
shutil.copyfile(manifest, os.path.join(out, manifest_name))
sums = []
for fname in (zip_name, manifest_name):
    with open(os.path.join(out, fname), "rb") as f:
        sums.append(f"{hashlib.sha256(f.read()).hexdigest()}  {fname}\n")
with open(os.path.join(out, f"{name}_{version}_SHA256SUMS"), "w") as f:
    f.writelines(sums)
mirror = os.path.join(out, "mirror", "registry.terraform.io", "bentocloud", "bentocloud")
os.makedirs(mirror, exist_ok=True)
shutil.copyfile(zip_path, os.path.join(mirror, zip_name))
print(zip_path)
PY
echo "release files in $OUT (filesystem mirror: $OUT/mirror)" >&2
