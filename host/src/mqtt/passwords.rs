//! The broker's password file: one `thing:password` or `thing:sha256:HEX` line per thing.
//!
//! The file is read again whenever its modification time or size changes, so things can be
//! added while the server runs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use anyhow::Context as _;
use sha2::{Digest as _, Sha256};

/// Written to a password file the server creates.
const NEW_FILE_HEADER: &str = "\
# Vigil MQTT passwords: one `thing:password` or `thing:sha256:HEX` line per thing.
# A client connects with the thing name as client id and user name, and this password.
";

/// The password file and what was last read from it.
pub struct Passwords {
    path: PathBuf,
    loaded: Mutex<Loaded>,
}

#[derive(Default)]
struct Loaded {
    version: Option<(SystemTime, u64)>,
    digests: HashMap<String, [u8; 32]>,
}

impl Passwords {
    /// Opens `path`, creating it with no entries if it does not exist.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        if !path.exists() {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("failed to create `{}`", parent.display()))?;
            }
            write_owner_only(path, NEW_FILE_HEADER).with_context(|| {
                format!(
                    "failed to create the MQTT password file `{}`",
                    path.display()
                )
            })?;
        }
        let passwords = Self {
            path: path.to_path_buf(),
            loaded: Mutex::new(Loaded::default()),
        };
        passwords.reload_if_changed()?;
        Ok(passwords)
    }

    /// Opens a password file the user named, which must exist: a mistyped path must not
    /// start a broker that silently refuses every device.
    pub fn open_existing(path: &Path) -> anyhow::Result<Self> {
        if !path.exists() {
            anyhow::bail!(
                "the MQTT password file `{}` does not exist; create it with one `thing:password` \
                 line per device, or leave out --mqtt-passwords to use DATA/mqtt-passwords",
                path.display()
            );
        }
        Self::open(path)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether `password` is the password of `thing`. A file that became unreadable keeps the
    /// entries read last.
    pub fn check(&self, thing: &str, password: &[u8]) -> bool {
        if let Err(error) = self.reload_if_changed() {
            tracing::warn!(error = %format!("{error:#}"), "keeping the MQTT passwords read last");
        }
        let digest: [u8; 32] = Sha256::digest(password).into();
        let loaded = self
            .loaded
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        loaded.digests.get(thing) == Some(&digest)
    }

    fn reload_if_changed(&self) -> anyhow::Result<()> {
        let metadata = std::fs::metadata(&self.path)
            .with_context(|| format!("failed to read `{}`", self.path.display()))?;
        let version = (metadata.modified()?, metadata.len());
        let mut loaded = self
            .loaded
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if loaded.version == Some(version) {
            return Ok(());
        }
        let text = std::fs::read_to_string(&self.path)
            .with_context(|| format!("failed to read `{}`", self.path.display()))?;
        loaded.digests =
            parse(&text).with_context(|| format!("failed to parse `{}`", self.path.display()))?;
        loaded.version = Some(version);
        tracing::info!(things = loaded.digests.len(), "MQTT passwords loaded");
        Ok(())
    }
}

/// Reads the lines of a password file into SHA-256 digests by thing.
fn parse(text: &str) -> anyhow::Result<HashMap<String, [u8; 32]>> {
    let mut digests = HashMap::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (thing, secret) = line
            .split_once(':')
            .with_context(|| format!("line {} has no `thing:password`", index + 1))?;
        let digest = match secret.strip_prefix("sha256:") {
            Some(hex) => decode_digest(hex)
                .with_context(|| format!("line {} has no 64-digit SHA-256 hex", index + 1))?,
            None => Sha256::digest(secret.as_bytes()).into(),
        };
        digests.insert(thing.to_owned(), digest);
    }
    Ok(digests)
}

fn decode_digest(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut digest = [0u8; 32];
    for (byte, pair) in digest.iter_mut().zip(hex.as_bytes().chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(digest)
}

/// Writes a new file readable and writable by its owner only, since it may hold passwords.
fn write_owner_only(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?
        .write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str, text: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("vigil-mqtt-{name}-{}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn plain_and_hashed_passwords_are_checked() {
        let hashed = "sha256:5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8";
        let path = temp_file(
            "check",
            &format!("# comment\npump-1:s3cret\npump-2:{hashed}\n"),
        );
        let passwords = Passwords::open(&path).unwrap();
        assert!(passwords.check("pump-1", b"s3cret"));
        assert!(!passwords.check("pump-1", b"wrong"));
        assert!(passwords.check("pump-2", b"password"));
        assert!(!passwords.check("pump-3", b"s3cret"));
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn a_missing_file_is_created_empty() {
        let path = std::env::temp_dir().join(format!("vigil-mqtt-new-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let passwords = Passwords::open(&path).unwrap();
        assert!(!passwords.check("pump-1", b""));
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .starts_with("# Vigil MQTT")
        );
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn a_line_without_a_colon_is_an_error() {
        let error = parse("pump-1\n").unwrap_err();
        assert_eq!(error.to_string(), "line 1 has no `thing:password`");
    }
}
