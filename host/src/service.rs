//! The state behind `vigil serve`: the core engine with its journal, the database, the plugins,
//! the clock and an optional simulated fleet.
//!
//! Every request runs as one unit: it applies commands to the engine, then [`Service::commit`]
//! writes their journal entries, the violation events and retained metric values they produced
//! and the request's own rows in one transaction. If that transaction fails, the engine is
//! rebuilt from the database, so memory never contains state the disk does not.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use rusqlite::Transaction;
use vigil_core::EngineConfig;
use vigil_core::catalogue::{DAY_MS, PERIOD_MS};
use vigil_core::ingest::Datapoint;
use vigil_core::model::{Timestamp, VerificationState};

use crate::engine::CoreEngine;
use crate::journal::{Command, Journaled, Uncommitted};
use crate::plugins::PluginHost;
use crate::sim::{AttackKind, Fleet};
use crate::store::registry::RegistryWrite;
use crate::store::{self, Store, ThingGroupRecord};

/// Commands between snapshots; a restart replays at most this many.
const SNAPSHOT_EVERY_COMMANDS: usize = 2_000;
/// Maximum time between snapshots while commands arrive.
const SNAPSHOT_EVERY: Duration = Duration::from_secs(60);

/// Event time: the wall clock, or a faster one for simulations.
#[derive(Clone, Debug)]
pub struct Clock {
    started: Instant,
    origin: Timestamp,
    scale: f64,
}

impl Clock {
    /// A clock starting at `origin` and running `scale` times faster than the wall clock.
    pub fn new(origin: Timestamp, scale: f64) -> Self {
        Self {
            started: Instant::now(),
            origin,
            scale,
        }
    }

    /// Changes the speed from now on; event time continues from where it is.
    pub fn set_scale(&mut self, scale: f64) {
        self.origin = self.now();
        self.started = Instant::now();
        self.scale = scale;
    }

    /// The current event time in milliseconds since the epoch.
    pub fn now(&self) -> Timestamp {
        let elapsed = self.started.elapsed().as_secs_f64() * 1000.0 * self.scale;
        self.origin.saturating_add(elapsed as i64)
    }
}

/// Milliseconds since the epoch by the wall clock.
pub fn wall_clock_ms() -> Timestamp {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A row the request writes next to its journal entries.
#[derive(Clone, Debug)]
pub enum Write {
    /// Set tags on a resource.
    Tags(String, Vec<(String, String)>),
    /// Remove tag keys from a resource.
    Untag(String, Vec<String>),
    /// Remove every tag of a deleted resource.
    DropTags(String),
    /// Record a thing group's metadata.
    ThingGroup(String, ThingGroupRecord),
    /// Remove a thing group's metadata.
    DropThingGroup(String),
    /// Record a thing's id.
    Thing(String, String),
    /// Remember the response of an idempotent request.
    RequestToken {
        /// Operation the token belongs to.
        scope: String,
        /// The client's token.
        token: String,
        /// The response body to repeat.
        response: String,
    },
    /// Store or clear extra fields of a security profile.
    ProfileExtras(String, Option<serde_json::Value>),
    /// Label the stored events of a violation.
    Verification(String, VerificationState, Option<String>),
    /// Record the event time reached.
    Clock(Timestamp),
    /// Store a notification for delivery.
    Notification(crate::alerts::Notification),
    /// Change certificates, policies, thing attributes or logging options.
    Registry(RegistryWrite),
}

impl Write {
    fn apply(&self, tx: &Transaction<'_>) -> anyhow::Result<()> {
        use store::write;
        match self {
            Write::Tags(arn, tags) => write::tags(tx, arn, tags),
            Write::Untag(arn, keys) => write::untag(tx, arn, keys),
            Write::DropTags(arn) => write::drop_tags(tx, arn),
            Write::ThingGroup(name, record) => write::thing_group(tx, name, record),
            Write::DropThingGroup(name) => write::drop_thing_group(tx, name),
            Write::Thing(name, id) => write::thing(tx, name, id),
            Write::RequestToken {
                scope,
                token,
                response,
            } => write::request_token(tx, scope, token, response),
            Write::ProfileExtras(name, extras) => write::profile_extras(tx, name, extras.as_ref()),
            Write::Verification(id, state, description) => {
                write::verification_state(tx, id, *state, description.as_deref())
            }
            Write::Clock(now) => write::meta(tx, "clock", &now.to_string()),
            Write::Notification(notification) => write::notification(tx, notification),
            Write::Registry(write) => write.apply(tx),
        }
    }
}

/// Settings of the service.
#[derive(Clone, Debug)]
pub struct ServiceOptions {
    /// Folder of the database.
    pub data_dir: PathBuf,
    /// The core component.
    pub core_path: PathBuf,
    /// Engine settings used when the database is new.
    pub engine: EngineConfig,
    /// Whether the user chose any engine setting, so a database that keeps other ones warns.
    pub engine_settings_given: bool,
    /// Event time runs this many times faster than the wall clock.
    pub time_scale: f64,
    /// Simulated things to feed, 0 for none.
    pub simulate: usize,
    /// Simulated days after start-up at which attacks begin.
    pub attack_after_days: i64,
}

/// A simulated thing under attack, for `/vigil/simulation`.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SimulatedAttack {
    /// The attacked thing.
    pub thing_name: String,
    /// Kind of attack.
    pub kind: String,
    /// Start, epoch seconds.
    pub start_time: f64,
}

