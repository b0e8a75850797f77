//! Graceful shutdown passed down as a value: the server holds the
//! [`Shutdown`] trigger; every listener and connection holds a
//! [`ShutdownSignal`] to wait on.

use tokio::sync::watch;

#[derive(Debug)]
pub struct Shutdown {
    tx: watch::Sender<bool>,
}

#[derive(Debug, Clone)]
pub struct ShutdownSignal {
    rx: watch::Receiver<bool>,
}

impl Shutdown {
    pub fn new() -> (Shutdown, ShutdownSignal) {
        let (tx, rx) = watch::channel(false);
        (Shutdown { tx }, ShutdownSignal { rx })
    }

    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }
}

impl ShutdownSignal {
    /// Resolves once shutdown has been triggered (at once if it already
    /// was). Cancel-safe, so it can sit in a `select!` loop.
    pub async fn wait(&mut self) {
        // An error means the trigger is gone, which also means shutdown.
        let _ = self.rx.wait_for(|down| *down).await;
    }

    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }
}
