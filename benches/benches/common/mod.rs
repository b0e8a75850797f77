//! What the criterion benches share.

use std::time::Duration;

use criterion::Criterion;

/// Short runs: these are for spotting regressions of 2x, not 2%, on a
/// shared two-core machine; each bench file runs in about a minute.
pub fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}