/// A simulated fleet fed by the service's ticker.
struct Simulation {
    fleet: Fleet,
    next_period: Timestamp,
    attacks: Vec<SimulatedAttack>,
}

/// The engine, its storage, the plugins and the clock.
pub struct Service {
    engine: Journaled,
    store: Store,
    /// Taken out while a mitigation task runs, so the task can borrow the rest of the service.
    plugins: Option<PluginHost>,
    core_path: PathBuf,
    engine_config: EngineConfig,
    clock: Clock,
    simulation: Option<Simulation>,
    commands_since_snapshot: usize,
    last_snapshot: Instant,
    writes: Vec<Write>,
    /// Event time of the last `AdvanceTime` command.
    advanced_to: Timestamp,
}

impl Service {
    /// Opens the database in `options.data_dir`, rebuilds the engine from it (or creates one)
    /// and starts the clock.
    pub fn open(options: &ServiceOptions, plugins: PluginHost) -> anyhow::Result<Self> {
        let store = Store::open(&options.data_dir)?;
        let engine_config =
            stored_engine_config(&store, &options.engine, options.engine_settings_given)?;
        let (engine, replayed) = rebuild_engine(&store, &options.core_path, &engine_config)?;
        tracing::info!(replayed, database = %store.path().display(), "engine restored");
        let origin = match store.meta("clock")? {
            Some(stored) => stored
                .parse::<Timestamp>()
                .unwrap_or(0)
                .max(wall_clock_ms()),
            None => wall_clock_ms(),
        };
        let clock = Clock::new(origin, options.time_scale);
        let mut service = Self {
            engine: Journaled::new(engine),
            store,
            plugins: Some(plugins),
            core_path: options.core_path.clone(),
            engine_config,
            clock,
            simulation: None,
            commands_since_snapshot: replayed,
            last_snapshot: Instant::now(),
            writes: Vec::new(),
            advanced_to: i64::MIN,
        };
        if options.simulate > 0 {
            service.start_simulation(options)?;
        }
        Ok(service)
    }

    /// The ARN of a resource in this server's region and account, such as
    /// `securityprofile/NAME`.
    pub fn arn(&self, resource: &str) -> String {
        format!(
            "arn:aws:iot:{}:{}:{resource}",
            self.engine_config.region, self.engine_config.account_id
        )
    }

    /// The engine settings in force.
    pub fn engine_config(&self) -> &EngineConfig {
        &self.engine_config
    }

    /// The current event time.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Changes how many times faster than the wall clock event time runs.
    pub fn set_time_scale(&mut self, scale: f64) {
        self.clock.set_scale(scale);
    }

    /// The engine, to apply commands and query.
    pub fn engine(&mut self) -> &mut Journaled {
        &mut self.engine
    }

    /// The database, for reads.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Returns the database, for writes outside the journal.
    pub fn store_mut(&mut self) -> &mut Store {
        &mut self.store
    }

    /// The plugins.
    pub fn plugins(&self) -> &PluginHost {
        self.plugins
            .as_ref()
            .expect("the plugins are back once a mitigation task returns")
    }

    /// Queues a row for the next commit.
    pub fn write(&mut self, write: Write) {
        self.writes.push(write);
    }

    /// Returns the rows queued since the last commit.
    pub(crate) fn pending_writes(&self) -> &[Write] {
        &self.writes
    }

