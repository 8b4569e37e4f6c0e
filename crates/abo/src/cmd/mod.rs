//! One module per subcommand.

pub mod analyze;
pub mod check;
pub mod init;
pub mod start;
pub mod worker;
