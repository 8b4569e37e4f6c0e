//! Version filters (being written).
