//! Link options for the `hactl` binary only (the library and its dependencies are built as usual).

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        // Packed relative relocations (DT_RELR, glibc >= 2.36, binutils >= 2.38): the position-independent binary
        // has ~28,500 R_X86_64_RELATIVE entries, 670 KB of `.rela.dyn` that the dynamic loader reads whole at every
        // start, so they stay resident in the daemon and again in its fencer. Packed, they take a few KB. A linker
        // too old for the option ignores it with a warning.
        println!("cargo:rustc-link-arg-bin=hactl=-Wl,-z,pack-relative-relocs");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
