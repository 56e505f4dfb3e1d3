//! The credential vault's cryptography: master keys and AES-256-GCM sealing.
//!
//! * Master keys live in a file (`master_key_file`, default
//!   `<data-dir>/master.key`), one `key <id> <base64 32 bytes>` line each; the
//!   last one seals new secrets, the others only open old ones. The file is
//!   created on first start with mode 0600; the broker refuses to start if it
//!   is readable by group or others.
//! * The file is the truth: a change (a new key, a retirement) is written to
//!   the file first and takes effect in memory only once written, so a key
//!   that seals anything is always in the file (a failed write changes
//!   nothing), and [`MasterKeys::seal`] refuses a current key the file did
//!   not hold when last read or written.
//! * A sealed value is `0x01 || len(id) || id || nonce (12 random bytes) ||
//!   ciphertext+tag`. The associated data binds it to its owner, connector
//!   instance and field, so a ciphertext copied to another row fails to open.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use rand::RngCore;
use std::fmt;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

const VERSION: u8 = 1;

/// Vault errors. None of them carries key material or plaintext.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VaultError {
    #[error("master key file {path}: {message}")]
    KeyFile { path: String, message: String },
    #[error("master key file {path} is readable by group or others (mode {mode:o}); run: chmod 600 {path}")]
    Permissions { path: String, mode: u32 },
    #[error("sealed value uses key '{0}', which is not in the master key file")]
    UnknownKey(String),
    /// A change could not be written to the key file; nothing changed.
    #[error("the master key file {path} cannot be written ({message}); nothing was changed")]
    NotWritable { path: String, message: String },
    /// The key that would seal is not in the key file (it was changed or
    /// removed under this process): sealing with it would make data that no
    /// other process, and no restart, can open.
    #[error("the current master key '{0}' is not in the master key file; nothing was sealed")]
    NotOnDisk(String),
    #[error("sealed value is malformed")]
    Malformed,
    #[error("sealed value does not open (wrong key, or it was moved from another owner, instance or field)")]
    OpenFailed,
}

/// One master key; `retired` (unix seconds) once it sealed nothing any more.
#[derive(Clone)]
struct Key {
    id: String,
    key: Zeroizing<[u8; 32]>,
    retired: Option<i64>,
}

/// The loaded master keys.
pub struct MasterKeys {
    path: PathBuf,
    keys: Vec<Key>,
    /// (modified time, length) of the file when last read or written.
    stamp: Option<(std::time::SystemTime, u64)>,
    /// Ids the file held when last read or written.
    on_disk: Vec<String>,
}

impl fmt::Debug for MasterKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKeys").field("path", &self.path).field("ids", &self.ids()).finish()
    }
}

fn new_key() -> Key {
    let mut k = Zeroizing::new([0u8; 32]);
    rand::thread_rng().fill_bytes(k.as_mut());
    let mut id = [0u8; 4];
    rand::thread_rng().fill_bytes(&mut id);
    Key { id: format!("k{}-{}", chrono::Utc::now().format("%Y%m%d"), hex::encode(id)), key: k, retired: None }
}

