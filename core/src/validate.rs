//! Validation of security profiles, behaviors and mitigation actions.
