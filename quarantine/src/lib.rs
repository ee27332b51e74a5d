//! vigil-quarantine: the quarantine store and its safety policy (issue 15, in progress).
