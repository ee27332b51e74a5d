//! Hot swap: a handle that scans load an engine from and the updater stores a new one into.
//! A scan holds its own `Arc` for its whole duration, so it finishes on the engine it started
//! with; new scans see the new engine at once; an old engine is freed when its last scan ends.
//! Loading never blocks and never waits for scans (arc-swap).

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::engine::Engine;

pub struct SharedEngine(ArcSwap<Engine>);

impl SharedEngine {
    pub fn new(engine: Engine) -> Self {
        Self(ArcSwap::from_pointee(engine))
    }

    /// The current engine, for one scan.
    pub fn current(&self) -> Arc<Engine> {
        self.0.load_full()
    }

    /// Installs `engine` (built off the scan path by the caller) and returns the previous one.
    pub fn swap(&self, engine: Engine) -> Arc<Engine> {
        self.0.swap(Arc::new(engine))
    }
}
