//! Data-parallel training's collectives: a process group of PyTorch's c10d,
//! the engine under torch.distributed, reached through a narrow C interface.
//! Gloo on the CPU (`cxx/process_group.cpp`, linked in); NCCL between CUDA
//! devices (`cxx/process_group_nccl.cpp`), built where the libtorch has CUDA
//! (build.rs, `cfg(pixelcnn_nccl)`) into a shared library of its own that is
//! embedded here and opened on first use, so that the crate never depends on
//! libtorch_cuda.so unless a group asks for NCCL. A rendezvous through a
//! TCPStore at the master's address and port, served by rank 0, as `torchrun`
//! sets it up (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE).
//!
//! Every failure of c10d (a rank that never joins, one that dies during a
//! collective, a timeout) comes back as `Error::Distributed` with c10d's
//! message, prefixed with this rank and the operation; NCCL asked for where
//! there is no GPU or no NCCL is `Error::DeviceUnavailable`.

use crate::error::{Error, Result};
use std::ffi::{c_char, c_int, c_long, c_void, CStr, CString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tch::{Device, Tensor};

#[repr(C)]
struct RawGroup {
    _private: [u8; 0],
}

extern "C" {
    fn pixelcnn_pg_new_gloo(
        master_addr: *const c_char,
        master_port: c_int,
        rank: c_int,
        world_size: c_int,
        timeout_ms: c_long,
        out: *mut *mut RawGroup,
        error: *mut c_char,
        error_len: usize,
    ) -> c_int;
    fn pixelcnn_pg_allreduce_sum(group: *mut RawGroup, tensor: *mut c_void, error: *mut c_char, error_len: usize) -> c_int;
    fn pixelcnn_pg_broadcast(group: *mut RawGroup, tensor: *mut c_void, root: c_int, error: *mut c_char, error_len: usize) -> c_int;
    fn pixelcnn_pg_free(group: *mut RawGroup);
}

/// The NCCL shim's entry points, from the embedded shared library.
#[cfg(pixelcnn_nccl)]
mod nccl_shim {
    use super::RawGroup;
    use std::ffi::{c_char, c_int, c_long, c_uint, c_void, CStr, CString};
    use std::io::Write;
    use std::os::fd::FromRawFd;
    use std::sync::OnceLock;

    /// libpixelcnn_nccl.so as build.rs linked it (about 64 KB).
    static SHIM: &[u8] = include_bytes!(env!("PIXELCNN_NCCL_SHIM"));

    extern "C" {
        fn memfd_create(name: *const c_char, flags: c_uint) -> c_int;
        fn dlopen(file: *const c_char, mode: c_int) -> *mut c_void;
        fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
        fn dlerror() -> *mut c_char;
    }
    const MFD_CLOEXEC: c_uint = 1;
    const RTLD_NOW: c_int = 2;

    pub type New = unsafe extern "C" fn(*const c_char, c_int, c_int, c_int, c_long, c_int, *mut *mut RawGroup, *mut c_char, usize) -> c_int;
    pub type AllReduce = unsafe extern "C" fn(*mut RawGroup, *mut c_void, *mut c_char, usize) -> c_int;
    pub type Broadcast = unsafe extern "C" fn(*mut RawGroup, *mut c_void, c_int, *mut c_char, usize) -> c_int;
    pub type Free = unsafe extern "C" fn(*mut RawGroup);

    pub struct Api {
        pub new: New,
        pub all_reduce_sum: AllReduce,
        pub broadcast: Broadcast,
        pub free: Free,
    }

    /// Opens the shim once per process: its libtorch_cuda.so and libc10_cuda.so
    /// resolve by soname to the ones libtorch.so already loaded, or through the
    /// shim's rpath. Fails (e.g. a CPU-only libtorch at run time) with dlopen's reason.
    pub fn api() -> Result<&'static Api, String> {
        static API: OnceLock<Result<Api, String>> = OnceLock::new();
        API.get_or_init(load).as_ref().map_err(Clone::clone)
    }

    fn last_dl_error() -> String {
        // SAFETY: dlerror returns NULL or a NUL-terminated string valid until the next dl* call.
        let e = unsafe { dlerror() };
        if e.is_null() { "unknown dlopen error".into() } else { unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned() }
    }

    fn load() -> Result<Api, String> {
        // SAFETY: a valid C string; the returned descriptor is owned by `file` below.
        let fd = unsafe { memfd_create(c"pixelcnn_nccl".as_ptr(), MFD_CLOEXEC) };
        if fd < 0 {
            return Err(format!("memfd_create failed: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
        file.write_all(SHIM).map_err(|e| format!("writing the NCCL shim to a memfd: {e}"))?;
        let path = CString::new(format!("/proc/self/fd/{fd}")).expect("no NUL in a path of digits");
        // SAFETY: a valid path; the library stays mapped after the descriptor closes.
        let handle = unsafe { dlopen(path.as_ptr(), RTLD_NOW) };
        drop(file);
        if handle.is_null() {
            return Err(last_dl_error());
        }
        let symbol = |name: &CStr| -> Result<*mut c_void, String> {
            // SAFETY: a handle from dlopen and a valid C string.
            let p = unsafe { dlsym(handle, name.as_ptr()) };
            if p.is_null() { Err(format!("the NCCL shim has no {name:?}: {}", last_dl_error())) } else { Ok(p) }
        };
        // SAFETY: each symbol is the extern "C" function of cxx/process_group_nccl.cpp with this signature.
        unsafe {
            Ok(Api {
                new: std::mem::transmute::<*mut c_void, New>(symbol(c"pixelcnn_nccl_new")?),
                all_reduce_sum: std::mem::transmute::<*mut c_void, AllReduce>(symbol(c"pixelcnn_nccl_allreduce_sum")?),
                broadcast: std::mem::transmute::<*mut c_void, Broadcast>(symbol(c"pixelcnn_nccl_broadcast")?),
                free: std::mem::transmute::<*mut c_void, Free>(symbol(c"pixelcnn_nccl_free")?),
            })
        }
    }
}

/// Whether this build has the NCCL backend, and if not, why (build.rs's reason).
pub fn nccl_built() -> std::result::Result<(), &'static str> {
    #[cfg(pixelcnn_nccl)]
    return Ok(());
    #[cfg(not(pixelcnn_nccl))]
    return Err(env!("PIXELCNN_NCCL_MISSING"));
}

/// Where and how to rendezvous.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupOptions {
    pub rank: i64,
    pub world_size: i64,
    pub master_addr: String,
    pub master_port: i64,
    /// For the rendezvous and for each collective.
    pub timeout: Duration,
}

impl GroupOptions {
    pub fn validate(&self) -> Result<()> {
        if self.world_size < 1 {
            return Err(Error::config("distributed.worldSize", format!("must be at least 1, got {}", self.world_size)));
        }
        if self.rank < 0 || self.rank >= self.world_size {
            return Err(Error::config("distributed.rank", format!("must be between 0 and worldSize − 1 = {}, got {}", self.world_size - 1, self.rank)));
        }
        if !(1..=65535).contains(&self.master_port) {
            return Err(Error::config("distributed.masterPort", format!("must be a port between 1 and 65535, got {}", self.master_port)));
        }
        if self.master_addr.is_empty() || self.master_addr.contains('\0') {
            return Err(Error::config("distributed.masterAddr", format!("must be a host name or address, got {:?}", self.master_addr)));
        }
        Ok(())
    }
}

/// Which c10d backend a group runs, with its C handle.
enum Raw {
    Gloo(*mut RawGroup),
    #[cfg(pixelcnn_nccl)]
    Nccl(*mut RawGroup, &'static nccl_shim::Api, Device),
}

/// A joined process group: Gloo (CPU tensors) or NCCL (tensors on this
/// rank's CUDA device).
pub struct ProcessGroup {
    raw: Raw,
    rank: i64,
    world_size: i64,
}

// SAFETY: the C++ group is used from one thread at a time (`&mut self` for
// collectives); c10d's backends run their own worker threads internally.
unsafe impl Send for ProcessGroup {}

const ERROR_LEN: usize = 2048;

fn message(buffer: &[c_char]) -> String {
    // SAFETY: the C++ side always NUL-terminates what it writes (snprintf), and the buffer starts zeroed.
    unsafe { CStr::from_ptr(buffer.as_ptr()) }.to_string_lossy().into_owned()
}

impl ProcessGroup {
    /// Joins the group (rank 0 creates the rendezvous); blocks until all
    /// `world_size` ranks have joined or the timeout passes.
    pub fn gloo(options: &GroupOptions) -> Result<Self> {
        options.validate()?;
        let addr = c_addr(options)?;
        let mut raw = std::ptr::null_mut();
        let mut error = [0 as c_char; ERROR_LEN];
        // SAFETY: valid C string, out-pointer and buffer with its length; the C++ side catches every exception.
        let status = unsafe {
            pixelcnn_pg_new_gloo(
                addr.as_ptr(),
                options.master_port as c_int,
                options.rank as c_int,
                options.world_size as c_int,
                timeout_ms(options),
                &mut raw,
                error.as_mut_ptr(),
                ERROR_LEN,
            )
        };
        if status != 0 || raw.is_null() {
            return Err(Error::Distributed(format!(
                "rank {} of {} could not join the group at {}:{}: {}",
                options.rank, options.world_size, options.master_addr, options.master_port, message(&error)
            )));
        }
        Ok(ProcessGroup { raw: Raw::Gloo(raw), rank: options.rank, world_size: options.world_size })
    }

    /// Joins an NCCL group whose collectives run on `device` (this rank's GPU,
    /// `Device::Cuda(i)`; one GPU per rank: NCCL refuses two ranks on one).
    /// A build without the NCCL shim, a libtorch without CUDA at run time, or
    /// a machine without a GPU is `Error::DeviceUnavailable`; a failed
    /// rendezvous is `Error::Distributed`, as for Gloo.
    pub fn nccl(options: &GroupOptions, device: Device) -> Result<Self> {
        options.validate()?;
        let Device::Cuda(index) = device else {
            return Err(Error::DeviceUnavailable(format!("distributed.backend \"nccl\" runs on a CUDA device, got {device:?}; use \"gloo\" on the CPU")));
        };
        #[cfg(not(pixelcnn_nccl))]
        {
            let _ = index;
            Err(Error::DeviceUnavailable(format!(
                "distributed.backend \"nccl\": this build of pixelcnn has no NCCL ({}); use \"gloo\"",
                env!("PIXELCNN_NCCL_MISSING")
            )))
        }
        #[cfg(pixelcnn_nccl)]
        {
            let api = nccl_shim::api().map_err(|e| {
                Error::DeviceUnavailable(format!("distributed.backend \"nccl\": could not load the NCCL shim (does this libtorch have CUDA?): {e}"))
            })?;
            let addr = c_addr(options)?;
            let mut raw = std::ptr::null_mut();
            let mut error = [0 as c_char; ERROR_LEN];
            // SAFETY: as for `gloo`; the shim catches every exception.
            let status = unsafe {
                (api.new)(
                    addr.as_ptr(),
                    options.master_port as c_int,
                    options.rank as c_int,
                    options.world_size as c_int,
                    timeout_ms(options),
                    index as c_int,
                    &mut raw,
                    error.as_mut_ptr(),
                    ERROR_LEN,
                )
            };
            if status != 0 || raw.is_null() {
                let reason = message(&error);
                let (rank, world) = (options.rank, options.world_size);
                // c10d's constructor says "no GPUs found" on a machine without one.
                if !tch::Cuda::is_available() {
                    return Err(Error::DeviceUnavailable(format!("distributed.backend \"nccl\": rank {rank} of {world}: libtorch sees no CUDA device: {reason}")));
                }
                return Err(Error::Distributed(format!(
                    "rank {rank} of {world} could not join the NCCL group at {}:{} on cuda:{index}: {reason}",
                    options.master_addr, options.master_port
                )));
            }
            Ok(ProcessGroup { raw: Raw::Nccl(raw, api, device), rank: options.rank, world_size: options.world_size })
        }
    }

    pub fn rank(&self) -> i64 {
        self.rank
    }

    pub fn world_size(&self) -> i64 {
        self.world_size
    }

    /// Where this group's collectives take their tensors: the CPU for Gloo,
    /// this rank's GPU for NCCL.
    pub fn device(&self) -> Device {
        match self.raw {
            Raw::Gloo(_) => Device::Cpu,
            #[cfg(pixelcnn_nccl)]
            Raw::Nccl(_, _, device) => device,
        }
    }

    pub fn backend_name(&self) -> &'static str {
        match self.raw {
            Raw::Gloo(_) => "gloo",
            #[cfg(pixelcnn_nccl)]
            Raw::Nccl(..) => "nccl",
        }
    }

    fn check(&self, what: &str, tensor: &Tensor) -> Result<()> {
        if tensor.device() != self.device() || !tensor.is_contiguous() {
            return Err(Error::Internal(format!(
                "{what}: {} takes contiguous tensors on {:?}, got one on {:?}",
                self.backend_name(),
                self.device(),
                tensor.device()
            )));
        }
        Ok(())
    }

    fn call(&self, what: &str, status: c_int, error: &[c_char]) -> Result<()> {
        if status == 0 {
            return Ok(());
        }
        // A rank that fails or is aborted leaves the group at once (see
        // `train::fit`), so this is also how an abort on one rank reaches the others.
        Err(Error::Distributed(format!(
            "rank {} of {}: {what} failed: {} (another rank may have left the group: it failed, was aborted or exited)",
            self.rank,
            self.world_size,
            message(error)
        )))
    }

    /// Replaces `tensor` on every rank with the sum over ranks.
    pub fn all_reduce_sum(&mut self, tensor: &mut Tensor) -> Result<()> {
        self.check("all-reduce", tensor)?;
        let mut error = [0 as c_char; ERROR_LEN];
        let handle = tensor.as_mut_ptr() as *mut c_void;
        // SAFETY: tch's handle is an `at::Tensor*` that outlives the call; the C++ side catches every exception.
        let status = unsafe {
            match self.raw {
                Raw::Gloo(raw) => pixelcnn_pg_allreduce_sum(raw, handle, error.as_mut_ptr(), ERROR_LEN),
                #[cfg(pixelcnn_nccl)]
                Raw::Nccl(raw, api, _) => (api.all_reduce_sum)(raw, handle, error.as_mut_ptr(), ERROR_LEN),
            }
        };
        self.call("all-reduce", status, &error)
    }

    /// Replaces `tensor` on every rank with rank `root`'s.
    pub fn broadcast(&mut self, tensor: &mut Tensor, root: i64) -> Result<()> {
        self.check("broadcast", tensor)?;
        let mut error = [0 as c_char; ERROR_LEN];
        let handle = tensor.as_mut_ptr() as *mut c_void;
        // SAFETY: as for `all_reduce_sum`.
        let status = unsafe {
            match self.raw {
                Raw::Gloo(raw) => pixelcnn_pg_broadcast(raw, handle, root as c_int, error.as_mut_ptr(), ERROR_LEN),
                #[cfg(pixelcnn_nccl)]
                Raw::Nccl(raw, api, _) => (api.broadcast)(raw, handle, root as c_int, error.as_mut_ptr(), ERROR_LEN),
            }
        };
        self.call("broadcast", status, &error)
    }
}

/// Time c10d gets beyond the group's timeout to report its own, more precise, error.
const JOIN_GRACE: Duration = Duration::from_secs(2);

/// Runs `join` (one of the constructors above) on a thread of its own and
/// waits for it at most the group's timeout, watching `cancel`.
///
/// c10d's TCPStore client waits without any deadline for a server that
/// accepts the connection but never answers (a wrong port, a firewall that
/// holds connections open), and nothing can interrupt a thread blocked in it.
/// So the caller does not wait there: on the deadline it gets
/// `Error::Distributed`, on an abort `Error::Aborted`, and the joining thread
/// is left to end on its own; if it ever gets a group, nobody receives it and
/// dropping it leaves the group.
pub fn join_within_deadline(
    options: &GroupOptions,
    cancel: &AtomicBool,
    join: impl FnOnce() -> Result<ProcessGroup> + Send + 'static,
) -> Result<ProcessGroup> {
    options.validate()?;
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("pixelcnn-join".into())
        .spawn(move || {
            let joined = std::panic::catch_unwind(std::panic::AssertUnwindSafe(join))
                .unwrap_or_else(|_| Err(Error::Internal("joining the process group panicked".into())));
            // Fails only when the caller stopped waiting; the group is then dropped here.
            let _ = sender.send(joined);
        })
        .map_err(|e| Error::Internal(format!("could not start a thread to join the group: {e}")))?;
    let deadline = Instant::now() + options.timeout + JOIN_GRACE;
    let place = format!("rank {} of {} joining the group at {}:{}", options.rank, options.world_size, options.master_addr, options.master_port);
    loop {
        match receiver.recv_timeout(Duration::from_millis(25)) {
            Ok(joined) => return joined,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return Err(Error::Internal(format!("{place}: the joining thread ended without a result"))),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Aborted(format!("{place}: aborted before the group was complete")));
        }
        if Instant::now() >= deadline {
            return Err(Error::Distributed(format!(
                "{place}: no complete rendezvous within the timeout of {:.1} s (is something else listening at that address and port, or did a rank not start?)",
                options.timeout.as_secs_f64()
            )));
        }
    }
}

fn c_addr(options: &GroupOptions) -> Result<CString> {
    CString::new(options.master_addr.clone()).map_err(|_| Error::config("distributed.masterAddr", "contains a NUL byte"))
}

fn timeout_ms(options: &GroupOptions) -> c_long {
    options.timeout.as_millis().min(c_long::MAX as u128) as c_long
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // SAFETY: `raw` came from its backend's constructor and is freed once.
        match self.raw {
            Raw::Gloo(raw) => unsafe { pixelcnn_pg_free(raw) },
            #[cfg(pixelcnn_nccl)]
            Raw::Nccl(raw, api, _) => unsafe { (api.free)(raw) },
        }
    }
}
