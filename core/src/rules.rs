//! Rules Detect: static comparisons, `durationSeconds` windows and fleet percentiles.

use std::collections::VecDeque;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::model::{ComparisonOperator, MetricValue, Timestamp};

/// Returns whether `observed` conforms to a behavior that expects `operator` against `expected`.
/// Returns `None` when the two values have no members in common to compare.
pub fn conforms(
    operator: ComparisonOperator,
    expected: &MetricValue,
    observed: &MetricValue,
) -> Option<bool> {
    use ComparisonOperator as Op;
    match operator {
        Op::LessThan | Op::LessThanEquals | Op::GreaterThan | Op::GreaterThanEquals => {
            let threshold = expected.as_scalar()?;
            let value = observed.as_scalar()?;
            Some(compare_scalar(operator, value, threshold))
        }
        Op::InCidrSet | Op::NotInCidrSet => {
            let set = expected.cidrs.as_ref()?;
            let addresses = observed.cidrs.as_ref()?;
            let all_inside = addresses.iter().all(|a| cidr_set_contains(set, a));
            let none_inside = addresses.iter().all(|a| !cidr_set_contains(set, a));
            Some(if operator == Op::InCidrSet {
                all_inside
            } else {
                none_inside
            })
        }
        Op::InPortSet | Op::NotInPortSet => {
            let set = expected.ports.as_ref()?;
            let ports = observed.ports.as_ref()?;
            let inside = |p: &u16| set.contains(p);
            Some(if operator == Op::InPortSet {
                ports.iter().all(inside)
            } else {
                !ports.iter().any(inside)
            })
        }
        Op::InSet | Op::NotInSet => set_conforms(operator == Op::InSet, expected, observed),
    }
}

fn compare_scalar(operator: ComparisonOperator, value: f64, threshold: f64) -> bool {
    match operator {
        ComparisonOperator::LessThan => value < threshold,
        ComparisonOperator::LessThanEquals => value <= threshold,
        ComparisonOperator::GreaterThan => value > threshold,
        _ => value >= threshold,
    }
}

fn set_conforms(
    expect_inside: bool,
    expected: &MetricValue,
    observed: &MetricValue,
) -> Option<bool> {
    if let (Some(set), Some(values)) = (&expected.strings, &observed.strings) {
        let inside = |v: &String| set.contains(v);
        return Some(if expect_inside {
            values.iter().all(inside)
        } else {
            !values.iter().any(inside)
        });
    }
    let set = expected.numbers.as_ref()?;
    let values = observed.numbers.as_ref()?;
    let inside = |v: &f64| set.contains(v);
    Some(if expect_inside {
        values.iter().all(inside)
    } else {
        !values.iter().any(inside)
    })
}

/// Returns whether `address` (an address or a CIDR block) lies inside any block of `set`.
pub fn cidr_set_contains(set: &[String], address: &str) -> bool {
    let Some((address, _)) = parse_cidr(address) else {
        return false;
    };
    set.iter()
        .filter_map(|block| parse_cidr(block))
        .any(|(network, prefix)| in_network(address, network, prefix))
}

/// Parses `a.b.c.d`, `a.b.c.d/n`, an IPv6 address or an IPv6 block.
pub fn parse_cidr(text: &str) -> Option<(IpAddr, u8)> {
    let (address, prefix) = match text.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix.parse::<u8>().ok()?)),
        None => (text, None),
    };
    let address: IpAddr = address.parse().ok()?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    let prefix = prefix.unwrap_or(max);
    (prefix <= max).then_some((address, prefix))
}

fn in_network(address: IpAddr, network: IpAddr, prefix: u8) -> bool {
    match (address, network) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// Recent datapoints of one (behavior, thing), summed over `durationSeconds`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Window {
    points: VecDeque<(Timestamp, f64)>,
}

impl Window {
    /// Adds a datapoint and returns the sum of the datapoints in `(timestamp - duration, timestamp]`.
    pub fn push(&mut self, timestamp: Timestamp, value: f64, duration_ms: i64) -> f64 {
        self.points.push_back((timestamp, value));
        while let Some(&(oldest, _)) = self.points.front() {
            if oldest > timestamp - duration_ms {
                break;
            }
            self.points.pop_front();
        }
        self.points.iter().map(|(_, v)| v).sum()
    }
}

