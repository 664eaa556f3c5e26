//! Where the user's ssh files are, found the way ssh finds them.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};

/// Overrides the home directory used for `~/.ssh`. For tests (a temporary
/// home) and unusual setups; normally the password database decides, as in ssh.
pub const HOME_OVERRIDE: &str = "ABIDE_SSH_HOME";

/// The home directory ssh uses: the password database entry of the current
/// user, not `$HOME` (ssh ignores `$HOME`, so `sudo -E` or a changed `$HOME`
/// would otherwise make us edit a file ssh never reads).
pub fn ssh_home() -> anyhow::Result<PathBuf> {
    if let Some(h) = std::env::var_os(HOME_OVERRIDE).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(h));
    }
    let uid = nix::unistd::getuid();
    let user = nix::unistd::User::from_uid(uid)
        .with_context(|| format!("looking up uid {uid} in the password database"))?
        .ok_or_else(|| anyhow!("uid {uid} has no entry in the password database"))?;
    Ok(user.dir)
}

/// The ssh config file to check and fix: `-F FILE` if given, else `~/.ssh/config`.
pub fn user_config(explicit: Option<&Path>, home: &Path) -> PathBuf {
    match explicit {
        Some(p) => p.to_path_buf(),
        None => home.join(".ssh").join("config"),
    }
}

/// `~/…` for paths under the home directory: shorter, and what users type.
pub fn display(path: &Path, home: &Path) -> String {
    match path.strip_prefix(home) {
        Ok(rest) if !rest.as_os_str().is_empty() => format!("~/{}", rest.display()),
        _ => path.display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_abbreviates_home_only() {
        let home = Path::new("/home/me");
        assert_eq!(
            display(Path::new("/home/me/.ssh/config"), home),
            "~/.ssh/config"
        );
        assert_eq!(display(Path::new("/home/meow/x"), home), "/home/meow/x");
        assert_eq!(
            display(Path::new("/etc/ssh/ssh_config"), home),
            "/etc/ssh/ssh_config"
        );
    }

    #[test]
    fn explicit_file_wins() {
        let home = Path::new("/home/me");
        assert_eq!(
            user_config(Some(Path::new("/tmp/c")), home),
            PathBuf::from("/tmp/c")
        );
        assert_eq!(
            user_config(None, home),
            PathBuf::from("/home/me/.ssh/config")
        );
    }
}
