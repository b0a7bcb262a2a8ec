//! The demo at small scale: attacked things alarm and end up quarantined, clean things do not.

use std::path::Path;

use vigil_host::demo::{self, DemoOptions};
use vigil_host::engine::locate_core_wasm;

#[test]
fn small_demo_catches_and_quarantines_every_attack() {
    let core_wasm = locate_core_wasm(None).expect("run `cargo xtask build-wasm` first");
    let plugins_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm/plugins");
    let options = DemoOptions {
        things: 48,
        days: 17,
        seed: 7,
        attacks_per_kind: 1,
        core_wasm,
        plugins_dir,
        progress: false,
    };
    let mut transcript = Vec::new();
    let report = demo::run(&options, &mut transcript).unwrap();
    let transcript = String::from_utf8(transcript).unwrap();

    assert_eq!(report.attacks.len(), 4);
    for attack in &report.attacks {
        assert!(
            attack.delay_datapoints.is_some(),
            "{} was missed: {transcript}",
            attack.thing
        );
        assert!(
            attack.delay_datapoints.unwrap() <= 3,
            "{} was caught late",
            attack.thing
        );
        assert!(attack.quarantined, "{} was not quarantined", attack.thing);
    }
    assert_eq!(report.clean_quarantined, 0);
    assert_eq!(report.false_alarms, 0);
    assert!(transcript.contains("\"modelStatus\": \"PENDING_BUILD\""));
    assert!(transcript.contains("\"modelStatus\": \"ACTIVE\""));
    assert!(transcript.contains("\"status\": \"SUCCESSFUL\""));
}
