//! Time as the core sees it. Everything that depends on the time (session expiry, throttling,
//! TOTP, audit timestamps) asks a `Clock`, so tests can move time instead of sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

pub trait Clock: Send + Sync {
    fn now(&self) -> jiff::Timestamp;
}

/// The wall clock: time spent asleep or suspended counts, as an idle lock requires.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> jiff::Timestamp {
        jiff::Timestamp::now()
    }
}

/// A clock tests set and advance by hand.
#[derive(Clone)]
pub struct ManualClock {
    seconds: Arc<AtomicI64>,
}

impl ManualClock {
    pub fn at(seconds_since_epoch: i64) -> Self {
        ManualClock {
            seconds: Arc::new(AtomicI64::new(seconds_since_epoch)),
        }
    }

    pub fn advance(&self, seconds: i64) {
        self.seconds.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> jiff::Timestamp {
        jiff::Timestamp::from_second(self.seconds.load(Ordering::SeqCst))
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
    }
}

pub fn rfc3339(ts: jiff::Timestamp) -> String {
    ts.to_string()
}
