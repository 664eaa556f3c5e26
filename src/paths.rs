//! Where abide keeps its files: the private runtime directory (socket, lock,
//! pid, log), the cache (per-host transport memory, resume points) and config.
//!
//! The runtime directory is where a local attacker would plant things (it is
//! often in /tmp), so it is checked, not repaired: it must be a real directory
//! (not a symlink), ours, mode 0700; and every file in it is opened with
//! `O_NOFOLLOW` (and `O_EXCL` where we create it), so a planted symlink is
//! refused instead of followed. See docs/security.md.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The per-user runtime directory, mode 0700. `ABIDE_RUNTIME_DIR` overrides it
/// (tests give every case its own); otherwise `$XDG_RUNTIME_DIR/abide-pN`, else
/// `/tmp/abide-$UID-pN`, N the protocol version: a daemon of another protocol
/// (left running by an older abide) keeps its own sessions and socket, and a
/// newer client starts a daemon it can speak to instead of failing on it.
pub fn runtime_dir() -> Result<PathBuf> {
    let dir = if let Some(d) = std::env::var_os("ABIDE_RUNTIME_DIR") {
        PathBuf::from(d)
    } else if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR").filter(|x| !x.is_empty()) {
        PathBuf::from(x).join(format!("abide-p{}", crate::proto::frame::PROTOCOL_VERSION))
    } else {
        std::env::temp_dir().join(format!(
            "abide-{}-p{}",
            nix::unistd::getuid(),
            crate::proto::frame::PROTOCOL_VERSION
        ))
    };
    ensure_runtime_dir(&dir)?;
    Ok(dir)
}

/// Creates `dir` with mode 0700 if it is missing; refuses an existing one
/// that is a symlink, not a directory, someone else's, or open to others.
pub fn ensure_runtime_dir(dir: &Path) -> Result<()> {
    if let Some(parent) = dir.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("cannot create {}", dir.display())),
    }
    let meta =
        std::fs::symlink_metadata(dir).with_context(|| format!("cannot stat {}", dir.display()))?;
    let d = dir.display();
    if meta.file_type().is_symlink() {
        bail!("the abide runtime directory {d} is a symbolic link; refusing to use it. Remove it (rm {d}) and run abide again");
    }
    if !meta.is_dir() {
        bail!("the abide runtime directory {d} is not a directory; refusing to use it. Remove it (rm {d}) and run abide again");
    }
    let uid = nix::unistd::getuid().as_raw();
    if meta.uid() != uid {
        bail!(
            "the abide runtime directory {d} belongs to uid {}, not to you (uid {uid}); refusing to use it. Set ABIDE_RUNTIME_DIR or XDG_RUNTIME_DIR to a directory of your own",
            meta.uid()
        );
    }
    if meta.mode() & 0o077 != 0 {
        bail!(
            "the abide runtime directory {d} has mode {:o}: others can reach it; refusing to use it. Make it private with: chmod 700 {d}",
            meta.mode() & 0o7777
        );
    }
    Ok(())
}

/// Opens (creating with mode 0600 if missing) a file in the runtime
/// directory: never through a symlink, and only a regular file of ours.
pub fn open_runtime_file(path: &Path, append: bool) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = std::fs::OpenOptions::new();
    o.create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    if append {
        o.append(true);
    } else {
        o.write(true).truncate(false);
    }
    let f = o.open(path).map_err(|e| refuse_planted(path, e))?;
    check_own_file(path, &f)?;
    Ok(f)
}

fn refuse_planted(path: &Path, e: std::io::Error) -> anyhow::Error {
    if e.raw_os_error() == Some(libc::ELOOP) {
        anyhow::anyhow!(
            "{} is a symbolic link; refusing to follow it (someone may have planted it). Remove it and run abide again",
            path.display()
        )
    } else {
        anyhow::Error::new(e).context(format!("cannot open {}", path.display()))
    }
}

fn check_own_file(path: &Path, f: &std::fs::File) -> Result<()> {
    let meta = f.metadata()?;
    if !meta.is_file() || meta.uid() != nix::unistd::getuid().as_raw() {
        bail!(
            "{} is not a regular file of yours; refusing to use it. Remove it and run abide again",
            path.display()
        );
    }
    Ok(())
}

/// Creates `dir` with mode 0700, or checks that an existing one is ours and
/// private: another user's directory in /tmp must never hold our socket.
pub fn ensure_private_dir(dir: &Path) -> Result<()> {
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => {}
        Err(e) => return Err(e).with_context(|| format!("cannot create {}", dir.display())),
    }
    let meta =
        std::fs::symlink_metadata(dir).with_context(|| format!("cannot stat {}", dir.display()))?;
    if !meta.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    let uid = nix::unistd::getuid().as_raw();
    if meta.uid() != uid {
        bail!(
            "{} belongs to uid {}, not to you (uid {uid}); refusing to use it",
            dir.display(),
            meta.uid()
        );
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot make {} private", dir.display()))?;
    }
    Ok(())
}

pub fn socket_path(rt: &Path) -> PathBuf {
    rt.join("daemon.sock")
}

pub fn lock_path(rt: &Path) -> PathBuf {
    rt.join("daemon.lock")
}

pub fn pid_path(rt: &Path) -> PathBuf {
    rt.join("daemon.pid")
}

pub fn log_path(rt: &Path) -> PathBuf {
    rt.join("daemon.log")
}

/// The previous log, kept once when `daemon.log` reaches its size cap.
pub fn old_log_path(rt: &Path) -> PathBuf {
    rt.join("daemon.log.1")
}

/// `~/.cache/abide` (or `ABIDE_CACHE_DIR`), created 0700 on demand.
pub fn cache_dir() -> Result<PathBuf> {
    let dir = match std::env::var_os("ABIDE_CACHE_DIR") {
        Some(d) => PathBuf::from(d),
        None => directories::ProjectDirs::from("", "", "abide")
            .map(|p| p.cache_dir().to_path_buf())
            .context("cannot find a home directory for the cache")?,
    };
    ensure_private_dir(&dir)?;
    Ok(dir)
}

/// `~/.config/abide/config.toml` (or `ABIDE_CONFIG`).
pub fn config_file() -> Option<PathBuf> {
    if let Some(f) = std::env::var_os("ABIDE_CONFIG") {
        return Some(PathBuf::from(f));
    }
    directories::ProjectDirs::from("", "", "abide").map(|p| p.config_dir().join("config.toml"))
}

/// Writes `contents` to `path` with mode 0600, atomically (temp file + rename).
/// The temp file is created exclusively and never through a symlink; the
/// rename replaces whatever `path` was (a symlink itself, not its target).
pub fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    // A temp file left by a crashed process of the same pid: ours to replace.
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .map_err(|e| refuse_planted(&tmp, e))?;
    f.write_all(contents)?;
    drop(f);
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}
