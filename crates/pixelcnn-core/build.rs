//! Two jobs:
//! - compile the crate's C++ parts (`cxx/`, libtorch APIs that tch does not
//!   wrap) against the headers of the libtorch that torch-sys found. torch-sys
//!   tells direct dependents only its library directory
//!   (DEP_TCH_LIBTORCH_LIB); the headers sit beside it in `../include`, both in
//!   a standalone libtorch and in the PyTorch wheel;
//! - add the rpath that lets this crate's test binaries start without
//!   LD_LIBRARY_PATH.
use std::path::PathBuf;

const SOURCES: &[&str] = &["cxx/cpu_block_cache.cpp", "cxx/process_group.cpp"];

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=PIXELCNN_CXX11_ABI");
    let lib_dir = PathBuf::from(
        std::env::var("DEP_TCH_LIBTORCH_LIB").expect("torch-sys did not report libtorch's library directory"),
    );
    for kind in ["tests", "examples"] {
        println!("cargo:rustc-link-arg-{kind}=-Wl,-rpath,{}", lib_dir.display());
    }

    let include = lib_dir.join("../include");
    // PyTorch wheels since 2.7 (and tch 0.24 needs 2.11) use the C++11 ABI.
    let abi = std::env::var("PIXELCNN_CXX11_ABI").unwrap_or_else(|_| "1".to_string());
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .std("c++17")
        .include(&include)
        // c10d's headers include torch/types.h from the C++ API's directory.
        .include(include.join("torch/csrc/api/include"))
        // Gloo's headers, which ProcessGroupGloo.hpp needs and the wheel does not ship.
        .include("cxx/vendor")
        .define("USE_C10D_GLOO", None)
        .define("_GLIBCXX_USE_CXX11_ABI", abi.as_str())
        .warnings(true)
        .flag_if_supported("-Wno-unused-parameter");
    for source in SOURCES {
        println!("cargo:rerun-if-changed={source}");
        build.file(source);
    }
    build.compile("pixelcnn_cxx");
    println!("cargo:rustc-link-search=native={}", lib_dir.display());
    println!("cargo:rerun-if-changed=cxx/vendor");
    for lib in ["torch_cpu", "c10"] {
        println!("cargo:rustc-link-lib={lib}");
    }
}
