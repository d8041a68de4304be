//! Test binaries of this crate link libtorch dynamically; torch-sys
//! only tells direct dependents where it lives (DEP_TCH_LIBTORCH_LIB), so the
//! rpath that lets them start without LD_LIBRARY_PATH is added here.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        for kind in ["tests"] {
            println!("cargo:rustc-link-arg-{kind}=-Wl,-rpath,{dir}");
        }
    }
}
