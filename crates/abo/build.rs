//! Lays out the release binary's code so that what a running master or worker executes sits
//! together: `symbol-order.txt` lists those functions (the master's, then the ones only the
//! worker runs; `scripts/symbol-order` records them), and the linker places them first.
//!
//! Why: the kernel maps a binary's code in blocks around each page touched (fault-around,
//! large page-cache folios), so code scattered over the 12.6 MB of `.text` made 10.5 MB of
//! it resident in a master idle with 2,000 builders, though it executes about 3.5 MB; placed
//! first, 3.8 MB is. Only layout changes: a name missing from the list (renamed, new) is
//! placed after the listed ones, as without a list.
//!
//! Only where the linker is rustc's default LLD (`--symbol-ordering-file` is an LLD option):
//! release builds for x86_64-unknown-linux-gnu with rustc 1.90 or later and no linker
//! chosen in RUSTFLAGS or cargo's environment.

use std::process::Command;

const ORDER_FILE: &str = "symbol-order.txt";

fn main() {
    println!("cargo::rerun-if-changed={ORDER_FILE}");
    for var in [
        "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER",
        "RUSTC_LINKER",
    ] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    if default_lld_links_release() {
        let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
        println!("cargo::rustc-link-arg-bin=abo=-Wl,--symbol-ordering-file={dir}/{ORDER_FILE}");
        // Names of another build's instances (other crate versions, generics) are expected.
        println!("cargo::rustc-link-arg-bin=abo=-Wl,--no-warn-symbol-ordering");
        // Relative relocations packed (DT_RELR): the loader reads every one at start, and
        // unpacked they are 730 KB of the binary, all resident; packed, a few KB. glibc
        // applies them from 2.36 on and refuses a binary that has them before, so only
        // where the building machine's glibc (the one the binary links against) has them.
        if glibc_at_least(2, 36) {
            println!("cargo::rustc-link-arg-bin=abo=-Wl,-z,pack-relative-relocs");
        }
    }
}

fn default_lld_links_release() -> bool {
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    var("PROFILE") == "release"
        && var("TARGET") == "x86_64-unknown-linux-gnu"
        && std::env::var_os("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER").is_none()
        && std::env::var_os("RUSTC_LINKER").is_none()
        && !var("CARGO_ENCODED_RUSTFLAGS").contains("link")
        && rustc_minor().is_some_and(|minor| minor >= 90)
}

/// Whether the building machine's glibc (`getconf GNU_LIBC_VERSION`: `glibc 2.36`) is at
/// least `major.minor`.
fn glibc_at_least(major: u32, minor: u32) -> bool {
    let Ok(out) = Command::new("getconf").arg("GNU_LIBC_VERSION").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(version) = text.trim().strip_prefix("glibc ") else {
        return false;
    };
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(a), Some(b)) => (a, b) >= (major, minor),
        _ => false,
    }
}

/// The minor version of the compiler building this crate (`1.N.x`).
fn rustc_minor() -> Option<u32> {
    let rustc = std::env::var_os("RUSTC")?;
    let out = Command::new(rustc).arg("--version").output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let version = text.split_whitespace().nth(1)?;
    let mut parts = version.split('.');
    match (parts.next(), parts.next()) {
        (Some("1"), Some(minor)) => minor.parse().ok(),
        _ => None,
    }
}
