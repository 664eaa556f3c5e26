//! Self-deploy over ssh: the wire format between the client and the small POSIX
//! sh script that runs on a host which may have no abide yet, and the client's
//! decision of what to upload.
//!
//! The whole exchange rides on the one ssh connection of the bootstrap:
//! 1. the client runs [`remote_command`]: the script with the version, the
//!    protocol and the bootstrap's arguments;
//! 2. if `~/.local/share/abide/bin/<version>/abide` exists (or an `abide` on
//!    the PATH speaks the same protocol) the script says [`Reply::Using`] and
//!    execs it: no extra round trip;
//! 3. otherwise it says [`Reply::Need`] with `uname -s`/`uname -m` and reads an
//!    [`upload_header`] and the binary from stdin, checks its SHA-256, runs it
//!    once (`--version`: catches noexec homes and a foreign libc), renames it
//!    into place and execs it. Failures are [`Reply::Failed`], typed.
//!
//! Concurrent first connects each write their own temporary file and rename it
//! over the same name: the rename is atomic and the contents are identical, so
//! whoever wins, the file in place is complete and verified.

/// Where deployed binaries live, relative to the remote home directory.
pub const DEPLOY_DIR: &str = ".local/share/abide/bin";

/// How many versions the script keeps in [`DEPLOY_DIR`] (the newest ones).
pub const KEEP_VERSIONS: usize = 2;

const TAG_NEED: &str = "ABIDE-DEPLOY-NEED";
const TAG_USING: &str = "ABIDE-DEPLOY-USING";
const TAG_FAIL: &str = "ABIDE-DEPLOY-FAIL";
const TAG_UPLOAD: &str = "ABIDE-UPLOAD";

/// The largest binary the client will send (a generous bound: a release build
/// is a few MB, a debug build about 130 MB).
pub const MAX_UPLOAD: u64 = 512 << 20;

/// The remote side. Each line ends where sh allows a `;`-free join, so the
/// script is sent as one line: csh/tcsh login shells reject newlines inside
/// quotes, and ssh hands the command to the login shell, which runs `sh -c`.
/// $1 version, $2 protocol, the rest: arguments for abide.
const SCRIPT: &str = r#"
v=$1; p=$2; shift 2;
d="${HOME:?}/.local/share/abide/bin/$v"; b="$d/abide";
if [ -x "$b" ]; then echo "ABIDE-DEPLOY-USING $b"; exec "$b" "$@"; fi;
a=$(command -v abide 2>/dev/null) || a=;
if [ -n "$a" ]; then case $("$a" --version 2>/dev/null) in *"(protocol $p)"*) echo "ABIDE-DEPLOY-USING $a"; exec "$a" "$@";; esac; fi;
f() { echo "ABIDE-DEPLOY-FAIL $*"; exit 3; };
echo "ABIDE-DEPLOY-NEED $(uname -s) $(uname -m)";
read -r h n s || f noupload;
[ "$h" = ABIDE-UPLOAD ] || f noupload;
case $n in ''|*[!0-9]*) f noupload;; esac;
umask 077; mkdir -p "$d" || f write "cannot create $d";
t="$d/.abide-$$.part"; trap 'rm -f "$t"' EXIT; trap 'exit 1' HUP INT TERM;
head -c "$n" >"$t" || f write "cannot write $t";
x=; for c in sha256sum "shasum -a 256" "openssl dgst -sha256 -r"; do x=$($c <"$t" 2>/dev/null) && break; x=; done;
x=${x%% *}; [ -n "$x" ] || f nohash;
[ "$x" = "$s" ] || f badsum "$x";
chmod 700 "$t" || f write "cannot chmod $t";
o=$("$t" --version 2>&1 | head -n 3 | tr '\n' ' ');
case $o in *"(protocol $p)"*) ;; *) f norun "$o";; esac;
mv -f "$t" "$b" || f write "cannot rename into $b";
(cd "$d/.." && ls -t | tail -n +3 | while read -r o; do [ "$o" = "$v" ] || rm -rf "./$o"; done);
echo "ABIDE-DEPLOY-USING $b"; exec "$b" "$@"
"#;

