//! The two C math functions the program uses, so that it needs no `libm.so`.
//!
//! The binary calls only `pow` (tokio's scheduler statistics) and `log` (SQLite's FTS5
//! ranking) from the system's libm, and mapping that library for them kept about 0.6 MB
//! resident in a master at the dispatch benchmark's peak (its code, symbol tables and
//! relocations). Defined here, with the `libm` crate's ports of FreeBSD's implementations
//! (errors under one unit in the last place, as glibc's), both calls resolve inside the
//! binary and the linker, run with `--as-needed`, drops libm from the needed libraries.
//! `tests/start.rs` checks that a running master and worker map no libm.

/// C's `double pow(double, double)`.
#[no_mangle]
pub extern "C" fn pow(x: f64, y: f64) -> f64 {
    libm::pow(x, y)
}

/// C's `double log(double)`: the natural logarithm.
#[no_mangle]
pub extern "C" fn log(x: f64) -> f64 {
    libm::log(x)
}

#[cfg(test)]
mod tests {
    use super::{log, pow};

    #[test]
    fn pow_and_log_give_the_c_library_results() {
        assert_eq!(pow(2.0, -3.0), 0.125);
        assert_eq!(pow(10.0, 0.0), 1.0);
        assert_eq!(pow(9.0, 0.5), 3.0);
        assert!(pow(-8.0, 1.0 / 3.0).is_nan());
        // tokio's use: the weight of a poll-time average after n polls (alpha = 0.1).
        assert_eq!(pow(0.9, 16.0), 0.18530201888518416);
        assert_eq!(log(1.0), 0.0);
        assert_eq!(log(std::f64::consts::E), 1.0);
        assert_eq!(log(1e-300), -690.7755278982137);
        assert_eq!(log(0.0), f64::NEG_INFINITY);
        assert!(log(-1.0).is_nan());
    }
}
