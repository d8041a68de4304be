//! Links the addon so that it finds libtorch without LD_LIBRARY_PATH.
//!
//! torch-sys exports its library directory only to direct dependents, and puts
//! no rpath on a `cdylib`. `--no-as-needed -ltorch` keeps libtorch.so (which
//! pulls in libtorch_cuda.so on CUDA builds) in the addon's DT_NEEDED even
//! though no symbol of it is referenced directly: without it CUDA is silently
//! unavailable (tch-rs #907, #942).
fn main() {
    napi_build::setup();
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=PIXELCNN_RPATH");
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        // PIXELCNN_RPATH=0 leaves the rpath out (release builds, which find
        // libtorch at run time instead of at the build machine's path).
        if std::env::var("PIXELCNN_RPATH").as_deref() != Ok("0") {
            println!("cargo:rustc-link-arg-cdylib=-Wl,-rpath,{dir}");
        }
        println!("cargo:rustc-link-arg-cdylib=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg-cdylib=-L{dir}");
        println!("cargo:rustc-link-arg-cdylib=-ltorch");
        println!("cargo:rustc-link-arg-cdylib=-Wl,--as-needed");
    }
}
