//! Memory for tensors on the CPU.
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
//! with 31 s of system time over four steps and 6.4 GiB peak RSS
//! (BENCHMARKS.md).
//!
//! Two remedies, applied once per process before the first tensor work:
//! - a block cache (`cxx/cpu_block_cache.cpp`) registered as libtorch's CPU
//!   allocator: blocks of 1 MiB and more that a step frees are kept, paged
//!   in, for the next step, whichever thread it runs on (at most
//!   `PIXELCNN_CPU_CACHE_MB`, default 4096, cached at once);
//! - glibc tuned for the rest: at most four arenas per core, an mmap threshold
//!   of 1 GiB and no automatic trimming of the heap's top (which would hand
//!   the pages back just before the next step asks for them). The arena
//!   limit only reaches threads that had not allocated yet, which is why the
//!   cache is needed under Node. Not one arena: the fast samplers' threads
//!   allocate thousands of small tensors each per row, and in one arena they
//!   queue on its lock (`pixelcnn++-small`, 64 images in two threads: 4.4 s
//!   with one arena, 1.6 s with two; the seed network's 81: 0.64 against
//!   0.47 s; training steps the same, BENCHMARKS.md).
//!
//! `PIXELCNN_MALLOC_ARENAS=N` sets the arena limit (default: 4 per core, at least 8).
//!
//! `release_free_memory` empties the cache and returns what is free to the
//! system when a long task ends, so a Node process does not keep a training
//! run's peak for its lifetime.
//!
//! `PIXELCNN_CPU_CACHE=off` leaves libtorch's allocator alone and
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

mod block_cache {
    use std::os::raw::c_char;

    extern "C" {
        pub fn pixelcnn_cpu_cache_install(limit_bytes: usize, error: *mut c_char, error_len: usize) -> i32;
        pub fn pixelcnn_cpu_cache_release() -> usize;
        pub fn pixelcnn_cpu_cache_stats(hits: *mut u64, misses: *mut u64, cached_bytes: *mut u64);
    }
}

static TUNED: Once = Once::new();

/// Applies the settings above once per process.
pub fn tune_for_tensors() {
    TUNED.call_once(|| {
        install_block_cache();
        if std::env::var("PIXELCNN_MALLOC").is_ok_and(|v| v == "default") {
            return;
        }
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: mallopt only changes allocator parameters; it is thread-safe
        // in glibc (it takes the arena locks).
        unsafe {
            glibc::mallopt(glibc::M_ARENA_MAX, arena_limit());
            glibc::mallopt(glibc::M_MMAP_THRESHOLD, 1 << 30);
            glibc::mallopt(glibc::M_TRIM_THRESHOLD, i32::MAX);
        }
    });
}

/// `PIXELCNN_MALLOC_ARENAS`, or four arenas per core (at least 8). Not one
/// per core: every thread that allocates takes an arena, the release thread
/// and Node's workers too, and past the limit threads share them, so with
/// one per core the two sampler threads could land in the same arena and
/// queue again (`pixelcnn++-small` sampling after a `logProbs`: 1.8 s with 2
/// arenas, 0.96 s with 4).
fn arena_limit() -> std::os::raw::c_int {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let limit = std::env::var("PIXELCNN_MALLOC_ARENAS").ok().and_then(|v| v.parse::<usize>().ok()).filter(|&n| n >= 1).unwrap_or((4 * cores).max(8));
    limit.min(1024) as std::os::raw::c_int
}

fn install_block_cache() {
    if std::env::var("PIXELCNN_CPU_CACHE").is_ok_and(|v| v == "off") {
        return;
    }
    let limit_mb = std::env::var("PIXELCNN_CPU_CACHE_MB").ok().and_then(|v| v.parse::<usize>().ok()).unwrap_or(4096);
    let mut error = [0 as std::os::raw::c_char; 512];
    // SAFETY: the buffer outlives the call and its length is passed; the C++
    // side catches every exception.
    let status = unsafe { block_cache::pixelcnn_cpu_cache_install(limit_mb << 20, error.as_mut_ptr(), error.len()) };
    if status != 0 {
        // Not fatal: libtorch keeps its own allocator, only slower.
        let message = unsafe { std::ffi::CStr::from_ptr(error.as_ptr()) }.to_string_lossy();
        eprintln!("pixelcnn: CPU block cache not installed: {message}");
    }
}

