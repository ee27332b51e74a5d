//! The agent's current [`Responder`], shared by the scheduled scans, the scan service and the
//! main loop, and replaced whole when SIGHUP brings a new configuration: a scan keeps the one
//! it started with.

use std::sync::{Arc, PoisonError, RwLock};

use vigil_respond::Responder;

#[derive(Debug, Default)]
pub struct ResponderSlot(RwLock<Option<Arc<Responder>>>);

impl ResponderSlot {
    pub fn new(r: Option<Arc<Responder>>) -> Self {
        Self(RwLock::new(r))
    }

    pub fn get(&self) -> Option<Arc<Responder>> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn set(&self, r: Option<Arc<Responder>>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = r;
    }
}
