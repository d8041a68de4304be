//! glibc's malloc, tuned for tensors.
//!
//! libtorch allocates CPU tensors with plain `malloc`/`posix_memalign`. A
//! training step of the gated preset at batch 128 allocates and frees dozens
//! of activations of 25–51 MB each. With glibc's defaults every block above
//! the mmap threshold (at most 32 MB, adapted at run time) is a fresh
//! `mmap`, and each of its pages faults and is zeroed by the kernel on first
//! touch, every step; and the libuv worker threads that run this library's
//! tasks each get their own arena, so memory freed by one step is not reused
//! by the next one if it runs on another thread. Measured on the 2-core
//! development machine, the gated training step through Node took 9–11 s
//! with 31 s of system time over four steps and 6.4 GiB peak RSS; with large
//! blocks kept in one arena and reused (the settings below) 5.3–6.0 s with
//! 2.6 s of system time and 3.0 GiB (BENCHMARKS.md).
//!
//! So, once per process, before the first tensor work: one arena, an mmap
//! threshold of 1 GiB (blocks up to that size are recycled from the heap),
//! and no automatic trimming of the heap's top (which would hand the pages
//! back just before the next step asks for them). `release_free_memory`
//! returns what is free to the system when a long task ends, so a Node
//! process does not keep a training run's peak for its lifetime.
//!
//! `PIXELCNN_MALLOC=default` leaves glibc's settings alone (for users who
//! preload jemalloc or tcmalloc, or tune malloc themselves).

use std::sync::Once;

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    use std::os::raw::c_int;

    // <malloc.h>
    pub const M_TRIM_THRESHOLD: c_int = -1;
    pub const M_MMAP_THRESHOLD: c_int = -3;
    pub const M_ARENA_MAX: c_int = -8;

    extern "C" {
        pub fn mallopt(param: c_int, value: c_int) -> c_int;
        pub fn malloc_trim(pad: usize) -> c_int;
    }
}

static TUNED: Once = Once::new();

/// Applies the settings above once per process (no-op elsewhere than glibc,
/// or with `PIXELCNN_MALLOC=default`).
pub fn tune_for_tensors() {
    TUNED.call_once(|| {
        if std::env::var("PIXELCNN_MALLOC").is_ok_and(|v| v == "default") {
            return;
        }
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: mallopt only changes allocator parameters; it is thread-safe
        // in glibc (it takes the arena locks).
        unsafe {
            glibc::mallopt(glibc::M_ARENA_MAX, 1);
            glibc::mallopt(glibc::M_MMAP_THRESHOLD, 1 << 30);
            glibc::mallopt(glibc::M_TRIM_THRESHOLD, i32::MAX);
        }
    });
}

/// Hands the allocator's free pages back to the system.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim is thread-safe and only releases free memory.
    unsafe {
        glibc::malloc_trim(0);
    }
}

/// Calls `release_free_memory` when dropped: declared first in a long task,
/// it runs last, after the task's tensors are freed, on success and error alike.
pub struct ReleaseWhenDone;

impl Drop for ReleaseWhenDone {
    fn drop(&mut self) {
        release_free_memory();
    }
}
