//! Writing a local archive directory: each file created once, in place, and a whole batch made
//! durable with one flush.
//!
//! A general object store writes a local file as a staging file, a hard link and an unlink, with a
//! flush per file and per folder. For thousands of small files a second that costs more than
//! rendering them: the filesystem's inode allocator has to step over every staging file deleted
//! a moment ago, and each flush waits for the disk on its own. Here a file is opened with
//! `O_CREAT | O_EXCL` under its final name and written; after the whole batch, one `syncfs` (on
//! Linux; elsewhere a flush per file and folder) makes every file and folder durable before any
//! of them is reported written, so nothing is recorded that a power cut could take away.
//!
//! A write cut short (a crash, a full disk) leaves a file that is a strict prefix of what it
//! should hold. Rendering is deterministic, so the retry recognises that prefix and writes the
//! rest at the same offsets ([`Written::Completed`]); two writers racing on one key write the same
//! bytes at the same places. Anything else under the key is a [`ArchiveError::Conflict`] and is
//! never touched.
//!
//! Keys map to paths exactly as the object store's local backend maps them, so both read the
//! same tree. This module must not decide keys nor read objects (the object store does).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::path::Path;

use super::{ArchiveError, Written};

/// Threads writing one batch. More only make them queue on the day folder's lock.
const THREADS: usize = 2;

/// An item of a batch, named by its key.
trait Keyed {
    fn key(&self) -> &str;
}

impl Keyed for String {
    fn key(&self) -> &str {
        self
    }
}

impl Keyed for (String, Bytes) {
    fn key(&self) -> &str {
        &self.0
    }
}

/// What writing one file did, and where the file is.
type WriteResult = Result<(Written, PathBuf), ArchiveError>;

/// A local archive directory.
#[derive(Debug)]
pub(crate) struct LocalDir {
    /// Maps keys to paths the way the reads see them.
    fs: LocalFileSystem,
    root: PathBuf,
    fsync: bool,
}

impl LocalDir {
    pub(crate) fn new(root: PathBuf, fsync: bool) -> Result<Self, ArchiveError> {
        let fs = LocalFileSystem::new_with_prefix(&root).map_err(|e| {
            ArchiveError::Url(format!(
                "cannot open archive directory {}: {e}",
                root.display()
            ))
        })?;
        Ok(Self { fs, root, fsync })
    }