/// What the block cache has done so far in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockCacheStats {
    /// Large allocations served from the cache.
    pub hits: u64,
    /// Large allocations that had to ask the system.
    pub misses: u64,
    /// Bytes held in the cache now, free for reuse.
    pub cached_bytes: u64,
}

pub fn block_cache_stats() -> BlockCacheStats {
    let (mut hits, mut misses, mut cached_bytes) = (0, 0, 0);
    // SAFETY: three valid out-pointers; the C++ side only writes them.
    unsafe { block_cache::pixelcnn_cpu_cache_stats(&mut hits, &mut misses, &mut cached_bytes) };
    BlockCacheStats { hits, misses, cached_bytes }
}

/// Empties the block cache and hands the allocator's free pages back to the system.
pub fn release_free_memory() {
    // SAFETY: takes the cache's lock; frees only blocks no tensor uses.
    unsafe {
        block_cache::pixelcnn_cpu_cache_release();
    }
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

/// For short calls (`predict`, `evaluate`, `logProbs`): hands free memory back
/// once no such call has run for `PIXELCNN_RELEASE_AFTER_MS` (default 1000),
/// not at the end of each call. Why: a call's activations were paged in again
/// by the next call, every call (page faults were about a tenth of a
/// `pixelcnn++-small` logProbs of 64: 0.52 s released after each call, 0.46 s
/// kept, BENCHMARKS.md), and scripts call these in loops. An idle process
/// still ends at its resting memory. Hold one for the whole call.
pub struct ReleaseWhenIdle(());

struct Idle {
    /// Short calls running now.
    running: usize,
    /// When to release, once nothing runs; `None`: nothing to release.
    deadline: Option<std::time::Instant>,
    started: bool,
}

static IDLE: std::sync::Mutex<Idle> = std::sync::Mutex::new(Idle { running: 0, deadline: None, started: false });
static IDLE_CHANGED: std::sync::Condvar = std::sync::Condvar::new();

fn release_delay() -> std::time::Duration {
    let ms = std::env::var("PIXELCNN_RELEASE_AFTER_MS").ok().and_then(|v| v.parse::<u64>().ok()).unwrap_or(1000);
    std::time::Duration::from_millis(ms)
}

impl ReleaseWhenIdle {
    pub fn start() -> Self {
        let mut idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
        idle.running += 1;
        ReleaseWhenIdle(())
    }
}

impl Drop for ReleaseWhenIdle {
    fn drop(&mut self) {
        let delay = release_delay();
        let mut idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
        idle.running -= 1;
        if delay.is_zero() {
            drop(idle);
            release_free_memory();
            return;
        }
        idle.deadline = Some(std::time::Instant::now() + delay);
        // One thread for the process, started at the first call; if it cannot
        // be started, release now as before.
        if !idle.started {
            idle.started = std::thread::Builder::new().name("pixelcnn-release".into()).spawn(release_when_due).is_ok();
            if !idle.started {
                idle.deadline = None;
                drop(idle);
                release_free_memory();
                return;
            }
        }
        IDLE_CHANGED.notify_one();
    }
}

/// The release thread: waits for a deadline with no short call running.
fn release_when_due() {
    let mut idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let now = std::time::Instant::now();
        idle = match idle.deadline {
            Some(due) if idle.running == 0 && now >= due => {
                idle.deadline = None;
                drop(idle);
                release_free_memory();
                IDLE.lock().unwrap_or_else(|e| e.into_inner())
            }
            Some(due) if idle.running == 0 => IDLE_CHANGED.wait_timeout(idle, due - now).unwrap_or_else(|e| e.into_inner()).0,
            _ => IDLE_CHANGED.wait(idle).unwrap_or_else(|e| e.into_inner()),
        };
    }
}
