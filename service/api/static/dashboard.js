// The dashboard: lists models and series, and for the chosen series polls the /v1 API for its recent
// values with the forecasts made for them, the forecast ahead, its prequential error and the model's
// update statistics, the truncation advisor and the guards. The selection lives in the URL hash (#model=default&series=web-1), settings and
// the API key in local storage. Everything shown comes from the API; the page holds no data of its own.
"use strict";

const $ = (id) => document.getElementById(id);
const enc = encodeURIComponent;
const state = { model: null, series: null, names: [], nextAfter: null, feature: 0, nFeatures: 1,
                loss: [], timer: null, polls: 0, busy: false };

// ---- talking to the API --------------------------------------------------------------------------
async function api(path, method = "GET") {
  const headers = { accept: "application/json" };
  const key = localStorage.getItem("tbptt.apiKey");
  if (key) headers.authorization = `Bearer ${key}`;
  const response = await fetch(path, { method, headers, cache: "no-store" });
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON: keep the status text */ }
    const error = new Error(`${response.status}: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`);
    error.status = response.status;
    throw error;
  }
  return response.json();
}

function setStatus(text, kind) {
  const status = $("status");
  status.textContent = text;
  status.className = `status ${kind || ""}`;
}

function settings() {
  const number = (id, fallback) => { const v = Number($(id).value); return Number.isFinite(v) && v > 0 ? v : fallback; };
  return { horizon: Math.round(number("horizon", 24)), level: number("level", 0.9),
           history: Math.round(number("history", 200)), interval: number("interval", 2) };
}

// ---- selection (kept in the URL hash) ------------------------------------------------------------
function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  state.model = params.get("model");
  state.series = params.get("series");
}

function writeHash() {
  const params = new URLSearchParams();
  if (state.model) params.set("model", state.model);
  if (state.series) params.set("series", state.series);
  history.replaceState(null, "", `#${params.toString()}`);
}

function listItem(label, count, selected, onClick) {
  const item = document.createElement("li");
  item.textContent = label;
  item.title = label;
  if (count !== null) {
    const badge = document.createElement("span");
    badge.className = "count";
    badge.textContent = count;
    item.appendChild(badge);
  }
  if (selected) item.classList.add("selected");
  item.addEventListener("click", onClick);
  return item;
}

async function refreshModels() {
  const { models } = await api("/v1/models");
  if (!models.some((m) => m.name === state.model)) {
    state.model = (models.find((m) => m.name === "default") || models[0] || {}).name || null;
    state.series = null;
  }
  $("models").replaceChildren(...models.map((m) => listItem(m.name, `${m.series_count} series`,
    m.name === state.model, () => selectModel(m.name))));
}

async function refreshSeries(append = false) {
  if (!state.model) return;
  // "more" asks for the names after the last one shown (a cursor): series added meanwhile repeat none
  const from = append ? `after=${enc(state.nextAfter)}` : "offset=0";
  const page = await api(`/v1/models/${enc(state.model)}/series?${from}&limit=200`);
  state.names = append ? [...state.names, ...page.series] : page.series;
  state.nextAfter = page.next_after;
  $("series-total").textContent = `(${page.total})`;
  $("series-more").hidden = page.next_after === null;
  if (!state.series || (!append && !state.names.includes(state.series) && page.next_after === null)) {
    state.series = state.names[0] || null;
  }
  renderSeriesList();
  writeHash();
}

function renderSeriesList() {
  const filter = $("series-filter").value.trim().toLowerCase();
  const shown = state.names.filter((name) => name.toLowerCase().includes(filter));
  $("series").replaceChildren(...shown.map((name) => listItem(name, null, name === state.series,
    () => selectSeries(name))));
}

function selectModel(name) {
  state.model = name;
  state.series = null;
  state.loss = [];
  refreshAll();
}

function selectSeries(name) {
  state.series = name;
  state.feature = 0;
  renderSeriesList();
  writeHash();
  poll();
}

