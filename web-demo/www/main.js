// The demo page: sends commands to the simulation worker and draws the state it posts back.
// Everything is loaded by relative URL, so any static file server can host the folder.

import uPlot from "./vendor/uPlot.esm.js";

const START_S = Date.UTC(2026, 10, 1) / 1000;
const $ = (selector) => document.querySelector(selector);

const worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
const view = {
  state: null,
  chart: null,
  chartKey: "",
  overlay: { markers: [], boundaries: [] },
  selectedViolation: null,
  thingButtons: new Map(),
};

function send(type, args = {}) {
  worker.postMessage({ type, ...args });
}

// Formats epoch seconds as the simulated day and UTC time of day.
function simTime(seconds) {
  const day = Math.floor((seconds - START_S) / 86_400);
  const clock = new Date(seconds * 1000).toISOString().slice(11, 16);
  return `day ${day} ${clock}`;
}

function number(x) {
  if (x == null) return "–";
  if (Math.abs(x) >= 100) return Math.round(x).toLocaleString("en-US");
  return x.toFixed(Math.abs(x) >= 10 ? 1 : 2);
}

function reset() {
  const things = Math.min(1000, Math.max(8, Math.round(Number($("#fleet-size").value)) || 48));
  $("#fleet-size").value = things;
  send("reset", { things, seed: 2026 });
  send("speed", { value: Number($("#speed").value) });
  view.selectedViolation = null;
  view.chartKey = "";
}

function wireControls(behaviors) {
  for (const [, metric] of behaviors) $("#metric").append(new Option(metric, metric));
  $("#start").onclick = () => send("start");
  $("#pause").onclick = () => send("pause");
  $("#reset").onclick = reset;
  $("#speed").onchange = () => send("speed", { value: Number($("#speed").value) });
  $("#metric").onchange = () => send("select", { metric: $("#metric").value });
  $("#inject").onclick = () =>
    send("inject", { thing: view.state.chart.thing, kind: $("#attack").value });
  $("#apply-profile").onclick = () =>
    send("profile", {
      confidenceLevel: $("#confidence").value,
      suppressAlerts: $("#suppress").checked,
    });
  for (const button of document.querySelectorAll("[data-verify]")) {
    button.onclick = () =>
      send("verify", { violationId: view.selectedViolation, state: button.dataset.verify });
  }
  $("#quarantine").onclick = () => send("quarantine", { violationId: view.selectedViolation });
  for (const id of ["#start", "#pause", "#reset"]) $(id).disabled = false;
}

function renderFleet(things, selectedThing) {
  const grid = $("#fleet");
  if (view.thingButtons.size !== things.length || !view.thingButtons.has(things[0].thingName)) {
    grid.replaceChildren();
    view.thingButtons.clear();
    for (const thing of things) {
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.thing = thing.thingName;
      button.onclick = () => send("select", { thing: thing.thingName });
      grid.append(button);
      view.thingButtons.set(thing.thingName, button);
    }
  }
  for (const thing of things) {
    const button = view.thingButtons.get(thing.thingName);
    button.className = thing.state + (thing.thingName === selectedThing ? " selected" : "");
    button.dataset.state = thing.state;
    button.title = `${thing.thingName} (${thing.deviceClass}): ${thing.state}` +
      (thing.attack ? `, under ${thing.attack}` : "");
  }
}

function renderTraining(summaries) {
  const rows = summaries.map((s) => {
    const row = document.createElement("tr");
    row.dataset.status = s.modelStatus;
    const percent = s.datapointsCollectionPercentage;
    row.innerHTML = `<td>${s.behaviorName}</td><td><span class="badge ${s.modelStatus}">${s.modelStatus}</span></td>` +
      `<td><progress max="100" value="${percent}"></progress> ${percent.toFixed(0)}%</td>`;
    return row;
  });
  $("#training tbody").replaceChildren(...rows);
}

function renderProfile(profile) {
  $("#profile-state").textContent =
    `profile version ${profile.version}: confidence ${profile.confidenceLevel}, ` +
    `suppressAlerts ${profile.suppressAlerts}`;
}

// Draws alarm transitions as dots on the x axis and model refreshes as vertical lines.
function drawOverlay(u) {
  const { ctx } = u;
  const { top, height, left, width } = u.bbox;
  ctx.save();
  for (const boundary of view.overlay.boundaries) {
    const x = u.valToPos(boundary.time, "x", true);
    if (x < left || x > left + width) continue;
    ctx.strokeStyle = boundary.major ? "#7c3aed" : "#cbd5e1";
    ctx.lineWidth = boundary.major ? 2 : 1;
    ctx.setLineDash(boundary.major ? [] : [4, 4]);
    ctx.beginPath();
    ctx.moveTo(x, top);
    ctx.lineTo(x, top + height);
    ctx.stroke();
    ctx.fillStyle = boundary.major ? "#7c3aed" : "#64748b";
    ctx.font = `${11 * devicePixelRatio}px sans-serif`;
    ctx.fillText(boundary.label, x + 4, top + 12 * devicePixelRatio);
  }
  ctx.setLineDash([]);
  const colors = { "in-alarm": "#dc2626", "alarm-cleared": "#16a34a", "alarm-invalidated": "#64748b" };
  for (const marker of view.overlay.markers) {
    const x = u.valToPos(marker.time, "x", true);
    if (x < left || x > left + width) continue;
    ctx.fillStyle = colors[marker.type];
    ctx.beginPath();
    ctx.arc(x, top + height - 6 * devicePixelRatio, 5 * devicePixelRatio, 0, 2 * Math.PI);
    ctx.fill();
  }
  ctx.restore();
}

