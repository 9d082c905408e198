//! A minimal content store under one directory: blobs by their sha256
//! digest (`blobs/<hex>`) and small records by key (`records/<hex>`). A
//! blob is checked against its digest when read: a damaged or swapped file
//! is a miss, never a wrong result. Every write goes to a temporary file
//! in the same directory, then is renamed: a reader never sees half of one.
//!
//! Shaped like the content store of issue 14 (local under `.topsail/`, S3
//! for a deployment), to be replaced by it when that is merged.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use crate::cache::key::hex;

/// A record no bigger than this is read; a bigger one is a miss.
pub const RECORD_MAX: u64 = 1024 * 1024;

#[derive(Clone, Debug)]
pub struct LocalStore {
    root: PathBuf,
}

/// One record as `topsail cache ls` would list it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordInfo {
    pub key: String,
    pub size: u64,
    pub modified: SystemTime,
}

impl LocalStore {
    pub fn new(root: impl Into<PathBuf>) -> LocalStore {
        LocalStore { root: root.into() }
    }

    /// Store `bytes`; its digest (lowercase hex sha256).
    pub fn put_blob(&self, bytes: &[u8]) -> std::io::Result<String> {
        let digest = hex(&Sha256::digest(bytes));
        let path = self.root.join("blobs").join(&digest);
        if !path.is_file() {
            write_atomic(&path, bytes)?;
        }
        Ok(digest)
    }

    /// The blob with this digest, if stored and intact.
    pub fn get_blob(&self, digest: &str) -> Option<Vec<u8>> {
        if !is_hex_digest(digest) {
            return None;
        }
        let bytes = std::fs::read(self.root.join("blobs").join(digest)).ok()?;
        (hex(&Sha256::digest(&bytes)) == digest).then_some(bytes)
    }

    pub fn put_record(&self, key: &str, bytes: &[u8]) -> std::io::Result<()> {
        if !is_hex_digest(key) {
            return Err(std::io::Error::other("a record's key is a sha256 digest"));
        }
        write_atomic(&self.root.join("records").join(key), bytes)
    }

    pub fn get_record(&self, key: &str) -> Option<Vec<u8>> {
        if !is_hex_digest(key) {
            return None;
        }
        let path = self.root.join("records").join(key);
        let meta = std::fs::metadata(&path).ok()?;
        if !meta.is_file() || meta.len() > RECORD_MAX {
            return None;
        }
        std::fs::read(path).ok()
    }

    /// Every record, oldest first.
    pub fn records(&self) -> Vec<RecordInfo> {
        let Ok(entries) = std::fs::read_dir(self.root.join("records")) else {
            return Vec::new();
        };
        let mut out: Vec<RecordInfo> = entries
            .flatten()
            .filter_map(|e| {
                let key = e.file_name().to_str()?.to_string();
                let meta = e.metadata().ok()?;
                (is_hex_digest(&key) && meta.is_file()).then(|| RecordInfo {
                    key,
                    size: meta.len(),
                    modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                })
            })
            .collect();
        out.sort_by(|a, b| a.modified.cmp(&b.modified).then(a.key.cmp(&b.key)));
        out
    }

    pub fn remove_record(&self, key: &str) -> std::io::Result<()> {
        if !is_hex_digest(key) {
            return Ok(());
        }
        match std::fs::remove_file(self.root.join("records").join(key)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// 64 lowercase hex digits: the only names the store makes or reads, so no
/// key from a record or a task input can reach another path.
fn is_hex_digest(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("a store path has a parent"))?;
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile_in(dir)?;
    tmp.1.write_all(bytes)?;
    tmp.1.sync_all()?;
    std::fs::rename(&tmp.0, path)
}

/// A new file in `dir` nobody else opened (`create_new`), named after this
/// process and a counter.
fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(".tmp-{}-{n}", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => return Ok((path, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, LocalStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let s = LocalStore::new(dir.path().join("cache"));
        (dir, s)
    }

    #[test]
    fn blobs_come_back_by_digest_and_a_damaged_one_is_a_miss() {
        let (dir, s) = store();
        let d = s.put_blob(b"hello").expect("put");
        assert_eq!(
            d,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(s.get_blob(&d).as_deref(), Some(&b"hello"[..]));
        std::fs::write(dir.path().join("cache/blobs").join(&d), b"HELLO").expect("damage");
        assert_eq!(s.get_blob(&d), None);
        assert_eq!(s.get_blob("../../etc/passwd"), None);
    }

    #[test]
    fn records_by_key_listed_and_removed() {
        let (_dir, s) = store();
        let key = "a".repeat(64);
        assert!(s.put_record("../x", b"r").is_err());
        s.put_record(&key, b"record").expect("put");
        assert_eq!(s.get_record(&key).as_deref(), Some(&b"record"[..]));
        let list = s.records();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].key, key);
        assert_eq!(list[0].size, 6);
        s.remove_record(&key).expect("remove");
        assert_eq!(s.get_record(&key), None);
        assert!(s.records().is_empty());
    }
}