// ---- rendering -----------------------------------------------------------------------------------
function pick(value) {  // one feature of a value: a number, or the chosen entry of a list
  if (Array.isArray(value)) return value[Math.min(state.feature, value.length - 1)] ?? null;
  return value ?? null;
}

function fill(list, rows) {
  list.replaceChildren();
  for (const [label, value, cls] of rows) {
    const term = document.createElement("dt");
    term.textContent = label;
    const detail = document.createElement("dd");
    detail.textContent = value;
    if (cls) detail.className = cls;
    list.append(term, detail);
  }
}

// MAE / naive MAE over the values shown (recent), the now beside the whole history's: each value with a
// forecast made for it and a value the step before (the naive forecast), of the chosen feature.
function recentRatio(observations) {
  let model = 0, naive = 0, n = 0;
  for (let i = 1; i < observations.length; i++) {
    const [o, before] = [observations[i], observations[i - 1]];
    const [y, f, last] = [pick(o.value), pick(o.forecast_made.mean), pick(before.value)];
    if (o.step !== before.step + 1 || ![y, f, last].every(Number.isFinite)) continue;
    model += Math.abs(y - f);
    naive += Math.abs(y - last);
    n += 1;
  }
  return { n, ratio: n > 0 && naive > 0 ? model / naive : null };
}

// "h6 89.1% · h12 86.0% · h24 …": the coverage at half the calibrated horizon, at it and at the far ones, and the
// class of the line ("bad" where one of them, over 30 or more values, is more than 5 points under the target)
function coverageAhead(stats) {
  const rows = stats.coverage_by_horizon || [];
  const gap = rows.findIndex((c, i) => c.horizon !== i + 1); // 1 .. calibrated_horizon, then the far ones
  const near = gap === -1 ? rows.length : gap;
  const shown = rows.filter((c, i) => i === Math.ceil(near / 2) - 1 || i >= near - 1).filter((c) => c.horizon > 1);
  if (!shown.length) return ["–", ""];
  const text = shown.map((c) => `h${c.horizon} ${c.coverage === null ? "–" : (100 * c.coverage).toFixed(1) + "%"}`);
  const under = shown.some((c) => c.coverage !== null && c.scored >= 30 && c.coverage < stats.interval_level - 0.05);
  return [text.join(" · "), under ? "bad" : ""];
}

function renderAccuracy(stats, recent) {
  const ratio = stats.mae !== null && stats.naive_mae ? stats.mae / stats.naive_mae : null;
  const now = recentRatio(recent.observations);
  const iso = isoTime(stats.last_timestamp); // null past a Date's range: the number as sent
  const last = stats.last_timestamp === null ? "–" : iso === null ? String(stats.last_timestamp) : iso.replace(".000Z", "Z");
  const coverage = stats.coverage === null ? "–" : `${(100 * stats.coverage).toFixed(1)}% (target ${Math.round(100 * stats.interval_level)}%)`;
  fill($("accuracy"), [
    ["values", String(stats.count)], ["last timestamp", last],
    // seconds between timestamped values once known (a gap of whole steps is filled with missing values)
    ["cadence", stats.cadence === null || stats.cadence === undefined ? "–" : `${formatNumber(stats.cadence)} s`],
    ["MAE", formatNumber(stats.mae)], ["naive MAE", formatNumber(stats.naive_mae)],
    ["MAE / naive", ratio === null ? "–" : ratio.toFixed(3), ratio === null ? "" : ratio < 1 ? "good" : "bad"],
    [`MAE / naive, last ${now.n}`, now.ratio === null ? "–" : now.ratio.toFixed(3),
      now.ratio === null ? "" : now.ratio < 1 ? "good" : "bad"],
    ["RMSE", formatNumber(stats.rmse)], ["naive RMSE", formatNumber(stats.naive_rmse)],
    ["interval coverage", coverage],
    // the coverage at the longer horizons too (one step is the line above): a series served poorly far ahead shows
    // here; a share more than 5 points under the target, over 30 or more values, is marked (a new user, session 55)
    ...(stats.coverage_by_horizon?.length ? [["coverage ahead", ...coverageAhead(stats)]] : []), // (the hybrid's)
    // values flagged far outside their interval (the hybrid's outliers, "What is flagged" in README; null without it)
    ["outliers", stats.outliers === null || stats.outliers === undefined ? "–" : String(stats.outliers)],
    // times the series' state started again, its forecast blown up (0 on a healthy series)
    ["restarts", String(stats.restarts || 0), stats.restarts ? "bad" : ""],
  ]);
}

