//! The sandbox's optional persistence: an append-only file of JSON lines, one [`Event`] per line,
//! replayed at start.
//!
//! Writes are buffered and flushed once per request, never synced per invoice: a crash may lose the
//! last requests, as a platform outage would, but a restart keeps everything flushed before it. A
//! torn last line (a crash mid-write) is dropped at start; any other unreadable line stops the start
//! with its line number. It must not interpret events: that is the state's business.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::state::Event;

/// Buffer of the journal writer; a request's events usually fit.
const BUFFER_BYTES: usize = 256 * 1024;

/// The open journal.
#[derive(Debug)]
pub(crate) struct Journal {
    path: PathBuf,
    writer: BufWriter<File>,
}

impl Journal {
    /// Opens (creating) the journal at `path`, handing every event already in it to `replay`, in
    /// order. Returns the journal, positioned for appending, and how many events were replayed.
    pub fn open(path: &Path, mut replay: impl FnMut(Event)) -> anyhow::Result<(Self, u64)> {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .with_context(|| format!("opening the sandbox state file {}", path.display()))?;
        let (valid_len, count) = read_events(&file, path, &mut replay)?;
        let len = file
            .metadata()
            .with_context(|| format!("reading the size of {}", path.display()))?
            .len();
        if valid_len < len {
            tracing::warn!(
                path = %path.display(),
                dropped_bytes = len - valid_len,
                "dropping a torn last line of the sandbox state file"
            );
            file.set_len(valid_len)
                .with_context(|| format!("truncating {}", path.display()))?;
        }
        let journal = Self {
            path: path.to_owned(),
            writer: BufWriter::with_capacity(BUFFER_BYTES, file),
        };
        Ok((journal, count))
    }

    /// Buffers one event.
    pub fn append(&mut self, event: &Event) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.writer, event)?;
        self.writer.write_all(b"\n")
    }

    /// Hands the buffered events to the operating system.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.writer.flush()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Replays complete lines; returns the length of the valid prefix of the file and the event count.
fn read_events(
    file: &File,
    path: &Path,
    replay: &mut impl FnMut(Event),
) -> anyhow::Result<(u64, u64)> {
    let mut reader = BufReader::with_capacity(BUFFER_BYTES, file);
    let mut line = Vec::new();
    let (mut valid_len, mut count, mut number) = (0u64, 0u64, 0u64);
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .with_context(|| format!("reading {}", path.display()))?;
        if read == 0 {
            break;
        }
        number += 1;
        if line.last() != Some(&b'\n') {
            // A torn last line: the write it belonged to never completed.
            break;
        }
        let text = line.trim_ascii();
        if !text.is_empty() {
            let event = serde_json::from_slice::<Event>(text).with_context(|| {
                format!("line {number} of {} is not a sandbox event", path.display())
            })?;
            replay(event);
            count += 1;
        }
        valid_len += u64::try_from(read).unwrap_or(0);
    }
    Ok((valid_len, count))
}
