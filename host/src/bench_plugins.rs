//! `vigil bench-plugins`: mitigation plugin calls per second through the sandbox, and what the
//! sandbox costs per call.
//!
//! Two workloads run through the bundled `add-things-to-thing-group` plugin on one thread:
//!
//! - `quarantine`: a full execution. The host reads the thing's snapshot, sets the fuel budget,
//!   lowers the execution context into the plugin, the plugin checks its parameters, asks for
//!   one group membership and logs it, and the host performs the staged addition on an
//!   in-memory registry.
//! - `rejected`: the same call with no parameters, which the plugin refuses at once without a
//!   host call. Its time is the fixed cost of entering and leaving the sandbox, and so the
//!   per-call overhead of sandboxing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, bail};
use indicatif::{ProgressBar, ProgressStyle};

use crate::bindings::engine::vigil::detect::types::{
    AddThingsToThingGroupParams, Behavior, MitigationActionParams,
};
use crate::plugins::{
    CapabilityError, ExecutionContext, MitigationActionType, PluginHost, PluginLimits, Registry,
    StagedOperation, ThingSnapshot,
};

/// Arguments of `vigil bench-plugins`.
#[derive(clap::Args, Debug)]
pub struct BenchPluginsArgs {
    /// Directory of mitigation plugin components (default: plugins/ next to this binary, then
    /// target/wasm/plugins).
    #[arg(long, value_name = "DIR")]
    pub plugins: Option<PathBuf>,
    /// Calls timed per workload, after 1% of them as a warm-up.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(100..=10_000_000))]
    pub calls: u32,
}

/// Timing of one workload.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadResult {
    /// Workload name.
    pub workload: &'static str,
    /// Calls timed.
    pub calls: usize,
    /// Calls per second on one thread.
    pub per_second: f64,
    /// Median call time in microseconds.
    pub p50_us: f64,
    /// 99th percentile call time in microseconds.
    pub p99_us: f64,
    /// Fuel one call used.
    pub fuel: u64,
}

impl WorkloadResult {
    /// The committed output line.
    pub fn line(&self) -> String {
        format!(
            "BENCH-PLUGINS plugin=add-things-to-thing-group workload={} calls={} calls_per_s={:.0} \
             p50_us={:.1} p99_us={:.1} fuel={}",
            self.workload, self.calls, self.per_second, self.p50_us, self.p99_us, self.fuel
        )
    }
}

/// A registry where every thing exists with no groups, and every addition succeeds.
struct CountingRegistry {
    performed: usize,
}

impl Registry for CountingRegistry {
    fn snapshot(&mut self, _: &str) -> Result<ThingSnapshot, CapabilityError> {
        Ok(ThingSnapshot::default())
    }

    fn perform(&mut self, _: &StagedOperation) -> Result<(), CapabilityError> {
        self.performed += 1;
        Ok(())
    }
}

/// Runs both workloads and prints one `BENCH-PLUGINS` line each, then the overhead line.
pub fn run(args: &BenchPluginsArgs, out: &mut dyn Write) -> anyhow::Result<Vec<WorkloadResult>> {
    let dir = crate::plugins::locate_plugins_dir(args.plugins.as_deref())?;
    let mut host = PluginHost::new(PluginLimits::default())?;
    let plugin = dir.join("add-things-to-thing-group.wasm");
    load_quietly(&mut host, &plugin)?;

    let calls = args.calls as usize;
    let quarantine = time_workload(&mut host, "quarantine", &context(true), calls, true)?;
    let rejected = time_workload(&mut host, "rejected", &context(false), calls, false)?;
    for result in [&quarantine, &rejected] {
        writeln!(out, "{}", result.line())?;
    }
    writeln!(
        out,
        "BENCH-PLUGINS sandbox_overhead_us={:.1} share_of_quarantine={:.2}",
        rejected.p50_us,
        rejected.p50_us / quarantine.p50_us
    )?;
    Ok(vec![quarantine, rejected])
}

fn load_quietly(host: &mut PluginHost, plugin: &Path) -> anyhow::Result<()> {
    host.load(plugin)
        .with_context(|| format!("failed to load `{}` for the benchmark", plugin.display()))?;
    Ok(())
}

