// The simulation worker: owns the engine and the simulated fleet, runs the clock, and posts the
// state the page draws. The page sends commands (see `commands` below) and never touches the
// engine itself, so a long simulation step never blocks the UI.

import init, { SimulatedFleet, WebEngine } from "./pkg/vigil_web.js";

// Start of the simulation: 2026-11-01T00:00:00Z, as in `vigil demo`.
const START_MS = Date.UTC(2026, 10, 1);
const PERIOD_MS = 300_000;
const DAY_MS = 86_400_000;
const PROFILE = "vigil-demo-fleet";
const FLEET_GROUP = "demo-fleet";
const QUARANTINE_GROUP = "ThingGroupForDetectMitigationAction";
const QUARANTINE_ACTION = "detect_mitigation_action";
const ROLE_ARN = "arn:aws:iam::123456789012:role/MitigationActionValidRole";
// Datapoints per call of `fleet.run` at the fastest speed, so one call takes a few milliseconds.
const DATAPOINTS_PER_CALL = 5_000;
// Time budget of one worker tick at the fastest speed.
const TICK_BUDGET_MS = 40;
// Interval between state posts while running.
const POST_INTERVAL_MS = 150;

// One ML behavior per simulated metric, named after the AWS ML Detect guide.
const BEHAVIORS = [
  ["num-messages-sent-ml-behavior", "aws:num-messages-sent"],
  ["message-byte-size-ml-behavior", "aws:message-byte-size"],
  ["num-authorization-failures-ml-behavior", "aws:num-authorization-failures"],
  ["num-connection-attempts-ml-behavior", "aws:num-connection-attempts"],
  ["num-disconnects-ml-behavior", "aws:num-disconnects"],
];

let engine = null;
let fleet = null;
let running = false;
let speed = 0; // simulated seconds per real second; 0 runs as fast as the engine goes
let carry = 0; // fraction of a period owed to the clock
let lastTick = 0;
let lastPost = 0;
let selected = { thing: null, metric: BEHAVIORS[0][1] };
let settings = { confidenceLevel: "HIGH", suppressAlerts: false };
let taskCount = 0;
let lastTask = null;
let quarantineReady = false;

function behavior(name, metric) {
  return {
    name,
    metric,
    criteria: {
      consecutiveDatapointsToAlarm: 1,
      consecutiveDatapointsToClear: 1,
      mlDetectionConfig: { confidenceLevel: settings.confidenceLevel },
    },
    suppressAlerts: settings.suppressAlerts,
  };
}

function profileDocument() {
  return {
    securityProfileName: PROFILE,
    securityProfileDescription: "ML Detect on the simulated fleet of the browser demo",
    behaviors: BEHAVIORS.map(([name, metric]) => behavior(name, metric)),
  };
}

// Builds a new engine and fleet: the profile targets a static group holding every thing.
function reset({ things, seed }) {
  running = false;
  engine?.free();
  fleet?.free();
  engine = new WebEngine(14, 25_000);
  fleet = new SimulatedFleet(things, seed, START_MS);
  const groupArn = engine.createThingGroup(FLEET_GROUP);
  for (const thing of fleet.things()) {
    engine.addThingToThingGroup(thing.thingName, FLEET_GROUP);
  }
  engine.createSecurityProfile(profileDocument(), START_MS);
  engine.attachSecurityProfile(PROFILE, groupArn);
  engine.advanceTime(START_MS);
  selected = { thing: fleet.things()[0].thingName, metric: selected.metric };
  taskCount = 0;
  lastTask = null;
  quarantineReady = false;
}

function periodsPerCall() {
  const datapointsPerPeriod = fleet.things().length * BEHAVIORS.length;
  return Math.max(1, Math.floor(DATAPOINTS_PER_CALL / datapointsPerPeriod));
}

function tick() {
  if (!running) return;
  const now = performance.now();
  if (speed === 0) {
    const periods = periodsPerCall();
    do {
      fleet.run(engine, periods);
    } while (performance.now() - now < TICK_BUDGET_MS);
  } else {
    carry += ((now - lastTick) / 1000) * (speed / (PERIOD_MS / 1000));
    // Never fall more than a simulated day behind, so a throttled tab does not stall later.
    const periods = Math.min(Math.floor(carry), DAY_MS / PERIOD_MS);
    carry -= Math.floor(carry);
    if (periods > 0) fleet.run(engine, periods);
  }
  lastTick = now;
  if (now - lastPost >= POST_INTERVAL_MS) {
    postState();
    lastPost = now;
  }
  setTimeout(tick, speed === 0 ? 0 : 50);
}

function ensureQuarantineAction(now) {
  if (quarantineReady) return;
  engine.createThingGroup(QUARANTINE_GROUP);
  engine.createMitigationAction(
    QUARANTINE_ACTION,
    ROLE_ARN,
    { addThingsToThingGroupParams: { thingGroupNames: [QUARANTINE_GROUP], overrideDynamicGroups: false } },
    now,
  );
  quarantineReady = true;
}

