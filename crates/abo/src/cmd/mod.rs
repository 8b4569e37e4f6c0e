//! One module per subcommand.

pub mod analyze;
pub mod builds;
pub mod check;
pub mod demo;
pub mod force;
pub mod init;
pub mod log;
pub mod reconfig;
pub mod sendchange;
pub mod start;
pub mod stop;
pub mod user;
pub mod worker;