/// Times `calls` executions of `context` after a warm-up, checking each outcome.
fn time_workload(
    host: &mut PluginHost,
    workload: &'static str,
    context: &ExecutionContext,
    calls: usize,
    expect_success: bool,
) -> anyhow::Result<WorkloadResult> {
    let mut registry = CountingRegistry { performed: 0 };
    // Plugin logs would dominate the timing; the workload measures the sandbox, not the log.
    let quiet = tracing::subscriber::set_default(tracing::subscriber::NoSubscriber::default());
    for _ in 0..(calls / 100).max(1) {
        host.apply(&mut registry, context);
    }

    let progress = progress_bar(workload, calls);
    let mut times = Vec::with_capacity(calls);
    let mut fuel = 0;
    let started = Instant::now();
    for call in 0..calls {
        let begin = Instant::now();
        let outcome = host.apply(&mut registry, context);
        times.push(begin.elapsed().as_secs_f64() * 1e6);
        if outcome.is_successful() != expect_success {
            bail!(
                "call {call} of workload `{workload}` ended {:?}, not as expected",
                outcome.failure
            );
        }
        fuel = outcome.fuel_consumed;
        if call % 1024 == 0 {
            progress.set_position(call as u64);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    progress.finish_and_clear();
    drop(quiet);

    times.sort_by(f64::total_cmp);
    Ok(WorkloadResult {
        workload,
        calls,
        per_second: calls as f64 / elapsed,
        p50_us: percentile(&times, 0.50),
        p99_us: percentile(&times, 0.99),
        fuel,
    })
}

fn progress_bar(workload: &str, calls: usize) -> ProgressBar {
    let progress = ProgressBar::new(calls as u64);
    let style = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} calls")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    progress.set_style(style);
    progress.set_message(format!("bench-plugins {workload}"));
    progress
}

/// The value at quantile `q` of sorted `values`.
fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let index = ((values.len() - 1) as f64 * q).round() as usize;
    values[index]
}

/// An execution of `add-things-to-thing-group`, with or without its parameters.
fn context(with_params: bool) -> ExecutionContext {
    let group_params = with_params.then(|| AddThingsToThingGroupParams {
        thing_group_names: vec!["quarantine".to_string()],
        override_dynamic_groups: None,
    });
    ExecutionContext {
        task_id: "bench".to_string(),
        action_name: "quarantine".to_string(),
        action_type: MitigationActionType::AddThingsToThingGroup,
        action_params: MitigationActionParams {
            update_device_certificate_params: None,
            update_ca_certificate_params: None,
            add_things_to_thing_group_params: group_params,
            replace_default_policy_version_params: None,
            enable_iot_logging_params: None,
            publish_finding_to_sns_params: None,
        },
        plugin_params: None,
        role_arn: "arn:aws:iam::123456789012:role/bench".to_string(),
        violation_id: "0123456789abcdef0123456789abcdef".to_string(),
        thing_name: "sensor-1".to_string(),
        security_profile_name: "bench".to_string(),
        behavior: Behavior {
            name: "many-messages".to_string(),
            metric: Some("aws:num-messages-sent".to_string()),
            metric_dimension: None,
            criteria: None,
            suppress_alerts: None,
            export_metric: None,
        },
        observed_value: None,
        additional_info: None,
        violation_start_time: 0,
        execution_time: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_picks_the_nearest_rank() {
        let values = [1.0, 2.0, 3.0, 4.0, 5.0];

        assert_eq!(percentile(&values, 0.5), 3.0);
        assert_eq!(percentile(&values, 0.99), 5.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn result_line_has_the_committed_format() {
        let result = WorkloadResult {
            workload: "quarantine",
            calls: 100,
            per_second: 12_345.6,
            p50_us: 70.04,
            p99_us: 120.0,
            fuel: 5426,
        };

        assert_eq!(
            result.line(),
            "BENCH-PLUGINS plugin=add-things-to-thing-group workload=quarantine calls=100 \
             calls_per_s=12346 p50_us=70.0 p99_us=120.0 fuel=5426"
        );
    }
}