/// The script as sent: one line.
pub fn script() -> String {
    SCRIPT
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Quotes one word for a POSIX shell (and for bash, zsh, fish: ssh hands the
/// command to the remote login shell).
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:@,+".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The remote command for ssh: the script, then `version protocol args...`.
pub fn remote_command(version: &str, protocol: u32, args: &[String]) -> String {
    let mut words = vec![
        "sh".to_string(),
        "-c".to_string(),
        sh_quote(&script()),
        "abide-deploy".to_string(),
        sh_quote(version),
        protocol.to_string(),
    ];
    words.extend(args.iter().map(|a| sh_quote(a)));
    words.join(" ")
}

/// What `abide --version` prints after the name; the script looks for the
/// `(protocol N)` part to decide whether an `abide` on the PATH will do.
pub fn version_line(pkg_version: &str, protocol: u32) -> String {
    format!("{pkg_version} (protocol {protocol})")
}

/// The line the client sends before the binary's bytes.
pub fn upload_header(size: u64, sha256_hex: &str) -> String {
    format!("{TAG_UPLOAD} {size} {sha256_hex}\n")
}

/// The line the client sends when it has no binary for the host.
pub fn no_upload() -> String {
    format!("{TAG_UPLOAD} none\n")
}

/// An OS and CPU architecture, in Rust's names (`std::env::consts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub arch: String,
}

impl Platform {
    /// From `uname -s` and `uname -m`.
    pub fn from_uname(sysname: &str, machine: &str) -> Platform {
        let os = match sysname {
            "Linux" => "linux",
            "Darwin" => "macos",
            "FreeBSD" => "freebsd",
            "OpenBSD" => "openbsd",
            "NetBSD" => "netbsd",
            other => return Platform::raw(other, machine),
        };
        let arch = match machine {
            "x86_64" | "amd64" => "x86_64",
            "aarch64" | "arm64" | "aarch64_be" => "aarch64",
            "i386" | "i486" | "i586" | "i686" => "x86",
            m if m.starts_with("armv") => "arm",
            "riscv64" => "riscv64",
            "ppc64le" => "powerpc64",
            "s390x" => "s390x",
            other => other,
        };
        Platform::raw(os, arch)
    }

    fn raw(os: &str, arch: &str) -> Platform {
        Platform {
            os: os.to_ascii_lowercase(),
            arch: arch.to_string(),
        }
    }

    /// `os-arch`, e.g. `linux-x86_64`: the name of a client-side binary folder.
    pub fn label(&self) -> String {
        format!("{}-{}", self.os, self.arch)
    }
}

/// Why the remote side did not install the binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The client sent no binary (it has none for this platform).
    NoUpload,
    /// No `sha256sum`, `shasum` or `openssl` on the host to check the upload.
    NoHashTool,
    /// The upload arrived with another SHA-256 (the one the host computed).
    BadChecksum(String),
    /// The binary does not run there (noexec home, foreign libc): its words.
    WontRun(String),
    /// A file operation failed.
    Write(String),
    /// A kind this client does not know (a newer script).
    Other(String),
}

/// One line of the script's output that concerns the deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// No usable abide: send one for this platform.
    Need(Platform),
    /// The script runs this abide (an absolute path on the host).
    Using(String),
    Failed(Failure),
}

impl Reply {
    /// Parses a deploy line; `None` for any other line (login banners, the
    /// connect line).
    pub fn parse(line: &str) -> Option<Reply> {
        let line = line.trim_end_matches(['\r', '\n']);
        let (tag, rest) = line.split_once(' ').unwrap_or((line, ""));
        match tag {
            TAG_NEED => {
                let mut w = rest.split_whitespace();
                let (s, m) = (w.next()?, w.next()?);
                Some(Reply::Need(Platform::from_uname(s, m)))
            }
            TAG_USING if !rest.is_empty() => Some(Reply::Using(rest.to_string())),
            TAG_FAIL => {
                let (kind, what) = rest.split_once(' ').unwrap_or((rest, ""));
                let what = what.trim().to_string();
                Some(Reply::Failed(match kind {
                    "noupload" => Failure::NoUpload,
                    "nohash" => Failure::NoHashTool,
                    "badsum" => Failure::BadChecksum(what),
                    "norun" => Failure::WontRun(what),
                    "write" => Failure::Write(what),
                    _ => Failure::Other(rest.to_string()),
                }))
            }
            _ => None,
        }
    }
}