    /// Write every `(key, bytes)` once, in item order of the results, durable before returning.
    pub(crate) async fn put_all(
        self: &Arc<Self>,
        items: Vec<(String, Bytes)>,
    ) -> Vec<Result<Written, ArchiveError>> {
        let keys: Vec<String> = items.iter().map(|(key, _)| key.clone()).collect();
        let mut results = self
            .on_threads(items, |this, (key, bytes)| this.write_one(key, bytes))
            .await;
        let written: Vec<PathBuf> = results
            .iter()
            .filter_map(|r| r.as_ref().ok().map(|(_, path)| path.clone()))
            .collect();
        if self.fsync && !written.is_empty() {
            let this = Arc::clone(self);
            let synced = tokio::task::spawn_blocking(move || this.make_durable(&written))
                .await
                .unwrap_or_else(|join| Err(io::Error::other(join.to_string())));
            if let Err(error) = synced {
                // Written but perhaps not on disk: not done. The retry finds the files.
                for (key, result) in keys.into_iter().zip(&mut results) {
                    if result.is_ok() {
                        let source = io::Error::new(
                            error.kind(),
                            format!("flushing to disk failed: {error}"),
                        );
                        *result = Err(ArchiveError::Io { key, source });
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|result| result.map(|(written, _)| written))
            .collect()
    }

    /// Read every key (`None` when absent), in order.
    pub(crate) async fn get_all(
        self: &Arc<Self>,
        keys: Vec<String>,
    ) -> Vec<Result<Option<Bytes>, ArchiveError>> {
        self.on_threads(keys, |this, key| this.read_one(key)).await
    }

    /// `work` on every item, split over [`THREADS`] blocking threads (one hand-off per thread,
    /// not per file: for thousands of small files the hand-offs cost as much as the work),
    /// results in item order.
    async fn on_threads<T: Keyed + Send + 'static, R: Send + 'static>(
        self: &Arc<Self>,
        items: Vec<T>,
        work: fn(&LocalDir, &T) -> Result<R, ArchiveError>,
    ) -> Vec<Result<R, ArchiveError>> {
        let per_thread = items.len().div_ceil(THREADS).max(1);
        let mut tasks = Vec::new();
        let mut items = items.into_iter();
        loop {
            let part: Vec<T> = items.by_ref().take(per_thread).collect();
            if part.is_empty() {
                break;
            }
            let keys: Vec<String> = part.iter().map(|item| item.key().to_owned()).collect();
            let this = Arc::clone(self);
            let task = tokio::task::spawn_blocking(move || {
                part.iter()
                    .map(|item| work(&this, item))
                    .collect::<Vec<_>>()
            });
            tasks.push((keys, task));
        }
        let mut results = Vec::new();
        for (keys, task) in tasks {
            match task.await {
                Ok(done) => results.extend(done),
                Err(join) => results.extend(keys.into_iter().map(|key| {
                    let source = io::Error::other(format!("the archive thread failed: {join}"));
                    Err(ArchiveError::Io { key, source })
                })),
            }
        }
        results
    }

    fn path_of(&self, key: &str) -> Result<PathBuf, ArchiveError> {
        self.fs
            .path_to_filesystem(&Path::from(key))
            .map_err(|source| ArchiveError::Backend {
                key: key.to_owned(),
                source,
            })
    }

    fn read_one(&self, key: &str) -> Result<Option<Bytes>, ArchiveError> {
        match std::fs::read(self.path_of(key)?) {
            Ok(bytes) => Ok(Some(Bytes::from(bytes))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ArchiveError::Io {
                key: key.to_owned(),
                source,
            }),
        }
    }

    fn write_one(&self, key: &str, bytes: &[u8]) -> WriteResult {
        let path = self.path_of(key)?;
        match write_once(&path, bytes) {
            Ok(Some(written)) => Ok((written, path)),
            Ok(None) => Err(ArchiveError::Conflict {
                key: key.to_owned(),
            }),
            Err(source) => Err(ArchiveError::Io {
                key: key.to_owned(),
                source,
            }),
        }
    }

    /// Flush the written files and the folders naming them.
    fn make_durable(&self, written: &[PathBuf]) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        {
            let _ = written;
            let root = File::open(&self.root)?;
            rustix::fs::syncfs(&root)?;
            Ok(())
        }
        #[cfg(not(target_os = "linux"))]
        {
            let mut folders = std::collections::BTreeSet::new();
            for path in written {
                File::open(path)?.sync_all()?;
                let mut folder = path.parent();
                while let Some(dir) = folder {
                    if !dir.starts_with(&self.root) || !folders.insert(dir.to_path_buf()) {
                        break;
                    }
                    folder = dir.parent();
                }
            }
            for folder in folders {
                File::open(folder)?.sync_all()?;
            }
            Ok(())
        }
    }
}

/// Create `path` holding `bytes`, or settle with what is there: `None` when it holds something
/// else.
fn write_once(path: &FsPath, bytes: &[u8]) -> io::Result<Option<Written>> {
    let create = || OpenOptions::new().write(true).create_new(true).open(path);
    let created = match create() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(folder) = path.parent() {
                std::fs::create_dir_all(folder)?;
            }
            create()
        }
        other => other,
    };
    match created {
        Ok(mut file) => {
            file.write_all(bytes)?;
            Ok(Some(Written::Created))
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => settle(path, bytes),
        Err(e) => Err(e),
    }
}

/// An object is already under the path: identical, the start of `bytes` (finish it), or not ours.
fn settle(path: &FsPath, bytes: &[u8]) -> io::Result<Option<Written>> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let length = usize::try_from(file.metadata()?.len()).unwrap_or(usize::MAX);
    if length > bytes.len() {
        return Ok(None);
    }
    let mut existing = Vec::with_capacity(length);
    Read::by_ref(&mut file)
        .take(u64::try_from(bytes.len()).unwrap_or(u64::MAX))
        .read_to_end(&mut existing)?;
    if existing.as_slice() == bytes {
        return Ok(Some(Written::AlreadyThere));
    }
    if !bytes.starts_with(&existing) {
        return Ok(None);
    }
    // Positional writes of the same bytes: a writer still busy on this file writes exactly these.
    let rest = bytes.get(existing.len()..).unwrap_or_default();
    file.write_all_at(rest, u64::try_from(existing.len()).unwrap_or(u64::MAX))?;
    Ok(Some(Written::Completed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_file_is_finished_and_anything_else_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/c.pdf");
        let bytes = b"%PDF-1.7 the whole file";
        assert_eq!(write_once(&path, bytes).unwrap(), Some(Written::Created));
        assert_eq!(
            write_once(&path, bytes).unwrap(),
            Some(Written::AlreadyThere)
        );

        std::fs::write(&path, &bytes[..7]).unwrap();
        assert_eq!(write_once(&path, bytes).unwrap(), Some(Written::Completed));
        assert_eq!(std::fs::read(&path).unwrap(), bytes);

        std::fs::write(&path, b"").unwrap();
        assert_eq!(write_once(&path, bytes).unwrap(), Some(Written::Completed));
        assert_eq!(std::fs::read(&path).unwrap(), bytes);

        for planted in [&b"%PDF-1.7 the whole file, and more"[..], b"%PDF-1.6", b"x"] {
            std::fs::write(&path, planted).unwrap();
            assert_eq!(write_once(&path, bytes).unwrap(), None, "{planted:?}");
            assert_eq!(std::fs::read(&path).unwrap(), planted, "left as it was");
        }
    }
}
