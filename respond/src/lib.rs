//! vigil-respond: what happens after a detection (issue 15, in progress).