/// Which binary the client sends for a host that needs one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The running client itself: same OS and architecture.
    Own,
    /// A binary for another platform, from the client's folder of them.
    Other(Platform),
}

pub fn source_for(host: &Platform, client: &Platform) -> Source {
    if host == client {
        Source::Own
    } else {
        Source::Other(host.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_is_one_line_without_newlines() {
        let s = script();
        assert!(!s.contains('\n'));
        assert!(s.contains(DEPLOY_DIR));
        assert!(s.contains(TAG_NEED) && s.contains(TAG_USING) && s.contains(TAG_FAIL));
        assert!(s.contains(&format!("tail -n +{}", KEEP_VERSIONS + 1)));
    }

    #[test]
    fn replies_parse_and_other_lines_do_not() {
        assert_eq!(
            Reply::parse("ABIDE-DEPLOY-NEED Linux x86_64\n"),
            Some(Reply::Need(Platform {
                os: "linux".into(),
                arch: "x86_64".into()
            }))
        );
        assert_eq!(
            Reply::parse("ABIDE-DEPLOY-NEED Darwin arm64"),
            Some(Reply::Need(Platform {
                os: "macos".into(),
                arch: "aarch64".into()
            }))
        );
        assert_eq!(
            Reply::parse("ABIDE-DEPLOY-USING /home/u/.local/share/abide/bin/0.1.0/abide"),
            Some(Reply::Using(
                "/home/u/.local/share/abide/bin/0.1.0/abide".into()
            ))
        );
        assert_eq!(
            Reply::parse("ABIDE-DEPLOY-FAIL badsum 00ff"),
            Some(Reply::Failed(Failure::BadChecksum("00ff".into())))
        );
        assert_eq!(
            Reply::parse("ABIDE-DEPLOY-FAIL norun sh: 1: cannot execute: Permission denied "),
            Some(Reply::Failed(Failure::WontRun(
                "sh: 1: cannot execute: Permission denied".into()
            )))
        );
        assert_eq!(
            Reply::parse("ABIDE-DEPLOY-FAIL nohash"),
            Some(Reply::Failed(Failure::NoHashTool))
        );
        assert_eq!(
            Reply::parse("ABIDE-DEPLOY-FAIL later thing"),
            Some(Reply::Failed(Failure::Other("later thing".into())))
        );
        assert_eq!(Reply::parse("ABIDE-DEPLOY-NEED Linux"), None);
        assert_eq!(Reply::parse("ABIDE-DEPLOY-USING"), None);
        assert_eq!(Reply::parse("Welcome to Ubuntu"), None);
        assert_eq!(Reply::parse("ABIDE-CONNECT 1 2 3"), None);
        assert_eq!(Reply::parse(""), None);
    }

    #[test]
    fn platform_names_follow_rust() {
        let p = |s, m| Platform::from_uname(s, m).label();
        assert_eq!(p("Linux", "x86_64"), "linux-x86_64");
        assert_eq!(p("Linux", "aarch64"), "linux-aarch64");
        assert_eq!(p("Linux", "armv7l"), "linux-arm");
        assert_eq!(p("FreeBSD", "amd64"), "freebsd-x86_64");
        assert_eq!(p("SunOS", "i86pc"), "sunos-i86pc");
        let me = Platform::from_uname("Linux", "x86_64");
        assert_eq!(source_for(&me, &me), Source::Own);
        let mac = Platform::from_uname("Darwin", "arm64");
        assert_eq!(source_for(&mac, &me), Source::Other(mac.clone()));
    }

    #[test]
    fn command_quotes_every_argument() {
        let c = remote_command(
            "0.1.0",
            1,
            &["server".into(), "--env".into(), "A=it's; rm -rf ~".into()],
        );
        assert!(c.starts_with("sh -c '"), "{c}");
        assert!(
            c.ends_with(" abide-deploy 0.1.0 1 server --env 'A=it'\\''s; rm -rf ~'"),
            "{c}"
        );
        assert_eq!(upload_header(10, "ab"), "ABIDE-UPLOAD 10 ab\n");
        assert_eq!(no_upload(), "ABIDE-UPLOAD none\n");
        assert_eq!(version_line("0.1.0", 1), "0.1.0 (protocol 1)");
    }
}