// Runs the quarantine action on one violation as a detect mitigation task, then cuts the thing
// off, as the quarantine group's deny policy would.
function quarantine({ violationId }) {
  const now = engine.currentTime();
  ensureQuarantineAction(now);
  taskCount += 1;
  const taskId = `quarantine-task-${taskCount}`;
  const summary = engine.startMitigationTask(
    {
      taskId,
      target: { violationIds: [violationId] },
      actions: [QUARANTINE_ACTION],
      includeOnlyActiveViolations: true,
      includeSuppressedAlerts: true,
    },
    now,
  );
  const executions = engine.listMitigationExecutions(taskId);
  for (const execution of executions) {
    if (execution.status === "SUCCESSFUL") fleet.disconnect(execution.thingName);
  }
  lastTask = { summary, executions };
}

function updateProfile(changes) {
  settings = { ...settings, ...changes };
  engine.updateSecurityProfile(profileDocument(), engine.currentTime());
}

function thingStates(things, active, summaries) {
  const inAlarm = new Set(active.map((v) => v.thingName));
  const quarantined = new Set(quarantineReady ? engine.listThingsInThingGroup(QUARANTINE_GROUP) : []);
  const training = summaries.some((s) => s.modelStatus !== "ACTIVE");
  return things.map((thing) => {
    let state = "normal";
    if (quarantined.has(thing.thingName)) state = "quarantined";
    else if (inAlarm.has(thing.thingName)) state = "alarm";
    else if (training) state = "training";
    return { ...thing, state };
  });
}

// The selected thing's chart: the metric with its expected band, the alarm transitions of the
// metric's behavior, and the daily model refreshes.
function chartState(events, summaries) {
  const { thing, metric } = selected;
  const [behaviorName] = BEHAVIORS.find(([, m]) => m === metric);
  const data = fleet.chart(engine, thing, metric, PROFILE, behaviorName);
  const markers = events
    .filter((e) => e.thingName === thing && e.behavior.name === behaviorName)
    .map((e) => ({ time: e.violationEventTime, type: e.violationEventType }));
  const summary = summaries.find((s) => s.behaviorName === behaviorName);
  const from = data.times[0] ?? 0;
  const to = data.times[data.times.length - 1] ?? 0;
  // The first model build is due 14 days after collection starts; later ones follow daily.
  const start = summary?.trainingDataCollectionStartDate;
  const trainingEnd = start == null ? null : start + 14 * 86_400;
  const boundaries = [];
  if (trainingEnd != null && trainingEnd >= from && trainingEnd <= to) {
    boundaries.push({ time: trainingEnd, label: "training ends", major: true });
  }
  for (let day = Math.ceil((from * 1000 - START_MS) / DAY_MS); START_MS + day * DAY_MS <= to * 1000; day++) {
    const time = (START_MS + day * DAY_MS) / 1000;
    if (trainingEnd != null && Math.abs(time - trainingEnd) < 3600) continue;
    boundaries.push({ time, label: `day ${day}` });
  }
  return { thing, metric, behaviorName, data, markers, boundaries, modelStatus: summary?.modelStatus };
}

function postState() {
  const now = engine.currentTime();
  const summaries = engine.trainingSummaries();
  const active = engine.listActiveViolations();
  const events = engine.listViolationEvents(START_MS, now);
  const things = thingStates(fleet.things(), active, summaries);
  self.postMessage({
    type: "state",
    now,
    day: (now - START_MS) / DAY_MS,
    running,
    speed,
    things,
    summaries,
    active,
    history: events.slice(-100).reverse(),
    chart: chartState(events, summaries),
    profile: { ...settings, version: engine.describeSecurityProfile(PROFILE).version },
    task: lastTask,
  });
}

const commands = {
  reset,
  start() {
    if (running) return;
    running = true;
    carry = 0;
    lastTick = performance.now();
    setTimeout(tick, 0);
  },
  pause() {
    running = false;
  },
  speed({ value }) {
    speed = value;
    carry = 0;
  },
  select({ thing, metric }) {
    selected = { thing: thing ?? selected.thing, metric: metric ?? selected.metric };
  },
  inject({ thing, kind }) {
    fleet.inject(thing, kind);
  },
  verify({ violationId, state }) {
    engine.putVerificationState(violationId, state, null);
  },
  quarantine,
  profile: updateProfile,
};

self.onmessage = (message) => {
  const { type, ...args } = message.data;
  try {
    commands[type](args);
    postState();
  } catch (error) {
    self.postMessage({ type: "error", message: `${type} failed: ${error.message ?? error}` });
  }
};

await init();
self.postMessage({ type: "ready", behaviors: BEHAVIORS });