fn stamp_of(path: &Path) -> Option<(std::time::SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

impl MasterKeys {
    /// Loads the key file, creating it (mode 0600, one new key) if missing.
    pub fn load_or_create(path: &Path) -> Result<Self, VaultError> {
        if !path.exists() {
            let mut keys = Self { path: path.to_path_buf(), keys: Vec::new(), stamp: None, on_disk: Vec::new() };
            keys.replace(vec![new_key()])?;
            tracing::info!(path = %path.display(), "generated a new master key");
            return Ok(keys);
        }
        Self::load(path)
    }

    /// Loads an existing key file.
    pub fn load(path: &Path) -> Result<Self, VaultError> {
        let shown = path.display().to_string();
        let err = |message: String| VaultError::KeyFile { path: shown.clone(), message };
        let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(VaultError::Permissions { path: shown.clone(), mode });
        }
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?);
        let mut keys = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let parts: Vec<&str> = line.split_whitespace().collect();
            let (kw, id, b64, retired) = match parts.as_slice() {
                [kw, id, b64] => (*kw, *id, *b64, None),
                [kw, id, b64, r] => {
                    let at = r
                        .strip_prefix("retired=")
                        .and_then(|v| v.parse::<i64>().ok())
                        .ok_or_else(|| err(format!("line {}: expected 'retired=<unix seconds>' after the key", i + 1)))?;
                    (*kw, *id, *b64, Some(at))
                }
                _ => return Err(err(format!("line {}: expected 'key <id> <base64>'", i + 1))),
            };
            if kw != "key" {
                return Err(err(format!("line {}: expected 'key <id> <base64>'", i + 1)));
            }
            let raw = Zeroizing::new(
                base64::engine::general_purpose::STANDARD.decode(b64).map_err(|_| err(format!("line {}: key is not base64", i + 1)))?,
            );
            let mut k = Zeroizing::new([0u8; 32]);
            if raw.len() != 32 {
                return Err(err(format!("line {}: key must be 32 bytes, found {}", i + 1, raw.len())));
            }
            k.copy_from_slice(&raw);
            if keys.iter().any(|x: &Key| x.id == id) {
                return Err(err(format!("line {}: duplicate key id '{id}'", i + 1)));
            }
            keys.push(Key { id: id.to_string(), key: k, retired });
        }
        if keys.is_empty() {
            return Err(err("no key in file".into()));
        }
        let on_disk = keys.iter().map(|k| k.id.clone()).collect();
        Ok(Self { path: path.to_path_buf(), keys, stamp: stamp_of(path), on_disk })
    }

    /// Writes `keys` to the file and, only once that succeeded, makes them
    /// this process's keys. On failure nothing changed, in memory or on disk.
    fn replace(&mut self, keys: Vec<Key>) -> Result<(), VaultError> {
        write_file(&self.path, &keys)?;
        self.on_disk = keys.iter().map(|k| k.id.clone()).collect();
        self.keys = keys;
        self.stamp = stamp_of(&self.path);
        Ok(())
    }

    /// Whether a change could be written to the key file now: creates and
    /// removes the temporary file a write uses (the directory must take new
    /// files: a read-only mount does not). The error names why not.
    pub fn check_writable(&self) -> Result<(), VaultError> {
        let not_writable = |e: std::io::Error| VaultError::NotWritable { path: self.path.display().to_string(), message: e.to_string() };
        let tmp = self.path.with_extension("tmp");
        let _ = std::fs::remove_file(&tmp);
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(not_writable)?;
        std::fs::remove_file(&tmp).map_err(not_writable)?;
        // The file itself must be replaceable too (not a directory, for one).
        match std::fs::metadata(&self.path) {
            Ok(m) if !m.is_file() => {
                Err(VaultError::NotWritable { path: self.path.display().to_string(), message: "it is not a regular file".into() })
            }
            _ => Ok(()),
        }
    }
}

/// Writes `keys` to `path` (mode 0600) through a temporary file renamed over
/// it, durably.
fn write_file(path: &Path, keys: &[Key]) -> Result<(), VaultError> {
    let shown = path.display().to_string();
    let err = |e: std::io::Error| VaultError::NotWritable { path: shown.clone(), message: e.to_string() };
    let path = path.to_path_buf();
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).map(Path::to_path_buf);
    if let Some(dir) = &dir {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let mut text = Zeroizing::new(String::from(
        "# cloudbroker master keys: the last one seals new secrets; retired ones are kept a while for other processes.\n# Keep this file secret (mode 0600), back it up apart from the database, and give every replica the same file.\n",
    ));
    for k in keys {
        text.push_str(&format!("key {} {}", k.id, base64::engine::general_purpose::STANDARD.encode(k.key.as_ref())));
        if let Some(at) = k.retired {
            text.push_str(&format!(" retired={at}"));
        }
        text.push('\n');
    }
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(err)?;
    let written = f.write_all(text.as_bytes()).and_then(|()| f.sync_all()).and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(e));
    }
    // The rename is durable only once the directory is on disk too.
    if let Some(dir) = &dir {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(err)?;
    }
    Ok(())
}