    /// Simulated attacks, if a fleet is simulated.
    pub fn simulation(&self) -> Option<(Vec<String>, &[SimulatedAttack])> {
        self.simulation.as_ref().map(|sim| {
            let things = sim.fleet.things.iter().map(|t| t.name.clone()).collect();
            (things, sim.attacks.as_slice())
        })
    }

    /// Commits everything applied and queued since the last commit in one transaction. On
    /// failure the engine is rebuilt from the database and the error returned.
    pub fn commit(&mut self) -> anyhow::Result<()> {
        let Uncommitted { commands, events } = self.engine.take_uncommitted();
        let writes = std::mem::take(&mut self.writes);
        if commands.is_empty() && writes.is_empty() {
            return Ok(());
        }
        let notifications = self.alert_notifications(&events);
        let retained = self.engine.queries().take_retained_datapoints();
        let result = retained.and_then(|retained| {
            self.store.transaction(|tx| {
                write_commit(tx, &commands, &events, &retained, &writes)?;
                notifications
                    .iter()
                    .try_for_each(|notification| store::write::notification(tx, notification))
            })
        });
        if let Err(error) = result {
            tracing::error!(error = %format!("{error:#}"), "commit failed; rebuilding the engine");
            self.reload()
                .context("failed to rebuild the engine after a failed commit")?;
            return Err(error);
        }
        self.commands_since_snapshot += commands.len();
        self.snapshot_if_due()
    }

    /// Builds the SNS alerts that `events` raise, from the profiles' alert targets.
    fn alert_notifications(
        &mut self,
        events: &[vigil_core::model::ViolationEvent],
    ) -> Vec<crate::alerts::Notification> {
        if events.is_empty() {
            return Vec::new();
        }
        let engine = self.engine.queries();
        crate::alerts::notifications_for(events, |name| engine.describe_security_profile(name).ok())
    }

    /// Drops uncommitted changes by rebuilding the engine from the database.
    pub fn reload(&mut self) -> anyhow::Result<()> {
        self.engine.take_uncommitted();
        self.writes.clear();
        let (engine, replayed) = rebuild_engine(&self.store, &self.core_path, &self.engine_config)?;
        self.engine = Journaled::new(engine);
        self.commands_since_snapshot = replayed;
        Ok(())
    }

    /// Moves event time to the clock, feeding the simulated fleet first, and commits.
    pub fn tick(&mut self) -> anyhow::Result<()> {
        let now = self.clock.now();
        self.feed_simulation(now)?;
        // The engine acts on time at period boundaries (closing cloud periods, refreshing
        // models, invalidating silent things), so an idle server writes once per period.
        if now.div_euclid(PERIOD_MS) != self.advanced_to.div_euclid(PERIOD_MS) {
            self.engine.run(Command::AdvanceTime { now })?;
            // The clock is kept so a restart never moves event time backwards.
            self.write(Write::Clock(now));
            self.advanced_to = now;
        }
        self.commit()
    }

    /// Writes a snapshot when enough commands or time passed since the last one.
    fn snapshot_if_due(&mut self) -> anyhow::Result<()> {
        let due = self.commands_since_snapshot >= SNAPSHOT_EVERY_COMMANDS
            || (self.commands_since_snapshot > 0 && self.last_snapshot.elapsed() >= SNAPSHOT_EVERY);
        if due {
            self.snapshot()?;
        }
        Ok(())
    }

    /// Writes a snapshot of the engine and drops the journal it includes.
    pub fn snapshot(&mut self) -> anyhow::Result<()> {
        let seq = self.store.last_journal_seq()?;
        let bytes = self.engine.queries().snapshot()?;
        self.store.save_snapshot(seq, &bytes)?;
        self.commands_since_snapshot = 0;
        self.last_snapshot = Instant::now();
        tracing::debug!(seq, bytes = bytes.len(), "engine snapshot stored");
        Ok(())
    }

