//! Deterministic identifiers, so a replay of the same input yields the same violation ids.

/// Derives a 32-character lowercase hex id from `parts`, like the ids AWS assigns to violations.
pub fn hex_id(parts: &[&str]) -> String {
    let high = fnv1a(parts, 0xcbf2_9ce4_8422_2325);
    let low = fnv1a(parts, 0x8422_2325_cbf2_9ce4);
    format!("{:016x}{:016x}", mix(high), mix(low ^ high))
}

fn fnv1a(parts: &[&str], seed: u64) -> u64 {
    let mut hash = seed;
    for part in parts {
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        for byte in part.bytes().chain(std::iter::once(0xff)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

/// Applies the splitmix64 finaliser, which spreads every input bit over the output.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_32_lowercase_hex_characters() {
        let id = hex_id(&["lamp-1", "profile", "behavior", "1700000000000"]);
        assert_eq!(id.len(), 32);
        assert!(
            id.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
    }

    #[test]
    fn ids_are_stable_and_distinct() {
        assert_eq!(hex_id(&["a", "b"]), hex_id(&["a", "b"]));
        assert_ne!(hex_id(&["ab", "c"]), hex_id(&["a", "bc"]));
    }
}
