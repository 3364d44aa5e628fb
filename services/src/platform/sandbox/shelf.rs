//! Where the sandbox keeps what it has recorded: an unnamed scratch file, so that memory holds only
//! where each value is, however many invoices the sandbox has recorded.
//!
//! Values are JSON, appended and never rewritten: a changed value is written again and its old
//! copy stays as garbage until the process ends (the file has no name and disappears with it). The
//! shelf is not persistence: the journal is what a restart replays, and the replay fills a new
//! shelf. When the scratch file cannot be created or written, values stay in memory (with one
//! warning), so nothing recorded is lost; a value that cannot be read back is an I/O error for the
//! caller to answer.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A value on the shelf: where it is in the scratch file, or the value itself when it could not be
/// written there.
#[derive(Debug)]
pub(crate) enum Kept<T> {
    Shelved { offset: u64, len: u32 },
    Held(Box<T>),
}

/// The scratch file, opened at the first value.
#[derive(Debug)]
pub(crate) struct Shelf {
    /// Folder of the scratch file; the system's temporary folder when `None`.
    dir: Option<PathBuf>,
    file: Scratch,
    end: u64,
}

#[derive(Debug)]
enum Scratch {
    Unopened,
    Open(File),
    /// Could not be created: every value is held in memory.
    Unavailable,
}

impl Shelf {
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self {
            dir,
            file: Scratch::Unopened,
            end: 0,
        }
    }

    /// Puts `value` on the shelf (in memory when the scratch file fails).
    pub fn keep<T: Serialize>(&mut self, value: T) -> Kept<T> {
        match self.write(&value) {
            Ok((offset, len)) => Kept::Shelved { offset, len },
            Err(error) => {
                if !matches!(self.file, Scratch::Unavailable) {
                    tracing::warn!(
                        %error,
                        "the sandbox cannot write its scratch file; keeping recorded invoices in memory"
                    );
                    self.file = Scratch::Unavailable;
                }
                Kept::Held(Box::new(value))
            }
        }
    }

    /// The value `kept` stands for.
    pub fn read<T: DeserializeOwned + Clone>(&self, kept: &Kept<T>) -> io::Result<T> {
        match kept {
            Kept::Held(value) => Ok(T::clone(value)),
            Kept::Shelved { offset, len } => {
                let Scratch::Open(file) = &self.file else {
                    return Err(io::Error::other("the sandbox's scratch file is gone"));
                };
                let mut bytes = vec![0; usize::try_from(*len).unwrap_or(usize::MAX)];
                file.read_exact_at(&mut bytes, *offset)?;
                serde_json::from_slice(&bytes).map_err(io::Error::other)
            }
        }
    }

    fn write<T: Serialize>(&mut self, value: &T) -> io::Result<(u64, u32)> {
        if matches!(self.file, Scratch::Unopened) {
            let file = match &self.dir {
                Some(dir) => tempfile::tempfile_in(dir),
                None => tempfile::tempfile(),
            };
            self.file = file.map_or(Scratch::Unavailable, Scratch::Open);
        }
        let Scratch::Open(file) = &self.file else {
            return Err(io::Error::other("no scratch file"));
        };
        let bytes = serde_json::to_vec(value).map_err(io::Error::other)?;
        let len = u32::try_from(bytes.len()).map_err(io::Error::other)?;
        let offset = self.end;
        file.write_all_at(&bytes, offset)?;
        self.end = offset.saturating_add(u64::from(len));
        Ok((offset, len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_come_back_as_they_were_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut shelf = Shelf::new(Some(dir.path().to_owned()));
        let first = shelf.keep(vec!["一".to_owned(), "two".to_owned()]);
        let second = shelf.keep(vec!["three".to_owned()]);
        assert!(matches!(first, Kept::Shelved { offset: 0, .. }));
        assert!(matches!(second, Kept::Shelved { offset, .. } if offset > 0));
        assert_eq!(shelf.read(&second).unwrap(), vec!["three".to_owned()]);
        assert_eq!(
            shelf.read(&first).unwrap(),
            vec!["一".to_owned(), "two".to_owned()]
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "the scratch file has no name"
        );
    }

    #[test]
    fn without_a_scratch_file_values_stay_in_memory() {
        let missing = tempfile::tempdir().unwrap().path().join("gone");
        let mut shelf = Shelf::new(Some(missing));
        let kept = shelf.keep(7_u32);
        assert!(matches!(kept, Kept::Held(_)));
        assert_eq!(shelf.read(&kept).unwrap(), 7);
    }
}
