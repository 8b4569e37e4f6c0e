//! Watch lists (being written).
