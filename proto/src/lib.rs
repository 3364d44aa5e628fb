//! The wire contract `fapiao.v1` (in progress).
