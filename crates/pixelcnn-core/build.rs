//! Two jobs:
//! - compile the crate's C++ parts (`cxx/`, libtorch APIs that tch does not
//!   wrap) against the headers of the libtorch that torch-sys found. torch-sys
//!   tells direct dependents only its library directory
//!   (DEP_TCH_LIBTORCH_LIB); the headers sit beside it in `../include`, both in
//!   a standalone libtorch and in the PyTorch wheel;
//! - add the rpath that lets this crate's test binaries start without
//!   LD_LIBRARY_PATH;
//! - where the libtorch has CUDA and NCCL and every header is at hand, build
//!   the NCCL shim (`cxx/process_group_nccl.cpp`) into a shared library of its
//!   own, which the crate embeds and opens only when a group asks for NCCL
//!   (`cfg(pixelcnn_nccl)`, path in PIXELCNN_NCCL_SHIM). Anything missing
//!   (macOS, a CPU-only libtorch, CUDA headers not installed) leaves it out
//!   with a cargo warning and the reason in PIXELCNN_NCCL_MISSING, so the
//!   build itself never breaks.
use std::path::{Path, PathBuf};

const SOURCES: &[&str] = &["cxx/conv_relu.cpp", "cxx/cpu_block_cache.cpp", "cxx/cuda_capability.cpp", "cxx/fused_gate.cpp", "cxx/process_group.cpp"];

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=PIXELCNN_CXX11_ABI");
    let lib_dir = PathBuf::from(
        std::env::var("DEP_TCH_LIBTORCH_LIB").expect("torch-sys did not report libtorch's library directory"),
    );
    // For every binary this crate links itself: its unit tests (which
    // `rustc-link-arg-tests` does not reach), integration tests and examples.
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib_dir.display());

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
    println!("cargo:rerun-if-changed=cxx/guarded.hpp");
    println!("cargo:rerun-if-changed=cxx/rendezvous.hpp");
    for lib in ["torch_cpu", "c10"] {
        println!("cargo:rustc-link-lib={lib}");
    }

    println!("cargo::rustc-check-cfg=cfg(pixelcnn_nccl)");
    match build_nccl_shim(&lib_dir, &include, &abi) {
        Ok(shim) => {
            println!("cargo:rustc-cfg=pixelcnn_nccl");
            println!("cargo:rustc-env=PIXELCNN_NCCL_SHIM={}", shim.display());
        }
        Err(reason) => {
            // One line: cargo reads its directives line by line.
            let reason = reason.split_whitespace().collect::<Vec<_>>().join(" ");
            println!("cargo:warning=pixelcnn-core: the NCCL backend is left out of this build: {reason}");
            println!("cargo:rustc-env=PIXELCNN_NCCL_MISSING={reason}");
        }
    }
}

const NCCL_SOURCE: &str = "cxx/process_group_nccl.cpp";

/// Headers that compiling against ProcessGroupNCCL.hpp needs beyond
/// libtorch's own, and where they come from.
const CUDA_HEADERS: &[(&str, &str)] = &[
    ("nccl.h", "NCCL (the wheel's nvidia-nccl package)"),
    ("cuda_runtime_api.h", "the CUDA runtime (the wheel's nvidia-cuda-runtime package)"),
    ("crt/host_config.h", "the PyPI package nvidia-cuda-crt"),
    ("nv/target", "the PyPI package nvidia-cuda-cccl"),
];

/// Compiles and links the NCCL shim into OUT_DIR/libpixelcnn_nccl.so, or says
/// why it cannot be built here.
fn build_nccl_shim(lib_dir: &Path, include: &Path, abi: &str) -> Result<PathBuf, String> {
    println!("cargo:rerun-if-changed={NCCL_SOURCE}");
    println!("cargo:rerun-if-env-changed=PIXELCNN_NCCL");
    println!("cargo:rerun-if-env-changed=PIXELCNN_CUDA_INCLUDE");
    if std::env::var("PIXELCNN_NCCL").as_deref() == Ok("0") {
        return Err("PIXELCNN_NCCL=0".into());
    }
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os != "linux" {
        return Err(format!("NCCL is built on Linux only (target OS {os:?})"));
    }
    for lib in ["libtorch_cuda.so", "libc10_cuda.so"] {
        if !lib_dir.join(lib).exists() {
            return Err(format!("the libtorch in {} has no {lib} (a CPU-only build)", lib_dir.display()));
        }
    }
    if !include.join("torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp").exists() {
        return Err(format!("{} has no torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp", include.display()));
    }
    // PIXELCNN_CUDA_INCLUDE (':'-separated, e.g. /usr/local/cuda/include), then
    // the include directories of the wheel's nvidia/* packages beside torch/.
    let mut dirs: Vec<PathBuf> = std::env::var("PIXELCNN_CUDA_INCLUDE").unwrap_or_default().split(':').filter(|d| !d.is_empty()).map(PathBuf::from).collect();
    let nvidia = lib_dir.join("../../nvidia");
    if nvidia.is_dir() {
        // Headers installed later (setup-libtorch.sh) make the next build try again.
        println!("cargo:rerun-if-changed={}", nvidia.display());
    }
    if let Ok(entries) = std::fs::read_dir(&nvidia) {
        let mut found: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path().join("include")).filter(|d| d.is_dir()).collect();
        found.sort();
        dirs.extend(found);
    }
    let missing: Vec<String> = CUDA_HEADERS
        .iter()
        .filter(|(header, _)| !dirs.iter().any(|d| d.join(header).exists()))
        .map(|(header, from)| format!("{header} (from {from})"))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "missing CUDA headers: {} (looked in PIXELCNN_CUDA_INCLUDE and {}/*/include; scripts/setup-libtorch.sh installs the last two)",
            missing.join(", "),
            nvidia.display()
        ));
    }

    let mut build = cc::Build::new();
    build
        .cpp(true)
        .std("c++17")
        .pic(true)
        .include(include)
        .include(include.join("torch/csrc/api/include"))
        .includes(&dirs)
        .define("USE_C10D_NCCL", None)
        .define("_GLIBCXX_USE_CXX11_ABI", abi)
        .warnings(true)
        .flag_if_supported("-Wno-unused-parameter")
        // ProcessGroupNCCL.hpp's alignas(hardware_destructive_interference_size).
        .flag_if_supported("-Wno-interference-size")
        .file(NCCL_SOURCE);
    let objects = build.try_compile_intermediates().map_err(|e| format!("compiling {NCCL_SOURCE} failed: {e}"))?;
    let shim = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("libpixelcnn_nccl.so");
    let compiler = build.try_get_compiler().map_err(|e| format!("no C++ compiler: {e}"))?;
    let mut link = compiler.to_command();
    link.arg("-shared").arg("-o").arg(&shim).args(&objects);
    link.arg(format!("-L{}", lib_dir.display()))
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .args(["-Wl,-soname,libpixelcnn_nccl.so", "-Wl,-z,defs", "-Wl,--as-needed", "-s"])
        .args(["-ltorch_cuda", "-lc10_cuda", "-ltorch_cpu", "-lc10"]);
    let output = link.output().map_err(|e| format!("could not run the linker {link:?}: {e}"))?;
    if !output.status.success() {
        return Err(format!("linking {} failed: {}", shim.display(), String::from_utf8_lossy(&output.stderr).trim()));
    }
    Ok(shim)
}
