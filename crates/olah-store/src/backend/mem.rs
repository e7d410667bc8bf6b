//! In-memory backends, for tests (pingora's `memory.rs` idea).