function makeChart(chart) {
  view.chart?.destroy();
  const options = {
    width: Math.max(320, $("#chart").clientWidth),
    height: 300,
    series: [
      { value: (u, v) => (v == null ? "–" : simTime(v)) },
      { label: "expected low", stroke: "#93c5fd", width: 1 },
      { label: "expected high", stroke: "#93c5fd", width: 1 },
      { label: chart.metric, stroke: "#0f172a", width: 1.5 },
    ],
    bands: [{ series: [2, 1], fill: "rgba(59, 130, 246, 0.15)" }],
    // Simulated time is UTC, whatever the visitor's time zone.
    tzDate: (seconds) => uPlot.tzDate(new Date(seconds * 1000), "Etc/UTC"),
    scales: { x: { time: true }, y: { range: (u, min, max) => [Math.min(0, min), max * 1.1 || 1] } },
    axes: [{}, { size: 60 }],
    hooks: { draw: [drawOverlay] },
  };
  view.chart = new uPlot(options, chartData(chart), $("#chart"));
  view.chartKey = `${chart.thing} ${chart.metric}`;
}

function chartData(chart) {
  const { times, expectedLow, expectedHigh, observed } = chart.data;
  return [times, expectedLow, expectedHigh, observed];
}

function renderThing(state) {
  const { chart } = state;
  const thing = state.things.find((t) => t.thingName === chart.thing);
  $("#thing-name").textContent = chart.thing;
  $("#thing-state").textContent = thing.state;
  $("#thing-state").className = `badge ${thing.state}`;
  $("#thing-panel").dataset.state = thing.state;
  $("#metric").value = chart.metric;
  view.overlay = { markers: chart.markers, boundaries: chart.boundaries };
  if (view.chartKey !== `${chart.thing} ${chart.metric}`) makeChart(chart);
  else view.chart.setData(chartData(chart));
  const scoring = chart.data.scoring.some(Boolean);
  $("#chart-note").textContent = scoring
    ? `The band is the range ${chart.behaviorName} accepts now at each time of day (model ${chart.modelStatus}).`
    : `The band is what the model has learned so far; it scores nothing until it is ACTIVE.`;
}

function violationLabel(v) {
  return `${v.thingName} · ${v.behavior.name}`;
}

function renderAlarms(state) {
  $("#active-count").textContent = state.active.length;
  const items = state.active.map((v) => {
    const item = document.createElement("li");
    item.dataset.violationId = v.violationId;
    item.className = v.violationId === view.selectedViolation ? "selected" : "";
    const suppressed = v.behavior.suppressAlerts ? ' <span class="badge">suppressed</span>' : "";
    item.innerHTML = `<button type="button">${violationLabel(v)}</button>${suppressed}` +
      ` <span class="badge ${v.verificationState}">${v.verificationState}</span>` +
      `<small>since ${simTime(v.violationStartTime)}</small>`;
    item.querySelector("button").onclick = () => {
      view.selectedViolation = v.violationId;
      send("select", { thing: v.thingName, metric: v.behavior.metric });
    };
    return item;
  });
  $("#active").replaceChildren(...items);
  renderExplanation(state);

  const history = state.history.map((e) => {
    const item = document.createElement("li");
    item.className = e.violationEventType;
    item.textContent = `${simTime(e.violationEventTime)} ${e.violationEventType}: ${violationLabel(e)}` +
      (e.verificationState !== "UNKNOWN" ? ` (${e.verificationState})` : "");
    return item;
  });
  $("#history").replaceChildren(...history);
}

function renderExplanation(state) {
  const violation = state.active.find((v) => v.violationId === view.selectedViolation);
  const panel = $("#explanation");
  panel.hidden = !violation;
  if (!violation) return;
  const info = violation.violationEventAdditionalInfo ?? {};
  const explanation = info.explanation ?? {};
  const field = (name, text) => (panel.querySelector(`[data-field=${name}]`).textContent = text);
  field("thing", violation.thingName);
  field("behavior", `${violation.behavior.name} (${violation.behavior.metric})`);
  field("range", `${number(explanation.expectedLow)} – ${number(explanation.expectedHigh)}`);
  field("observed", number(explanation.observed));
  field("score", number(explanation.anomalyScore));
  field("confidence", info.confidenceLevel ?? "–");
  field("since", simTime(violation.violationStartTime));
  field("verification", violation.verificationState);
  panel.dataset.violationId = violation.violationId;
}

function renderTask(task) {
  if (!task) {
    $("#task").textContent = "";
    return;
  }
  const { summary, executions } = task;
  const outcomes = executions.map((e) => `${e.thingName}: ${e.status}`).join(", ");
  $("#task").textContent =
    `Mitigation task ${summary.taskId} ${summary.taskStatus}: ${outcomes || "no executions"}.`;
}

function render(state) {
  view.state = state;
  $("#clock").textContent = `${simTime(state.now / 1000)} UTC · ${state.running ? "running" : "paused"}`;
  document.body.dataset.day = state.day.toFixed(3);
  document.body.dataset.running = state.running;
  renderFleet(state.things, state.chart.thing);
  renderTraining(state.summaries);
  renderProfile(state.profile);
  renderThing(state);
  renderAlarms(state);
  renderTask(state.task);
}

worker.onmessage = ({ data }) => {
  if (data.type === "ready") {
    wireControls(data.behaviors);
    reset();
    document.body.dataset.ready = "true";
  } else if (data.type === "state") {
    render(data);
  } else if (data.type === "error") {
    $("#error").hidden = false;
    $("#error").textContent = data.message;
  }
};
worker.onerror = (event) => {
  $("#error").hidden = false;
  $("#error").textContent = `the simulation worker failed: ${event.message}`;
};