    fn start_simulation(&mut self, options: &ServiceOptions) -> anyhow::Result<()> {
        let now = self.clock.now();
        let mut fleet = Fleet::new(options.simulate, 7);
        let attack_start = now + options.attack_after_days * DAY_MS;
        let attacked = (options.simulate / 10).max(1);
        let mut attacks = Vec::new();
        for n in 0..attacked {
            let index = n * options.simulate / attacked;
            let kind = AttackKind::ALL[n % AttackKind::ALL.len()];
            fleet.inject(index, kind, attack_start);
            attacks.push(SimulatedAttack {
                thing_name: fleet.things[index].name.clone(),
                kind: kind.slug().to_owned(),
                start_time: attack_start as f64 / 1000.0,
            });
        }
        for thing in &fleet.things {
            if self.store.thing_id(&thing.name)?.is_none() {
                self.engine.run(Command::CreateThing {
                    name: thing.name.clone(),
                })?;
                self.write(Write::Thing(
                    thing.name.clone(),
                    crate::ids::uuid_from(&["thing", &thing.name]),
                ));
            }
        }
        self.commit()?;
        self.simulation = Some(Simulation {
            fleet,
            next_period: now - now.rem_euclid(PERIOD_MS),
            attacks,
        });
        Ok(())
    }

    /// Feeds the simulated fleet's broker events of every period that ended by `now`.
    fn feed_simulation(&mut self, now: Timestamp) -> anyhow::Result<()> {
        let Some(simulation) = self.simulation.as_mut() else {
            return Ok(());
        };
        let mut events = Vec::new();
        while simulation.next_period + PERIOD_MS <= now {
            events.extend(simulation.fleet.period_events(simulation.next_period));
            simulation.next_period += PERIOD_MS;
        }
        if !events.is_empty() {
            self.engine.run(Command::IngestCloudEvents { events })?;
        }
        Ok(())
    }
}

/// Returns the engine settings the database was created with, storing `requested` if it is
/// new. Region and account are part of every ARN, so they cannot change later.
fn stored_engine_config(
    store: &Store,
    requested: &EngineConfig,
    settings_given: bool,
) -> anyhow::Result<EngineConfig> {
    if let Some(json) = store.meta("engine_config")? {
        let stored: EngineConfig = serde_json::from_str(&json)
            .context("failed to decode the engine settings stored in the database")?;
        if settings_given && &stored != requested {
            tracing::warn!(
                region = %stored.region,
                account_id = %stored.account_id,
                "the database keeps the settings it was created with; --region, --account-id \
                 and the training options given now are ignored"
            );
        }
        return Ok(stored);
    }
    store.set_meta("engine_config", &serde_json::to_string(requested)?)?;
    Ok(requested.clone())
}

/// Writes one commit's rows.
fn write_commit(
    tx: &Transaction<'_>,
    commands: &[Command],
    events: &[vigil_core::model::ViolationEvent],
    retained: &[Datapoint],
    writes: &[Write],
) -> anyhow::Result<()> {
    for command in commands {
        store::write::journal(tx, &command.encode()?)?;
    }
    for event in events {
        store::write::violation_event(tx, event)?;
    }
    for datapoint in retained {
        store::write::metric_value(tx, datapoint)?;
    }
    for write in writes {
        write.apply(tx)?;
    }
    Ok(())
}

/// Loads the engine from the newest snapshot and replays the journal after it; returns the
/// engine and the number of commands replayed.
fn rebuild_engine(
    store: &Store,
    core_path: &Path,
    config: &EngineConfig,
) -> anyhow::Result<(CoreEngine, usize)> {
    let (mut engine, after) = match store.latest_snapshot()? {
        Some((seq, bytes)) => (CoreEngine::restore(core_path, &bytes)?, seq),
        None => (CoreEngine::load(core_path, config.clone())?, 0),
    };
    let journal = store.journal_after(after)?;
    for (seq, bytes) in &journal {
        let command = Command::decode(bytes)
            .with_context(|| format!("failed to decode journal entry {seq}"))?;
        if let Err(error) = command.apply(&mut engine) {
            tracing::warn!(seq, error = %format!("{error:#}"), "journal entry failed on replay");
        }
        // Replayed commands stored their retained values before; emptying the outbox after each
        // one keeps it from overflowing and counting drops.
        engine.take_retained_datapoints()?;
    }
    Ok((engine, journal.len()))
}

/// Runs a detect mitigation task through the plugins, journaling every step.
pub fn run_task(service: &mut Service, task_id: &str) -> anyhow::Result<()> {
    let now = service.now();
    let mut plugins = service
        .plugins
        .take()
        .context("failed to run a mitigation task: another one is running")?;
    let result = crate::mitigate::run_task(
        &mut crate::tasks::ServiceTasks::new(service),
        &mut plugins,
        task_id,
        now,
    );
    service.plugins = Some(plugins);
    result.map(drop)
}
