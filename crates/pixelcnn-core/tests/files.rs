//! The core's file writes and reads against a hostile folder: links planted
//! where a temporary file or the target will be, files that are not files,
//! and files larger than their reader allows.

mod common;
use common::*;
use pixelcnn_core::checkpoint;
use pixelcnn_core::config::ModelConfig;
use pixelcnn_core::files::{check_writable, read_regular, write_atomic};
use pixelcnn_core::Error;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use tch::Device;

/// A fresh folder, removed with what it holds (FIFOs included) when dropped.
struct FreshDir(PathBuf);

impl std::ops::Deref for FreshDir {
    type Target = PathBuf;
    fn deref(&self) -> &PathBuf {
        &self.0
    }
}

impl Drop for FreshDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fresh_dir(name: &str) -> FreshDir {
    let dir = std::env::temp_dir().join(format!("pixelcnn-files-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    FreshDir(dir)
}

fn victim(dir: &Path) -> PathBuf {
    let v = dir.join("victim.txt");
    std::fs::write(&v, b"precious bytes").unwrap();
    v
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn a_link_planted_at_the_old_predictable_temporary_name_is_never_written_through() {
    let dir = fresh_dir("planted");
    let victim = victim(&dir);
    let target = dir.join("model.safetensors");
    // The names earlier versions used: `.<name>.<pid>.tmp` and the probe file.
    symlink(&victim, dir.join(format!(".model.safetensors.{}.tmp", std::process::id()))).unwrap();
    symlink(&victim, dir.join(format!(".pixelcnn-write-test.{}", std::process::id()))).unwrap();
    check_writable(&target).unwrap();
    let state = model(ModelConfig { height: 4, width: 4, filters: 4, residual_blocks: Some(1), ..ModelConfig::small() }, 1);
    checkpoint::save(&state, &target).unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious bytes");
    assert!(checkpoint::load(&target, Device::Cpu).is_ok());
    // Only the planted links, the victim and the checkpoint remain: no temporary is left behind.
    assert_eq!(names_in(&dir).len(), 4, "{:?}", names_in(&dir));
}

#[test]
fn temporaries_of_killed_writers_are_removed_and_live_ones_kept() {
    let dir = fresh_dir("stale");
    let target = dir.join("model.safetensors");
    // A pid that has ended: a child that ran and was waited for.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let stale = dir.join(format!(".model.safetensors.{dead}.Ab12Cd34Ef56.tmp"));
    let live = dir.join(".model.safetensors.1.Zz98Yy76Xx54.tmp"); // pid 1 runs
    let other = dir.join(format!(".other.bin.{dead}.Ab12Cd34Ef56.tmp")); // another target's
    for file in [&stale, &live, &other] {
        std::fs::write(file, b"partial").unwrap();
    }
    write_atomic(&target, b"whole").unwrap();
    assert!(!stale.exists(), "the dead writer's temporary is still there");
    assert!(live.exists() && other.exists());
    assert_eq!(std::fs::read(&target).unwrap(), b"whole");
}

#[test]
fn a_link_at_the_target_is_replaced_not_followed() {
    let dir = fresh_dir("target-link");
    let victim = victim(&dir);
    let target = dir.join("out.bin");
    symlink(&victim, &target).unwrap();
    write_atomic(&target, b"new contents").unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious bytes");
    assert!(std::fs::symlink_metadata(&target).unwrap().file_type().is_file());
    assert_eq!(std::fs::read(&target).unwrap(), b"new contents");
}

#[test]
fn a_replaced_file_keeps_its_permissions_and_a_new_one_follows_the_umask() {
    let dir = fresh_dir("mode");
    let target = dir.join("kept.bin");
    std::fs::write(&target, b"old").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).unwrap();
    write_atomic(&target, b"new").unwrap();
    assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o640);
    assert_eq!(std::fs::read(&target).unwrap(), b"new");
    let fresh = dir.join("fresh.bin");
    write_atomic(&fresh, b"x").unwrap();
    // 0o666 masked by the umask (0o022 or stricter): never the temporary file's 0o600 alone.
    let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
    assert!(mode & 0o600 == 0o600 && mode & 0o002 == 0, "mode {mode:o}");
}

#[test]
fn writes_into_missing_folders_or_onto_directories_fail_naming_the_path() {
    let dir = fresh_dir("bad-target");
    for (target, why) in [(dir.join("missing/model.safetensors"), "does not exist"), (dir.0.clone(), "is a directory")] {
        match write_atomic(&target, b"x") {
            Err(e @ Error::Io { .. }) => {
                let message = e.to_string();
                assert!(message.contains(&target.display().to_string()) && message.contains(why), "{message}");
            }
            other => panic!("{}: expected an Io error, got {other:?}", target.display()),
        }
        assert!(check_writable(&target).is_err());
    }
    assert_eq!(names_in(&dir), Vec::<String>::new());
}

#[test]
fn only_regular_files_are_read_and_reads_are_bounded() {
    let dir = fresh_dir("reads");
    let fifo = dir.join("fifo.safetensors");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let started = std::time::Instant::now();
    for (path, what) in [(fifo.as_path(), "FIFO"), (Path::new("/dev/zero"), "character device"), (dir.as_path(), "directory")] {
        let too_large = |n| Error::InvalidData(format!("{n} bytes"));
        let message = read_regular(path, 1 << 20, too_large).unwrap_err().to_string();
        assert!(message.contains(&path.display().to_string()) && message.contains(what), "{message}");
        let message = checkpoint::load(path, Device::Cpu).err().expect("refused").to_string();
        assert!(message.contains("not a regular file"), "{message}");
    }
    assert!(started.elapsed().as_secs() < 5, "refusals must not wait for a writer");
    // A link the user made to a regular file is followed.
    let real = dir.join("real.bin");
    std::fs::write(&real, vec![7u8; 100]).unwrap();
    symlink(&real, dir.join("link.bin")).unwrap();
    assert_eq!(read_regular(&dir.join("link.bin"), 100, |_| Error::InvalidData("too large".into())).unwrap().len(), 100);
    let refused = read_regular(&real, 99, |n| Error::InvalidData(format!("{n} bytes is too large"))).unwrap_err();
    assert!(refused.to_string().contains("100 bytes is too large"), "{refused}");
}
