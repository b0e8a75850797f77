//! The per-thread read buffer.
//!
//! Every connection on a worker thread reads into the same scratch buffer,
//! so an idle connection holds no read buffer at all; only the bytes of a
//! partial frame are copied into the connection.

use std::cell::RefCell;

/// Large enough that one read can carry hundreds of small PUBLISHes, which
/// is where batching pays; small enough to sit in L2.
pub const SCRATCH_SIZE: usize = 64 * 1024;

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; SCRATCH_SIZE]);
}

/// Runs `f` with this thread's scratch buffer. `f` must not await (it cannot:
/// it is synchronous) and must not call `with_scratch` again.
pub fn with_scratch<R>(f: impl FnOnce(&mut [u8]) -> R) -> R {
    SCRATCH.with(|s| match s.try_borrow_mut() {
        Ok(mut buf) => f(&mut buf),
        // Re-entry would be a bug; fall back to a temporary buffer rather
        // than panic on a connection's path.
        Err(_) => f(&mut vec![0; SCRATCH_SIZE]),
    })
}
