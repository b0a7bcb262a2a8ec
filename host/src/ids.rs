//! Deterministic UUIDs for resources the host creates, so demo output is reproducible.

/// Derives a UUID in version-4 layout from `parts`.
pub fn uuid_from(parts: &[&str]) -> String {
    let hex = vigil_core::ids::hex_id(parts);
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}
