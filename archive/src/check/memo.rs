//! Per-thread memos of work that the checks of one invoice's files (and of consecutive invoices)
//! would otherwise repeat: the font subset, which the OFD and the PDF embed with the same
//! compressed bytes; the template page, which is the same for every invoice of a kind; and the
//! invoice XML, which the OFD attaches byte for byte.
//!
//! A memo is keyed by the complete input bytes, compared in full, so a result is only ever reused
//! for identical input: a changed byte is a miss, never a stale verdict. It must not grow without
//! bound (a few small entries per thread) and holds nothing that identifies a caller.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::Arc;

/// Entries kept per memo: the files of one invoice and the templates of both kinds fit.
const CAPACITY: usize = 4;
/// Inputs larger than this are not kept: memory per thread stays in the low megabytes.
const MAX_KEY_BYTES: usize = 1024 * 1024;

/// A small most-recently-added cache from byte strings to values.
#[derive(Debug)]
pub(crate) struct Memo<T> {
    entries: VecDeque<(Box<[u8]>, T)>,
}

impl<T: Clone> Memo<T> {
    pub(crate) const fn new() -> Self {
        Self {
            entries: VecDeque::new(),
        }
    }

    fn get(&self, key: &[u8]) -> Option<T> {
        self.entries
            .iter()
            .find(|(k, _)| k.len() == key.len() && **k == *key)
            .map(|(_, v)| v.clone())
    }

    fn put(&mut self, key: &[u8], value: T) {
        if key.len() > MAX_KEY_BYTES {
            return;
        }
        if self.entries.len() >= CAPACITY {
            self.entries.pop_back();
        }
        self.entries.push_front((key.into(), value));
    }
}

/// The memoised value for `key` in `memo`, or `make()`'s, kept when it succeeds. The memo is not
/// borrowed while `make` runs, so `make` may use other memos.
pub(crate) fn get_or_try<T: Clone, E>(
    memo: &'static std::thread::LocalKey<RefCell<Memo<T>>>,
    key: &[u8],
    make: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    if let Some(hit) = memo.with(|m| m.try_borrow().ok().and_then(|m| m.get(key))) {
        return Ok(hit);
    }
    let value = make()?;
    memo.with(|m| {
        if let Ok(mut m) = m.try_borrow_mut() {
            m.put(key, value.clone());
        }
    });
    Ok(value)
}

thread_local! {
    /// Raw deflate data → the inflated bytes (font programs).
    pub(crate) static INFLATED: RefCell<Memo<Arc<[u8]>>> = const { RefCell::new(Memo::new()) };
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        static TEST: RefCell<Memo<u32>> = const { RefCell::new(Memo::new()) };
    }

    #[test]
    fn reuses_only_identical_keys_and_stays_small() {
        let mut calls = 0;
        let mut get = |key: &[u8]| {
            get_or_try(&TEST, key, || {
                calls += 1;
                Ok::<_, ()>(u32::try_from(key.len()).unwrap())
            })
            .unwrap()
        };
        assert_eq!(get(b"abc"), 3);
        assert_eq!(get(b"abc"), 3);
        assert_eq!(get(b"abd"), 3);
        for key in [b"1".as_slice(), b"22", b"333", b"4444"] {
            get(key);
        }
        assert_eq!(get(b"abc"), 3, "evicted, made again");
        assert_eq!(calls, 7);
        let failed = get_or_try(&TEST, b"e", || Err::<u32, _>("no"));
        assert_eq!(failed, Err("no"));
        assert_eq!(
            get_or_try(&TEST, b"e", || Ok::<_, ()>(9)),
            Ok(9),
            "errors are not kept"
        );
    }
}