function renderUpdates(info) {
  const u = info.updates;
  // an update of loss and gradient exactly 0 had nothing to learn (a new series' first value, an outage): it is
  // said so, and left out of the loss line, which it pulled to 0 (a new user, session 50)
  const nothing = u.last_loss === 0 && u.last_grad_norm === 0;
  if (u.last_loss !== null && !nothing && (!state.loss.length || state.loss[state.loss.length - 1][0] !== u.updates)) {
    state.loss.push([u.updates, u.last_loss]);
    state.loss = state.loss.slice(-200);
  }
  const c = info.config;
  fill($("updates"), [
    ["updates", String(u.updates)], ["skipped", String(u.skipped), u.skipped ? "bad" : ""],
    ["last loss", nothing ? "0 (nothing to learn: no value scored)" : formatNumber(u.last_loss)],
    ["last gradient norm", formatNumber(u.last_grad_norm)],
    ["observations", String(info.observations)], ["series", String(info.series_count)],
    ["network", `${c.cell} ${c.hidden_size}×${c.num_layers}, k1=${c.k1}, k2=${c.k2}, lr=${c.lr}`],
  ]);
  const spark = $("loss-spark");
  spark.replaceChildren();
  const losses = state.loss.map(([, loss]) => loss).filter(Number.isFinite);
  if (losses.length > 1) {
    const [lo, hi] = [Math.min(...losses), Math.max(...losses)];
    const points = losses.map((loss, i) => `${(200 * i) / (losses.length - 1)},${38 - (34 * (loss - lo)) / (hi - lo || 1)}`);
    const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    line.setAttribute("points", points.join(" "));
    spark.appendChild(line);
  }
}

// x with one decimal as the advisor's verdict writes it (Python's ".1f": a tie to the even digit, where toFixed rounds
// it up): a cost of 1.25 read "1.3×" beside a verdict's "1.2x" (a new user, session 50).
function fixedAsPython(x) {
  const scaled = x * 10;
  const floor = Math.floor(scaled);
  return scaled - floor === 0.5 ? ((floor % 2 === 0 ? floor : floor + 1) / 10).toFixed(1) : x.toFixed(1);
}

// The advisor's window K in use, its relative truncation bias (the bound, and measured), the k2 it recommends and why; the
// guards' counts and the learning rate in force as a share of the configured one.
function renderTruncation(report, info) {
  const c = info.config;
  const u = info.updates;
  const range = c.k2 === "adaptive" ? `adaptive ${c.k2_min}–${c.k2_max}` : `k2 = ${c.k2}`;
  const bias = report.relative_bias === null ? (report.probes ? "unbounded" : "– (no probe yet)")
    : report.relative_bias.toPrecision(3);
  // Too short (a wall: a dependency out of the window's reach) is bad; long enough but biased (the gradient leaves out
  // more than truncation_bias of itself: learning slowed, not walled) a warning.
  const grade = report.too_short ? "bad" : report.biased ? "warn" : "good";
  const longer = report.recommended_k2 > report.window;
  const cost = longer ? ` (${fixedAsPython(report.cost_ratio)}× per update)` : "";
  fill($("truncation"), [
    ["window K in use", `${report.window} (${range}, k1 = ${report.k1})`],
    ["relative truncation bias", bias, report.biased ? grade : ""],
    ["measured on the probe's windows", report.measured_bias === null || report.measured_bias === undefined ? "–"
      : report.measured_bias.toPrecision(3)],
    ["recommended k2", `${report.recommended_k2}${cost}`, grade],
    ["probes", String(report.probes)],
  ]);
  const verdict = $("truncation-verdict");
  verdict.textContent = report.verdict;
  verdict.className = `verdict ${grade}`;
  const scale = u.lr !== null && c.lr ? u.lr / c.lr : null;
  fill($("guards"), [
    ["explosions (clipped)", String(u.explosions), ""],  // routine: the update goes on, clipped harder
    ["divergences", String(u.divergences), u.divergences ? "bad" : ""],
    ["blow-ups", String(u.blowups), u.blowups ? "bad" : ""],
    ["roll-backs", String(u.rollbacks), u.rollbacks ? "bad" : ""],
    ["learning-rate scale", scale === null ? "–" : `${scale.toPrecision(3)} (lr ${u.lr.toPrecision(3)} of ${c.lr})`,
      scale !== null && scale < 1 ? "bad" : ""],
  ]);
  $("reset-lr").disabled = scale === null || scale >= 1;
}

