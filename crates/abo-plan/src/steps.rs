//! Build steps (being written).
