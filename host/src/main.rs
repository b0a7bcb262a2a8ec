//! `vigil`: runs the Vigil detection engine component with its mitigation plugins.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use vigil_host::demo::{self, DemoOptions};
use vigil_host::engine::locate_core_wasm;

/// Environment variable holding the log filter, for example `VIGIL_LOG=debug`.
const LOG_ENV: &str = "VIGIL_LOG";

/// Log filter without `VIGIL_LOG`: warnings, and what plugins log at info and above.
const DEFAULT_LOG_FILTER: &str = "warn,vigil::plugin=info";

#[derive(Parser, Debug)]
#[command(
    name = "vigil",
    version,
    about = "Open IoT fleet anomaly detection compatible with AWS IoT Device Defender Detect",
    after_help = "Logging: set VIGIL_LOG to a tracing filter, for example \
                  VIGIL_LOG=vigil=debug,vigil_host=debug (default: warnings, and what plugins \
                  log at info level)."
)]
struct Cli {
    /// Path of the core component (default: vigil-core.wasm next to this binary, then target/wasm).
    #[arg(long, global = true, value_name = "PATH")]
    core: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the ML Detect guide's flow on a simulated fleet: train, attack, alarm, quarantine.
    Demo(DemoArgs),
    /// Run the engine over recorded data: NAB-style CSV series or device report JSON lines.
    Replay(vigil_host::replay::ReplayArgs),
    /// Measure datapoints scored and learned per second, natively and through wasmtime.
    Bench(vigil_host::bench::BenchArgs),
    /// Measure ML attack recall, precision and false alarms on simulated fleets, per confidence
    /// level.
    BenchFleet(vigil_host::bench_fleet::BenchFleetArgs),
    /// Measure requests per second and latency of the AWS API with many stored profiles and
    /// violation events.
    BenchApi(vigil_host::bench_api::BenchApiArgs),
    /// Measure Device Defender reports per second accepted over MQTT from many connections, and
    /// the latency of their replies.
    BenchMqtt(vigil_host::bench_mqtt::BenchMqttArgs),
    /// Measure mitigation plugin calls per second through the sandbox and the sandbox's cost per
    /// call.
    BenchPlugins(vigil_host::bench_plugins::BenchPluginsArgs),
    /// Run the streaming series detector over a Numenta Anomaly Benchmark corpus and score it
    /// with NAB's rules.
    Nab(vigil_host::nab::NabArgs),
    /// Score stored detector results in NAB's layout with NAB's rules.
    NabScore(vigil_host::nab::NabScoreArgs),
    /// Serve the AWS-compatible Detect API, metrics and the browser demo (loopback only unless
    /// --bind says otherwise).
    Serve(Box<vigil_host::serve::ServeArgs>),
    /// Write a CA, a broker certificate and device certificates for MQTT over TLS.
    MqttCerts(MqttCertsArgs),
    /// List, install and dry-run mitigation plugins.
    Plugin(vigil_host::plugin_cli::PluginArgs),
}

#[derive(clap::Args, Debug)]
struct MqttCertsArgs {
    /// Folder for the PEM files; an existing CA and broker certificate in it are reused.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// A device certificate for this thing (repeatable); its common name is the thing name.
    #[arg(long = "thing", value_name = "NAME")]
    things: Vec<String>,
    /// Another name or address the broker certificate is valid for, besides localhost,
    /// 127.0.0.1 and ::1 (repeatable).
    #[arg(long = "host", value_name = "NAME")]
    hosts: Vec<String>,
}

#[derive(clap::Args, Debug)]
struct DemoArgs {
    /// Directory of mitigation plugin components (default: plugins/ next to this binary, then
    /// target/wasm/plugins).
    #[arg(long, value_name = "DIR")]
    plugins: Option<PathBuf>,
    /// Things in the simulated fleet, 16 to 100000 and at least 16 × --attacks-per-kind.
    #[arg(long, default_value_t = 240, value_parser = clap::value_parser!(u32).range(16..=100_000))]
    things: u32,
    /// Simulated days, 17 to 60; models train for the first 14 and attacks start two days
    /// before the end.
    #[arg(long, default_value_t = 21, value_parser = clap::value_parser!(i64).range(17..=60))]
    days: i64,
    /// Seed of the simulation.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// Attacked things per attack kind (four kinds).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=1000))]
    attacks_per_kind: u32,
}