async function resetLearningRate() {
  if (!state.model) return;
  try {
    await api(`/v1/models/${enc(state.model)}/reset-learning-rate`, "POST");
    await poll();
  } catch (error) {
    setStatus(error.message, "error");
  }
}

function renderFeatureChoice(nFeatures) {
  const select = $("feature");
  select.parentElement.hidden = nFeatures < 2;
  if (select.options.length !== nFeatures) {
    select.replaceChildren(...Array.from({ length: nFeatures }, (_, i) => new Option(String(i), String(i))));
  }
  select.value = String(state.feature);
}

// step -> unix time from the recent values' timestamps: interpolated between them, extrapolated
// past them with the median spacing of the last ones (the forecast ahead); null without timestamps.
function stepClock(observations) {
  const known = observations.filter((o) => Number.isFinite(o.timestamp)).map((o) => [o.step, o.timestamp]);
  if (known.length < 2) return null;
  const gaps = known.slice(1).map(([s, t], i) => (t - known[i][1]) / (s - known[i][0])).slice(-20).sort((a, b) => a - b);
  const spacing = gaps[Math.floor(gaps.length / 2)];
  return (step) => {
    const [first, last] = [known[0], known[known.length - 1]];
    if (step <= first[0]) return first[1] + (step - first[0]) * spacing;
    if (step >= last[0]) return last[1] + (step - last[0]) * spacing;
    const i = known.findIndex(([s]) => s >= step);
    const [[sa, ta], [sb, tb]] = [known[i - 1], known[i]];
    return ta + ((step - sa) / (sb - sa)) * (tb - ta);
  };
}

function renderForecast(forecast, recent) {
  const observed = recent.observations.map((o) => ({ x: o.step, y: pick(o.value), outlier: o.outlier === true,
    held: o.held === true }));
  const made = recent.observations.map((o) => ({ x: o.step, mean: pick(o.forecast_made.mean),
    lower: pick(o.forecast_made.lower), upper: pick(o.forecast_made.upper) }));
  const ahead = forecast.forecast.map((f) => ({ x: forecast.step + f.step, mean: pick(f.mean),
    lower: pick(f.lower), upper: pick(f.upper) }));
  state.chart.draw({ observed, made, ahead, now: forecast.step, timeOf: stepClock(recent.observations) });
  // one number of decimals for the whole table, from the largest mean (27 beside 25.8 was read as
  // rounded differently): four significant digits of it, formatNumber's form past its range
  const largest = Math.max(0, ...ahead.map((p) => Math.abs(p.mean)).filter(Number.isFinite));
  const decimals = largest === 0 ? 2 : Math.min(6, Math.max(0, 3 - Math.floor(Math.log10(largest))));
  const fixed = (value) => (value === null || value === undefined || !Number.isFinite(value) || largest >= 1e5
    || (largest > 0 && largest < 1e-3) ? formatNumber(value) : value.toFixed(decimals));
  const body = $("forecast-table").tBodies[0];
  body.replaceChildren(...ahead.map((p, i) => {
    const row = document.createElement("tr");
    // when the step is due (the series' cadence known, GET .../forecast's timestamp): MM-DD HH:MM UTC
    const due = isoTime(forecast.forecast[i].timestamp);
    const when = due === null ? "–" : `${due.slice(5, 10)} ${due.slice(11, 16)}`;
    for (const cell of [`+${i + 1}`, when, fixed(p.mean), fixed(p.lower), fixed(p.upper)]) {
      const td = document.createElement("td");
      td.textContent = cell;
      row.appendChild(td);
    }
    return row;
  }));
}