/// Returns the value at `fraction` (0..=1) of `values` by the nearest-rank method, sorting
/// `values` in place.
pub fn percentile(values: &mut [f64], fraction: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = (fraction * values.len() as f64).ceil() as usize;
    Some(values[rank.clamp(1, values.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use ComparisonOperator as Op;

    fn cidrs(list: &[&str]) -> MetricValue {
        MetricValue {
            cidrs: Some(list.iter().map(|s| s.to_string()).collect()),
            ..MetricValue::default()
        }
    }

    fn ports(list: &[u16]) -> MetricValue {
        MetricValue {
            ports: Some(list.to_vec()),
            ..MetricValue::default()
        }
    }

    #[test]
    fn numeric_operators_state_the_expected_side() {
        let fifty = MetricValue::count(50);
        assert_eq!(
            conforms(Op::LessThanEquals, &fifty, &MetricValue::count(50)),
            Some(true)
        );
        assert_eq!(
            conforms(Op::LessThanEquals, &fifty, &MetricValue::count(51)),
            Some(false)
        );
        assert_eq!(
            conforms(Op::LessThan, &fifty, &MetricValue::count(50)),
            Some(false)
        );
        assert_eq!(
            conforms(Op::GreaterThan, &fifty, &MetricValue::count(51)),
            Some(true)
        );
        assert_eq!(
            conforms(Op::GreaterThanEquals, &fifty, &MetricValue::count(49)),
            Some(false)
        );
        assert_eq!(
            conforms(
                Op::LessThan,
                &MetricValue::number(1.5),
                &MetricValue::number(1.0)
            ),
            Some(true)
        );
    }

    #[test]
    fn port_sets_flag_unexpected_ports() {
        let allowed = ports(&[443, 8883]);
        assert_eq!(
            conforms(Op::InPortSet, &allowed, &ports(&[443])),
            Some(true)
        );
        assert_eq!(
            conforms(Op::InPortSet, &allowed, &ports(&[443, 22])),
            Some(false)
        );
        assert_eq!(
            conforms(Op::NotInPortSet, &allowed, &ports(&[22])),
            Some(true)
        );
        assert_eq!(
            conforms(Op::NotInPortSet, &allowed, &ports(&[22, 8883])),
            Some(false)
        );
    }

    #[test]
    fn empty_lists_always_conform() {
        assert_eq!(
            conforms(Op::InPortSet, &ports(&[443]), &ports(&[])),
            Some(true)
        );
        assert_eq!(
            conforms(Op::NotInCidrSet, &cidrs(&["10.0.0.0/8"]), &cidrs(&[])),
            Some(true)
        );
    }

    #[test]
    fn cidr_sets_match_blocks_and_addresses() {
        let private = cidrs(&["10.0.0.0/8", "fd00::/8"]);
        assert_eq!(
            conforms(Op::InCidrSet, &private, &cidrs(&["10.1.2.3"])),
            Some(true)
        );
        assert_eq!(
            conforms(Op::InCidrSet, &private, &cidrs(&["10.1.2.3", "8.8.8.8"])),
            Some(false)
        );
        assert_eq!(
            conforms(Op::NotInCidrSet, &private, &cidrs(&["fd12::1"])),
            Some(false)
        );
        assert_eq!(
            conforms(Op::NotInCidrSet, &private, &cidrs(&["2001:db8::1"])),
            Some(true)
        );
    }

    #[test]
    fn string_and_number_sets() {
        let expected = MetricValue {
            strings: Some(vec!["a".into(), "b".into()]),
            ..MetricValue::default()
        };
        let observed = |v: &[&str]| MetricValue {
            strings: Some(v.iter().map(|s| s.to_string()).collect()),
            ..MetricValue::default()
        };
        assert_eq!(
            conforms(Op::InSet, &expected, &observed(&["a"])),
            Some(true)
        );
        assert_eq!(
            conforms(Op::InSet, &expected, &observed(&["a", "c"])),
            Some(false)
        );
        assert_eq!(
            conforms(Op::NotInSet, &expected, &observed(&["c"])),
            Some(true)
        );
        let numbers = MetricValue {
            numbers: Some(vec![1.0, 2.0]),
            ..MetricValue::default()
        };
        let observed_numbers = MetricValue {
            numbers: Some(vec![3.0]),
            ..MetricValue::default()
        };
        assert_eq!(
            conforms(Op::NotInSet, &numbers, &observed_numbers),
            Some(true)
        );
        assert_eq!(
            conforms(Op::InSet, &numbers, &observed_numbers),
            Some(false)
        );
    }

    #[test]
    fn mismatched_members_cannot_be_compared() {
        assert_eq!(
            conforms(Op::LessThan, &MetricValue::count(1), &ports(&[1])),
            None
        );
    }

    #[test]
    fn window_sums_the_trailing_duration() {
        let mut window = Window::default();
        assert_eq!(window.push(300_000, 1.0, 600_000), 1.0);
        assert_eq!(window.push(600_000, 2.0, 600_000), 3.0);
        assert_eq!(window.push(900_000, 4.0, 600_000), 6.0);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let mut values = vec![5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!(percentile(&mut values, 0.0), Some(1.0));
        assert_eq!(percentile(&mut values, 0.5), Some(3.0));
        assert_eq!(percentile(&mut values, 0.9), Some(5.0));
        assert_eq!(percentile(&mut values, 1.0), Some(5.0));
        assert_eq!(percentile(&mut [], 0.5), None);
    }
}
