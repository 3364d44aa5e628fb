//! The `fapiao` binary.

fn main() {}
