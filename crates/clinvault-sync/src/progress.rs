//! Progress reporting for long operations: the CLI draws bars from these events, the desktop
//! app will forward them to its window. Events carry counts only, never names or content.

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProgressEvent {
    /// A new phase starts; `total` is in `unit`s (bytes or items), 0 when unknown.
    Phase {
        name: &'static str,
        total: u64,
        unit: &'static str,
    },
    /// `done` more units of the current phase are finished.
    Advance { done: u64 },
    /// The current phase is over.
    PhaseDone,
}

pub trait Progress: Send + Sync {
    fn event(&self, event: ProgressEvent);
}

/// Discards every event.
pub struct NoProgress;

impl Progress for NoProgress {
    fn event(&self, _event: ProgressEvent) {}
}

pub(crate) fn phase(p: &dyn Progress, name: &'static str, total: u64, unit: &'static str) {
    p.event(ProgressEvent::Phase { name, total, unit });
}
