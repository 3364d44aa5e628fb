//! Counting what each caller holds: unary calls and server streams in flight, per caller and in
//! total. A call is admitted only below both limits, and what it holds is given back when its
//! [`Permit`] is dropped, however the call ends (answered, failed, cancelled, or its stream
//! dropped by the client).

use super::config::ServerConfig;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What a call holds while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Call,
    Stream,
}

/// Which limit refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The caller's own share is in use.
    Caller(Kind),
    /// The server's total is in use.
    Total(Kind),
}

impl Refusal {
    /// The stable code a refused caller reads.
    pub fn code(self) -> &'static str {
        match self {
            Self::Caller(Kind::Call) => "CALLER_CALL_LIMIT",
            Self::Caller(Kind::Stream) => "CALLER_STREAM_LIMIT",
            Self::Total(Kind::Call) => "SERVER_CALL_LIMIT",
            Self::Total(Kind::Stream) => "SERVER_STREAM_LIMIT",
        }
    }

    /// The `limit` label of the refusal metric.
    pub fn label(self) -> &'static str {
        match self {
            Self::Caller(Kind::Call) => "caller_calls",
            Self::Caller(Kind::Stream) => "caller_streams",
            Self::Total(Kind::Call) => "total_calls",
            Self::Total(Kind::Stream) => "total_streams",
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Held {
    calls: usize,
    streams: usize,
}

impl Held {
    fn of(&mut self, kind: Kind) -> &mut usize {
        match kind {
            Kind::Call => &mut self.calls,
            Kind::Stream => &mut self.streams,
        }
    }
}

#[derive(Debug, Default)]
struct Book {
    total: Held,
    /// Only callers holding something; an entry goes when its caller holds nothing.
    by_caller: HashMap<Arc<str>, Held>,
}

/// The counts, shared by every call.
#[derive(Debug, Clone)]
pub struct Admission {
    limits: Arc<ServerConfig>,
    book: Arc<Mutex<Book>>,
}

/// What an admitted call holds; dropping it gives it back.
#[derive(Debug)]
pub struct Permit {
    admission: Admission,
    caller: Arc<str>,
    kind: Kind,
}

impl Admission {
    pub fn new(limits: Arc<ServerConfig>) -> Self {
        Self {
            limits,
            book: Arc::new(Mutex::new(Book::default())),
        }
    }

    fn limits_of(&self, kind: Kind) -> (usize, usize) {
        match kind {
            Kind::Call => (self.limits.calls_per_caller, self.limits.calls_total),
            Kind::Stream => (self.limits.streams_per_caller, self.limits.streams_total),
        }
    }

    /// Admit a call of `kind` by `caller`, or say which limit refuses it.
    pub fn admit(&self, caller: &Arc<str>, kind: Kind) -> Result<Permit, Refusal> {
        let (per_caller, total) = self.limits_of(kind);
        let mut book = self
            .book
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let held_by_caller = book.by_caller.get(caller).map_or(0, |h| match kind {
            Kind::Call => h.calls,
            Kind::Stream => h.streams,
        });
        if held_by_caller >= per_caller {
            return Err(Refusal::Caller(kind));
        }
        if *book.total.of(kind) >= total {
            return Err(Refusal::Total(kind));
        }
        *book.total.of(kind) += 1;
        *book.by_caller.entry(caller.clone()).or_default().of(kind) += 1;
        Ok(Permit {
            admission: self.clone(),
            caller: caller.clone(),
            kind,
        })
    }

    /// Calls and streams in flight, in total.
    pub fn in_flight(&self) -> (usize, usize) {
        let book = self
            .book
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        (book.total.calls, book.total.streams)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut book = self
            .admission
            .book
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let total = book.total.of(self.kind);
        *total = total.saturating_sub(1);
        if let Some(held) = book.by_caller.get_mut(&self.caller) {
            let count = held.of(self.kind);
            *count = count.saturating_sub(1);
            if held.calls == 0 && held.streams == 0 {
                book.by_caller.remove(&self.caller);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(per_caller: usize, total: usize) -> Admission {
        Admission::new(Arc::new(ServerConfig {
            calls_per_caller: per_caller,
            calls_total: total,
            streams_per_caller: per_caller,
            streams_total: total,
            ..ServerConfig::default()
        }))
    }

    #[test]
    fn a_caller_gets_its_share_and_no_more_and_gets_it_back() {
        let admission = admission(2, 10);
        let a: Arc<str> = Arc::from("a");
        let first = admission.admit(&a, Kind::Call).unwrap();
        let _second = admission.admit(&a, Kind::Call).unwrap();
        assert_eq!(
            admission.admit(&a, Kind::Call).unwrap_err(),
            Refusal::Caller(Kind::Call)
        );
        // Streams are counted apart from calls.
        let _stream = admission.admit(&a, Kind::Stream).unwrap();
        drop(first);
        assert!(admission.admit(&a, Kind::Call).is_ok());
    }

    #[test]
    fn the_total_is_shared_and_entries_go_when_nothing_is_held() {
        let admission = admission(5, 3);
        let names: Vec<Arc<str>> = ["a", "b", "c", "d"].into_iter().map(Arc::from).collect();
        let held: Vec<Permit> = names[..3]
            .iter()
            .map(|n| admission.admit(n, Kind::Stream).unwrap())
            .collect();
        assert_eq!(
            admission.admit(&names[3], Kind::Stream).unwrap_err(),
            Refusal::Total(Kind::Stream)
        );
        assert_eq!(admission.in_flight(), (0, 3));
        drop(held);
        assert_eq!(admission.in_flight(), (0, 0));
        assert!(admission.book.lock().unwrap().by_caller.is_empty());
        assert_eq!(Refusal::Total(Kind::Stream).code(), "SERVER_STREAM_LIMIT");
    }
}
