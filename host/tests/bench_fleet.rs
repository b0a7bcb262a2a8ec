//! The fleet attack benchmark at small scale: MEDIUM catches every attack kind within three
//! datapoints, HIGH raises no false alarm on clean things, and the report prints one parseable
//! line per level and attack kind.

use std::sync::OnceLock;

use vigil_host::bench_fleet::{self, FleetBenchOptions, FleetBenchReport, Goal, LEVELS};
use vigil_host::sim::AttackKind;

const LOW: usize = 0;
const MEDIUM: usize = 1;
const HIGH: usize = 2;

/// Two fleets of 32 things with 2 evaluation days, simulated once for all tests.
fn small_fleet() -> &'static FleetBenchReport {
    static REPORT: OnceLock<FleetBenchReport> = OnceLock::new();
    REPORT.get_or_init(|| {
        let options = FleetBenchOptions {
            seeds: vec![1, 2],
            things: 32,
            evaluation_days: 2,
            progress: false,
        };
        bench_fleet::measure(&options).unwrap()
    })
}

#[test]
fn medium_catches_every_attack_quickly() {
    let report = small_fleet();
    // Each fleet attacks 8 of its 32 things, so every kind is injected twice per fleet.
    assert_eq!(report.attacks.len(), 16);
    for kind in AttackKind::ALL {
        let summary = report.kind_summary(MEDIUM, kind);
        assert_eq!(summary.attacks, 4, "{} attacks", kind.slug());
        assert_eq!(summary.detected, 4, "{} detected", kind.slug());
        assert_eq!(summary.median_delay, Some(1.0), "{} delay", kind.slug());
    }
    assert_eq!(report.level_summary(MEDIUM).goal, Goal::Met);
}

#[test]
fn high_raises_no_clean_alarms() {
    let high = small_fleet().level_summary(HIGH);
    // 2 × 24 clean things, each watched for 2 days minus the 5 minutes before the first build.
    let expected_days = 48.0 * (2.0 - 5.0 / 1440.0);
    assert!(
        (high.clean_device_days - expected_days).abs() < 1e-9,
        "clean device-days {}",
        high.clean_device_days
    );
    assert_eq!(high.clean_alarms, 0);
    assert_eq!(high.false_alarms_per_1000_device_days, 0.0);
    assert_eq!(high.goal, Goal::Met);
    assert!(high.alarms > 0, "HIGH raised no alarm at all");
    assert!(high.precision >= 0.9, "HIGH precision {}", high.precision);
}

#[test]
fn stricter_levels_detect_no_more_attacks() {
    let report = small_fleet();
    let detected = |level| report.level_summary(level).detected;
    assert_eq!(detected(LOW), 16);
    assert!(detected(MEDIUM) <= detected(LOW));
    assert!(detected(HIGH) <= detected(MEDIUM));
    assert!(detected(HIGH) >= 14, "HIGH detected {}", detected(HIGH));
}

#[test]
fn report_has_line_per_level_and_kind() {
    let mut out = Vec::new();
    bench_fleet::write_report(small_fleet(), &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("BENCH-FLEET "))
        .collect();
    assert_eq!(lines.len(), LEVELS.len() * (AttackKind::ALL.len() + 1));

    let flood = "BENCH-FLEET level=MEDIUM kind=message-flood attacks=4 detected=4 late=0 \
                 recall=1.000 median_delay=1";
    assert!(lines.contains(&flood), "{text}");
    let high = lines
        .iter()
        .find(|l| l.starts_with("BENCH-FLEET level=HIGH engine=native "))
        .expect("a HIGH summary line");
    assert!(
        high.contains(" false_alarms_per_1000_device_days=0.000 "),
        "{high}"
    );
    assert!(high.ends_with(" goal=met"), "{high}");
}
