//! Where abide keeps its files: the private runtime directory (socket, lock,
//! pid, log), the cache (per-host transport memory, resume points) and config.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The per-user runtime directory, mode 0700. `ABIDE_RUNTIME_DIR` overrides it
/// (tests give every case its own); otherwise `$XDG_RUNTIME_DIR/abide`, else
/// `/tmp/abide-$UID`.
pub fn runtime_dir() -> Result<PathBuf> {
    let dir = if let Some(d) = std::env::var_os("ABIDE_RUNTIME_DIR") {
        PathBuf::from(d)
    } else if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR").filter(|x| !x.is_empty()) {
        PathBuf::from(x).join("abide")
    } else {
        std::env::temp_dir().join(format!("abide-{}", nix::unistd::getuid()))
    };
    ensure_private_dir(&dir)?;
    Ok(dir)
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
pub fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(contents)?;
    drop(f);
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}
