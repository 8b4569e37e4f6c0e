//! abo-proto
