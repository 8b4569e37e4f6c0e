//! abo-plan