impl MasterKeys {
    /// Re-reads the file if another process changed it, and merges: keys
    /// from the file come first in its order (its last seals from now on),
    /// keys only this process knew are kept as older ones. Nothing known is
    /// ever forgotten by a reload. Returns whether anything was read.
    pub fn merge_from_disk(&mut self) -> Result<bool, VaultError> {
        if stamp_of(&self.path) == self.stamp {
            return Ok(false);
        }
        let disk = Self::load(&self.path)?;
        let mut merged: Vec<Key> = self.keys.drain(..).filter(|k| !disk.keys.iter().any(|d| d.id == k.id)).collect();
        merged.extend(disk.keys);
        self.keys = merged;
        self.stamp = disk.stamp;
        self.on_disk = disk.on_disk;
        Ok(true)
    }

    /// The key file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Key ids, oldest first.
    pub fn ids(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.id.clone()).collect()
    }

    /// The id of the key that seals new secrets.
    pub fn current_id(&self) -> &str {
        self.keys.last().map(|k| k.id.as_str()).unwrap_or("")
    }

    /// Adds a new current key: saved to the file first, used only once saved.
    pub fn add_key(&mut self) -> Result<String, VaultError> {
        let k = new_key();
        let id = k.id.clone();
        let mut next = self.keys.clone();
        next.push(k);
        self.replace(next)?;
        Ok(id)
    }

    /// Whether the key that seals is in the file as last read or written.
    pub fn current_on_disk(&self) -> bool {
        self.keys.last().is_some_and(|k| self.on_disk.contains(&k.id))
    }

    /// Retires keys that nothing in `in_use` needs (the current key always
    /// stays) and drops those retired longer than `grace` ago, so that a
    /// process still sealing with an old key keeps a file that opens what it
    /// wrote. Saves when something changed; returns the dropped ids.
    pub fn retire(&mut self, in_use: &[String], grace: std::time::Duration, now: i64) -> Result<Vec<String>, VaultError> {
        let current = self.current_id().to_string();
        let grace = i64::try_from(grace.as_secs()).unwrap_or(i64::MAX);
        let mut changed = false;
        let mut dropped = Vec::new();
        // Changed on a copy: it replaces the keys only once written.
        let mut next = self.keys.clone();
        for k in &mut next {
            let needed = k.id == current || in_use.contains(&k.id);
            match (needed, k.retired) {
                (true, Some(_)) => {
                    k.retired = None;
                    changed = true;
                }
                (false, None) => {
                    k.retired = Some(now);
                    changed = true;
                }
                (false, Some(at)) if now.saturating_sub(at) >= grace => dropped.push(k.id.clone()),
                _ => {}
            }
        }
        if !dropped.is_empty() {
            next.retain(|k| !dropped.contains(&k.id));
            changed = true;
        }
        if changed {
            self.replace(next)?;
        }
        Ok(dropped)
    }

    /// Ids of retired keys.
    pub fn retired_ids(&self) -> Vec<String> {
        self.keys.iter().filter(|k| k.retired.is_some()).map(|k| k.id.clone()).collect()
    }

    /// Seals `plaintext` with the current key, bound to `aad`.
    pub fn seal(&self, plaintext: &[u8], aad: &str) -> Result<Vec<u8>, VaultError> {
        let Key { id, key, .. } = self.keys.last().ok_or(VaultError::UnknownKey(String::new()))?;
        if !self.on_disk.contains(id) {
            return Err(VaultError::NotOnDisk(id.clone()));
        }
        let cipher = Aes256Gcm::new_from_slice(key.as_ref()).map_err(|_| VaultError::Malformed)?;
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ct = cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad: aad.as_bytes() })
            .map_err(|_| VaultError::Malformed)?;
        let mut out = Vec::with_capacity(2 + id.len() + 12 + ct.len());
        out.push(VERSION);
        out.push(id.len() as u8);
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// The key id a sealed value uses.
    pub fn key_id_of(blob: &[u8]) -> Result<&str, VaultError> {
        if blob.len() < 2 || blob[0] != VERSION {
            return Err(VaultError::Malformed);
        }
        let n = blob[1] as usize;
        blob.get(2..2 + n).and_then(|b| std::str::from_utf8(b).ok()).ok_or(VaultError::Malformed)
    }

    /// A 32-byte key for `purpose`, derived from the current master key:
    /// HMAC-SHA256(master, "cloudbroker/v1/derive/" || purpose). Every
    /// process sharing the key file derives the same key; a rotation changes
    /// it. Never logged.
    pub fn derive(&self, purpose: &str) -> Result<Zeroizing<[u8; 32]>, VaultError> {
        use hmac::{Hmac, Mac};
        let Key { key, .. } = self.keys.last().ok_or(VaultError::UnknownKey(String::new()))?;
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key.as_ref()).map_err(|_| VaultError::Malformed)?;
        mac.update(b"cloudbroker/v1/derive/");
        mac.update(purpose.as_bytes());
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&mac.finalize().into_bytes());
        Ok(out)
    }

    /// Opens a sealed value bound to `aad`.
    pub fn open(&self, blob: &[u8], aad: &str) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let id = Self::key_id_of(blob)?;
        let start = 2 + id.len();
        let nonce = blob.get(start..start + 12).ok_or(VaultError::Malformed)?;
        let ct = blob.get(start + 12..).ok_or(VaultError::Malformed)?;
        let key = self.keys.iter().find(|k| k.id == id).map(|k| &k.key).ok_or_else(|| VaultError::UnknownKey(id.to_string()))?;
        let cipher = Aes256Gcm::new_from_slice(key.as_ref()).map_err(|_| VaultError::Malformed)?;
        cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: aad.as_bytes() })
            .map(Zeroizing::new)
            .map_err(|_| VaultError::OpenFailed)
    }
}

