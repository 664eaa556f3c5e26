#!/bin/sh
# Builds the shipped abide: a static binary (musl) that runs on any Linux of
# its architecture whatever the host's C library, with the `dist` profile
# (whole-program LTO, no symbols). Also writes the completions and man page.
#
#   scripts/release.sh                               x86_64-unknown-linux-musl
#   scripts/release.sh aarch64-unknown-linux-musl    64-bit ARM (see below)
#
# Prerequisites, once:
#   rustup target add x86_64-unknown-linux-musl      (rustup ships musl's libc)
# For aarch64 from an x86_64 machine, a linker for the target as well:
#   rustup target add aarch64-unknown-linux-musl
#   apt-get install gcc-aarch64-linux-gnu             (or: cargo install cross; CARGO=cross)
#   export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=aarch64-linux-gnu-gcc
# ring compiles a little C and assembly: for aarch64 also
#   export CC_aarch64_unknown_linux_musl=aarch64-linux-gnu-gcc
#
# Output: dist/abide-VERSION-TARGET/{abide,abide.1,completions/,LICENSE-*,README.md}
# and a .tar.gz of it with its SHA-256. To let `abide HOST` install a build
# for another platform, copy its binary to
# ~/.local/share/abide/dist/<os>-<arch>/abide (e.g. linux-aarch64) on the client.
set -eu

target=${1:-x86_64-unknown-linux-musl}
cargo=${CARGO:-cargo}
cd "$(dirname "$0")/.."

if [ "$cargo" = cargo ] && command -v rustup >/dev/null 2>&1 &&
    ! rustup target list --installed | grep -qx "$target"; then
    echo "release.sh: the Rust target $target is not installed: rustup target add $target" >&2
    exit 1
fi

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
"$cargo" build --locked --profile dist --target "$target" --bin abide
bin="target/$target/dist/abide"

# Static means no interpreter: `file` says "statically linked" (or
# "static-pie linked"); refuse to ship anything else.
if command -v file >/dev/null 2>&1; then
    case $(file -b "$bin") in
    *static*) ;;
    *) echo "release.sh: $bin is not static: $(file -b "$bin")" >&2; exit 1 ;;
    esac
fi

out="dist/abide-$version-$target"
rm -rf "$out"
mkdir -p "$out/completions"
cp "$bin" "$out/abide"
cp LICENSE-MIT LICENSE-APACHE README.md "$out/"
# The completions and man page come from the clap definitions; any build of
# this version writes the same text, so the host's own build is used when
# the target cannot run here (cross builds).
gen="$bin"
"$gen" --version >/dev/null 2>&1 || { "$cargo" build --locked --release --bin abide; gen=target/release/abide; }
"$gen" man >"$out/abide.1"
for sh in bash zsh fish; do
    "$gen" completions "$sh" >"$out/completions/abide.$sh"
done

tar -C dist -czf "$out.tar.gz" "abide-$version-$target"
(cd dist && sha256sum "abide-$version-$target.tar.gz" >"abide-$version-$target.tar.gz.sha256")
size=$(wc -c <"$out/abide")
echo "release.sh: $out/abide ($size bytes), $out.tar.gz"
