//! Files the core writes and reads, done so that a hostile folder cannot turn
//! them against the user.
//!
//! Writing: the bytes go to a temporary file that is created exclusively
//! (`O_CREAT | O_EXCL`, which never follows a link planted at that name) under
//! an unpredictable name in the target's directory, are synced, and the file is
//! renamed over the target. The rename is atomic, so a crash leaves the old
//! file or the new one; a replaced file keeps its permission bits; a new file
//! gets the usual `0o666 & !umask`.
//!
//! Reading: the path is opened first (following the user's own links) without
//! blocking, and the opened file must be a regular file: a FIFO, a device such
//! as `/dev/zero` or a directory is refused before any byte is read. Reads are
//! bounded by the size the caller expects.

use crate::error::{Error, Result};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;

fn directory_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

fn io_error(kind: std::io::ErrorKind, message: String) -> std::io::Error {
    std::io::Error::new(kind, message)
}

/// The existing directory a file can be written to `path` in; `path` itself
/// must name a file there, not a directory.
fn target_directory(path: &Path) -> Result<&Path> {
    let dir = directory_of(path);
    if !dir.is_dir() {
        let why = if dir.exists() { "is not a directory" } else { "does not exist" };
        return Err(Error::io(path, io_error(std::io::ErrorKind::NotFound, format!("directory {} {why}", dir.display()))));
    }
    if path.file_name().is_none() || path.is_dir() {
        return Err(Error::io(path, io_error(std::io::ErrorKind::InvalidInput, "is a directory, not a file path".into())));
    }
    Ok(dir)
}

/// A fresh temporary file beside `path`, `.<name>.<pid>.<random>.tmp`,
/// created exclusively; removed again when dropped unless persisted. The pid
/// lets a later write remove what a killed writer left behind
/// (`remove_stale_temporaries`); the random part makes the name unpredictable.
fn exclusive_temporary(path: &Path, dir: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let prefix = format!(".{name}.{}.", std::process::id());
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp").rand_bytes(12);
    // The mode given to open(2) is masked by the umask, as for any new file;
    // tempfile's own default (0o600) would make every new checkpoint private.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder.tempfile_in(dir)
}

/// Fails with an `Io` error naming the path unless a file can be created beside it.
pub fn check_writable(path: &Path) -> Result<()> {
    let dir = target_directory(path)?;
    exclusive_temporary(path, dir).map(drop).map_err(|e| Error::io(path, e))
}

/// Writes `bytes` to `path` atomically: exclusive temporary file, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = target_directory(path)?;
    let result = (|| -> std::io::Result<()> {
        let mut tmp = exclusive_temporary(path, dir)?;
        keep_permissions_of(path, tmp.as_file())?;
        tmp.as_file_mut().write_all(bytes)?;
        tmp.as_file().sync_all()?;
        // rename(2) replaces a link at `path` itself rather than writing through it.
        tmp.persist(path).map_err(|e| e.error)?;
        // Persist the rename itself; not every filesystem allows syncing a directory.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        remove_stale_temporaries(path, dir);
        Ok(())
    })();
    result.map_err(|e| Error::io(path, e))
}

/// Temporary files for `path` whose writer is gone (killed mid-write) are
/// removed. Only names of the form `.<name>.<pid>.<random>.tmp` with a pid
/// that no longer runs count; unlinking removes a link, never what it points
/// to. Where /proc does not exist, nothing is removed.
fn remove_stale_temporaries(path: &Path, dir: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else { return };
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let prefix = format!(".{name}.");
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = file.strip_prefix(&prefix).and_then(|r| r.strip_suffix(".tmp")) else { continue };
        let Some(Ok(pid)) = rest.split_once('.').map(|(pid, _)| pid.parse::<u32>()) else { continue };
        if pid != std::process::id() && !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// A file being replaced keeps its permission bits (a checkpoint made
/// group-readable on purpose stays so). Only a regular file at `path` counts:
/// a link there is replaced, not consulted.
fn keep_permissions_of(path: &Path, tmp: &File) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        // The permission bits only: setuid, setgid and sticky are not carried over.
        #[cfg(unix)]
        Ok(old) if old.file_type().is_file() => {
            use std::os::unix::fs::PermissionsExt;
            tmp.set_permissions(std::fs::Permissions::from_mode(old.permissions().mode() & 0o777))
        }
        #[cfg(not(unix))]
        Ok(old) if old.file_type().is_file() => tmp.set_permissions(old.permissions()),
        _ => Ok(()),
    }
}

/// Opens `path` for reading; the opened file must be a regular file. Returns it with its size.
pub fn open_regular(path: &Path) -> Result<(File, u64)> {
    let mut options = OpenOptions::new();
    options.read(true);
    // Without O_NONBLOCK, opening a FIFO waits for a writer forever.
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(|e| Error::io(path, e))?;
    let metadata = file.metadata().map_err(|e| Error::io(path, e))?;
    if !metadata.file_type().is_file() {
        let what = describe_file_type(&metadata.file_type());
        return Err(Error::io(path, io_error(std::io::ErrorKind::InvalidInput, format!("is {what}, not a regular file"))));
    }
    Ok((file, metadata.len()))
}

fn describe_file_type(kind: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if kind.is_char_device() {
            return "a character device";
        }
        if kind.is_block_device() {
            return "a block device";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    if kind.is_dir() { "a directory" } else { "not a regular file" }
}

/// Reads a whole regular file of at most `max_bytes`; the buffer is reserved
/// fallibly, so a file larger than free memory is an error, not an abort.
pub fn read_regular(path: &Path, max_bytes: u64, too_large: impl FnOnce(u64) -> Error) -> Result<Vec<u8>> {
    let (file, size) = open_regular(path)?;
    if size > max_bytes {
        return Err(too_large(size));
    }
    let mut bytes = Vec::new();
    bytes.try_reserve_exact(size as usize).map_err(|_| {
        Error::Resource(format!("{}: reading it needs {} of memory, which could not be allocated", path.display(), crate::memory::human_bytes(size)))
    })?;
    // `take` bounds the read even if the file grows while it is being read.
    file.take(max_bytes + 1).read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}