fn write_mqtt_certs(args: &MqttCertsArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    use vigil_host::mqtt::tls;
    let generated = tls::generate(&args.dir, &args.hosts, &args.things)?;
    for path in &generated.written {
        writeln!(out, "wrote  {}", path.display())?;
    }
    for path in &generated.reused {
        writeln!(out, "kept   {}", path.display())?;
    }
    let dir = args.dir.display();
    writeln!(
        out,
        "serve with: vigil serve --mqtt-tls-cert {dir}/{} --mqtt-tls-key {dir}/{} \\\n  \
         --mqtt-tls-client-ca {dir}/{}",
        tls::files::SERVER_CERTIFICATE,
        tls::files::SERVER_KEY,
        tls::files::CA_CERTIFICATE,
    )?;
    Ok(())
}

fn main() -> std::process::ExitCode {
    init_tracing();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // A closed pipe (for example `vigil nab ... | head`) is the reader's choice, not an error.
        Err(error) if is_broken_pipe(&error) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            report_error(&error);
            std::process::ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}

/// Prints an error; validation problems get one line each.
fn report_error(error: &anyhow::Error) {
    let problems =
        error
            .chain()
            .find_map(|cause| match cause.downcast_ref::<vigil_core::Error>() {
                Some(vigil_core::Error::ValidationFailed(problems)) => Some(problems),
                _ => None,
            });
    let Some(problems) = problems else {
        eprintln!("error: {error:#}");
        return;
    };
    eprintln!("error: {error}: {} problem(s) found", problems.len());
    for problem in problems {
        eprintln!("  - {problem}");
    }
}

fn init_tracing() {
    let (filter, invalid) = match std::env::var(LOG_ENV) {
        Ok(value) => match EnvFilter::try_new(&value) {
            Ok(filter) => (filter, None),
            Err(error) => (EnvFilter::new(DEFAULT_LOG_FILTER), Some((value, error))),
        },
        Err(_) => (EnvFilter::new(DEFAULT_LOG_FILTER), None),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Some((value, error)) = invalid {
        tracing::warn!("ignoring invalid {LOG_ENV}={value:?} ({error}); logging warnings only");
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let core = || locate_core_wasm(cli.core.as_deref());
    let mut stdout = std::io::stdout().lock();
    match cli.command {
        Command::Demo(args) => {
            let options = DemoOptions {
                things: args.things as usize,
                days: args.days,
                seed: args.seed,
                attacks_per_kind: args.attacks_per_kind as usize,
                core_wasm: core()?,
                plugins_dir: vigil_host::plugins::locate_plugins_dir(args.plugins.as_deref())?,
                progress: true,
            };
            if options.things < 16 * options.attacks_per_kind.max(1) {
                anyhow::bail!(
                    "--things must be at least 16 × --attacks-per-kind ({}) so attacked things stay apart",
                    16 * options.attacks_per_kind.max(1)
                );
            }
            demo::run(&options, &mut stdout)?;
        }
        Command::BenchPlugins(args) => {
            vigil_host::bench_plugins::run(&args, &mut stdout)?;
        }
        Command::Plugin(args) => vigil_host::plugin_cli::run(args, &mut stdout)?,
        Command::Replay(args) => vigil_host::replay::run(&args, &core()?, &mut stdout)?,
        Command::Bench(args) => vigil_host::bench::run(&args, &core()?, &mut stdout)?,
        Command::BenchFleet(args) => {
            vigil_host::bench_fleet::run(&args, &mut stdout)?;
        }
        Command::BenchApi(args) => {
            vigil_host::bench_api::run(&args, &core()?, &mut stdout)?;
        }
        Command::BenchMqtt(args) => {
            vigil_host::bench_mqtt::run(&args, &mut stdout)?;
        }
        Command::Nab(args) => vigil_host::nab::run(&args, &mut stdout)?,
        Command::NabScore(args) => vigil_host::nab::run_score(&args, &mut stdout)?,
        Command::Serve(args) => vigil_host::serve::run(&args, &core()?, &mut stdout)?,
        Command::MqttCerts(args) => write_mqtt_certs(&args, &mut stdout)?,
    }
    stdout.flush().context("failed to write to stdout")
}
