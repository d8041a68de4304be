//! Data-parallel training's collectives: a process group of PyTorch's c10d
//! (`cxx/process_group.cpp`), the engine under torch.distributed, reached
//! through a narrow C interface. Gloo on the CPU; a rendezvous through a
//! TCPStore at the master's address and port, served by rank 0, as `torchrun`
//! sets it up (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE).
//!
//! Every failure of c10d (a rank that never joins, one that dies during a
//! collective, a timeout) comes back as `Error::Distributed` with c10d's
//! message, prefixed with this rank and the operation.

use crate::error::{Error, Result};
use std::ffi::{c_char, c_int, c_long, c_void, CStr, CString};
use std::time::Duration;
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

/// A joined Gloo process group.
pub struct ProcessGroup {
    raw: *mut RawGroup,
    rank: i64,
    world_size: i64,
}

// SAFETY: the C++ group is used from one thread at a time (`&mut self` for
// collectives); c10d's Gloo backend runs its own worker threads internally.
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
        let addr = CString::new(options.master_addr.clone()).map_err(|_| Error::config("distributed.masterAddr", "contains a NUL byte"))?;
        let mut raw = std::ptr::null_mut();
        let mut error = [0 as c_char; ERROR_LEN];
        // SAFETY: valid C string, out-pointer and buffer with its length; the C++ side catches every exception.
        let status = unsafe {
            pixelcnn_pg_new_gloo(
                addr.as_ptr(),
                options.master_port as c_int,
                options.rank as c_int,
                options.world_size as c_int,
                options.timeout.as_millis().min(c_long::MAX as u128) as c_long,
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
        Ok(ProcessGroup { raw, rank: options.rank, world_size: options.world_size })
    }

    pub fn rank(&self) -> i64 {
        self.rank
    }

    pub fn world_size(&self) -> i64 {
        self.world_size
    }

    fn check(&self, what: &str, tensor: &Tensor) -> Result<()> {
        if tensor.device() != Device::Cpu || !tensor.is_contiguous() {
            return Err(Error::Internal(format!("{what}: Gloo takes contiguous CPU tensors")));
        }
        Ok(())
    }

    fn call(&self, what: &str, status: c_int, error: &[c_char]) -> Result<()> {
        if status == 0 {
            return Ok(());
        }
        Err(Error::Distributed(format!("rank {} of {}: {what} failed: {}", self.rank, self.world_size, message(error))))
    }

    /// Replaces `tensor` on every rank with the sum over ranks.
    pub fn all_reduce_sum(&mut self, tensor: &mut Tensor) -> Result<()> {
        self.check("all-reduce", tensor)?;
        let mut error = [0 as c_char; ERROR_LEN];
        // SAFETY: tch's handle is an `at::Tensor*` that outlives the call; the C++ side catches every exception.
        let status = unsafe { pixelcnn_pg_allreduce_sum(self.raw, tensor.as_mut_ptr() as *mut c_void, error.as_mut_ptr(), ERROR_LEN) };
        self.call("all-reduce", status, &error)
    }

    /// Replaces `tensor` on every rank with rank `root`'s.
    pub fn broadcast(&mut self, tensor: &mut Tensor, root: i64) -> Result<()> {
        self.check("broadcast", tensor)?;
        let mut error = [0 as c_char; ERROR_LEN];
        // SAFETY: as for `all_reduce_sum`.
        let status = unsafe { pixelcnn_pg_broadcast(self.raw, tensor.as_mut_ptr() as *mut c_void, root as c_int, error.as_mut_ptr(), ERROR_LEN) };
        self.call("broadcast", status, &error)
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // SAFETY: `raw` came from pixelcnn_pg_new_gloo and is freed once.
        unsafe { pixelcnn_pg_free(self.raw) };
    }
}
