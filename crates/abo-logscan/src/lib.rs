//! abo-logscan