// ---- polling -------------------------------------------------------------------------------------
async function poll() {
  if (state.busy) return;
  state.busy = true;
  try {
    if (state.polls % 5 === 0) {
      await refreshModels();
      await refreshSeries();
    }
    state.polls += 1;
    if (!state.model || !state.series) {
      $("title").textContent = state.model ? `${state.model}: no series yet` : "No models";
      $("subtitle").textContent = "POST observations to see them here.";
      state.chart.draw({ observed: [], made: [], ahead: [], now: NaN });
      setStatus("live", "ok");
      return;
    }
    const s = settings();
    const base = `/v1/models/${enc(state.model)}`;
    const series = `${base}/series/${enc(state.series)}`;
    const [info, stats, recent, forecast, truncation] = await Promise.all([
      api(base), api(series), api(`${series}/recent?limit=${s.history}`),
      api(`${series}/forecast?horizon=${s.horizon}&level=${s.level}`), api(`${base}/truncation`),
    ]);
    state.nFeatures = info.config.n_features;
    renderFeatureChoice(state.nFeatures);
    $("title").textContent = `${state.model} / ${state.series}`;
    $("subtitle").textContent = `step ${forecast.step} · forecast from update ${forecast.update_count} · `
      + `${Math.round(100 * forecast.level)}% intervals`;
    renderForecast(forecast, recent);
    renderAccuracy(stats, recent);
    renderUpdates(info);
    renderTruncation(truncation, info);
    setStatus(`live · ${new Date().toLocaleTimeString()}`, "ok");
  } catch (error) {
    if (error.status === 404) state.polls = 0;  // the model or series went away: reload the lists next time
    setStatus(error.status === 401 ? "401: enter the API key" : error.message, "error");
  } finally {
    state.busy = false;
  }
}

function schedule() {
  clearTimeout(state.timer);
  state.timer = setTimeout(async () => { await poll(); schedule(); }, settings().interval * 1000);
}

function refreshAll() {
  state.polls = 0;
  poll();
}

function init() {
  state.chart = new ForecastChart($("chart"));
  readHash();
  for (const id of ["horizon", "level", "history", "interval"]) {
    const saved = localStorage.getItem(`tbptt.${id}`);
    if (saved) $(id).value = saved;
    $(id).addEventListener("change", () => { localStorage.setItem(`tbptt.${id}`, $(id).value); poll(); });
  }
  $("api-key").value = localStorage.getItem("tbptt.apiKey") || "";
  $("api-key").addEventListener("change", () => { localStorage.setItem("tbptt.apiKey", $("api-key").value); refreshAll(); });
  $("settings").addEventListener("submit", (event) => event.preventDefault());
  $("series-filter").addEventListener("input", renderSeriesList);
  $("series-more").addEventListener("click", () => refreshSeries(true));
  $("reset-lr").addEventListener("click", resetLearningRate);
  $("feature").addEventListener("change", () => { state.feature = Number($("feature").value); poll(); });
  window.addEventListener("hashchange", () => { readHash(); refreshAll(); });
  window.addEventListener("resize", () => poll());
  refreshAll();
  schedule();
}

document.addEventListener("DOMContentLoaded", init);