/// The associated data of a credential field.
pub fn credential_aad(scope: &str, owner: &str, instance: &str, field: &str) -> String {
    format!("cloudbroker/v1/credential/{scope}/{owner}/{instance}/{field}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_bind_and_rotate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/master.key");
        let mut keys = MasterKeys::load_or_create(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let aad = credential_aad("user", "alice", "ec2", "secret");
        let a = keys.seal(b"s3cret", &aad).unwrap();
        let b = keys.seal(b"s3cret", &aad).unwrap();
        assert_ne!(a, b, "fresh nonce per seal");
        assert!(!a.windows(6).any(|w| w == b"s3cret"));
        assert_eq!(keys.open(&a, &aad).unwrap().as_slice(), b"s3cret");
        assert_eq!(keys.open(&a, &credential_aad("user", "bob", "ec2", "secret")), Err(VaultError::OpenFailed));
        let mut tampered = a.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(keys.open(&tampered, &aad), Err(VaultError::OpenFailed));

        let old = keys.current_id().to_string();
        let new = keys.add_key().unwrap();
        assert_ne!(old, new);
        let reloaded = MasterKeys::load(&path).unwrap();
        assert_eq!(reloaded.ids(), vec![old.clone(), new.clone()]);
        assert_eq!(reloaded.open(&a, &aad).unwrap().as_slice(), b"s3cret", "old key still opens");
        assert_eq!(MasterKeys::key_id_of(&reloaded.seal(b"x", &aad).unwrap()).unwrap(), new);
        // Unused keys are retired first, and dropped only after the grace period.
        assert!(keys.retire(&[], std::time::Duration::from_secs(3600), 1_000).unwrap().is_empty());
        assert_eq!(MasterKeys::load(&path).unwrap().retired_ids(), vec![old.clone()]);
        assert!(keys.retire(&[], std::time::Duration::from_secs(3600), 2_000).unwrap().is_empty());
        assert_eq!(keys.retire(&[], std::time::Duration::from_secs(3600), 4_600).unwrap(), vec![old.clone()]);
        assert_eq!(MasterKeys::load(&path).unwrap().ids(), vec![new]);
        assert!(matches!(MasterKeys::load(&path).unwrap().open(&a, &aad), Err(VaultError::UnknownKey(id)) if id == old));
        assert!(!format!("{keys:?}").contains(&base64::engine::general_purpose::STANDARD.encode([0u8; 4])[..2].repeat(20)));
    }

    #[test]
    fn a_reload_merges_and_never_forgets_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let mut a = MasterKeys::load_or_create(&path).unwrap();
        let mut b = MasterKeys::load(&path).unwrap();
        let first = a.current_id().to_string();
        assert!(!b.merge_from_disk().unwrap(), "nothing changed on disk");
        let second = a.add_key().unwrap();
        assert!(b.merge_from_disk().unwrap());
        assert_eq!((b.ids(), b.current_id()), (vec![first.clone(), second.clone()], second.as_str()));
        // Another process writes a file without the first key: b keeps it.
        let sealed = b.seal(b"x", "aad").unwrap();
        let mut c = MasterKeys::load(&path).unwrap();
        c.retire(&[], std::time::Duration::ZERO, 10).unwrap();
        c.retire(&[], std::time::Duration::ZERO, 10).unwrap();
        assert_eq!(MasterKeys::load(&path).unwrap().ids(), vec![second.clone()]);
        assert!(b.merge_from_disk().unwrap());
        assert_eq!(b.ids(), vec![first, second]);
        assert_eq!(b.open(&sealed, "aad").unwrap().as_slice(), b"x");
    }

    #[test]
    fn a_failed_write_changes_nothing_in_memory_or_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let mut keys = MasterKeys::load_or_create(&path).unwrap();
        let first = keys.current_id().to_string();
        let second = keys.add_key().unwrap();
        let before = std::fs::read(&path).unwrap();
        // A directory where the write's temporary file goes: every write
        // fails, even as root (which permission bits would not stop).
        std::fs::create_dir(path.with_extension("tmp")).unwrap();
        assert!(matches!(keys.check_writable(), Err(VaultError::NotWritable { .. })));
        let e = keys.add_key().unwrap_err();
        assert!(matches!(e, VaultError::NotWritable { .. }) && e.to_string().contains("cannot be written"), "{e}");
        assert_eq!((keys.ids(), keys.current_id()), (vec![first.clone(), second.clone()], second.as_str()), "a key only in memory");
        // Retiring `first` fails the same way and retires nothing.
        assert!(matches!(keys.retire(&[], std::time::Duration::ZERO, 10), Err(VaultError::NotWritable { .. })));
        assert!(keys.retired_ids().is_empty());
        assert_eq!(std::fs::read(&path).unwrap(), before);
        // What is sealed now opens after a restart (a fresh load of the file).
        let sealed = keys.seal(b"x", "aad").unwrap();
        assert_eq!(MasterKeys::key_id_of(&sealed).unwrap(), second);
        assert_eq!(MasterKeys::load(&path).unwrap().open(&sealed, "aad").unwrap().as_slice(), b"x");
        std::fs::remove_dir(path.with_extension("tmp")).unwrap();
        keys.check_writable().unwrap();
        let third = keys.add_key().unwrap();
        assert_eq!(MasterKeys::load(&path).unwrap().ids(), vec![first, second, third]);
    }

    #[test]
    fn seal_refuses_a_current_key_the_file_does_not_hold() {
        let dir = tempfile::tempdir().unwrap();
        let mut keys = MasterKeys::load_or_create(&dir.path().join("master.key")).unwrap();
        assert!(keys.current_on_disk());
        keys.on_disk.clear();
        assert!(!keys.current_on_disk());
        let current = keys.current_id().to_string();
        assert_eq!(keys.seal(b"x", "aad"), Err(VaultError::NotOnDisk(current)));
    }

    #[test]
    fn refuses_readable_key_file_and_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        MasterKeys::load_or_create(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = MasterKeys::load(&path).unwrap_err();
        assert!(matches!(e, VaultError::Permissions { mode: 0o644, .. }));
        assert!(e.to_string().contains("chmod 600"));
        std::fs::write(&path, "key a notbase64!\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(MasterKeys::load(&path).unwrap_err().to_string().contains("line 1: key is not base64"));
        std::fs::write(&path, "# only a comment\n").unwrap();
        assert!(MasterKeys::load(&path).unwrap_err().to_string().contains("no key"));
    }
}
