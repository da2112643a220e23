// Live view: power now, the last ten minutes, today's energy and cost; fed by server-sent events.
//
// The chart's readings come from two sources that answer in any order: the history of the last ten
// minutes (/api/v2/readings) and the stream of new readings (/api/v2/live). Both are merged by
// the readings' identity, (sensor, ts), which is their key in the database: each is kept once, in
// time order, whichever source brought it first.
import { api, ApiError, reportReachable } from "../api.js";
import { ago, currentLocale, flowsText, number, t } from "../i18n.js";
import { COLORS, makeChart, tickValues, todayIn } from "../charts.js";
import { mountAlerts } from "../alerts.js";
import { shown } from "../tariffs.js";
import { ReadingSeries } from "./live-series.js";

const WINDOW_S = 600;
// The figure is marked out of date once a sensor counted in it has been silent for STALE_PERIODS
// of its own periods (the median spacing of its recent readings): one late reading is normal, three
// missed in a row are not. Never before STALE_FLOOR_S, though: the aggregator stores readings in
// batches (every 8 s by default) and the stream looks for them every second, so a 1 s sensor's
// newest reading is routinely 9 s old when the next batch lands.
const STALE_PERIODS = 3;
const STALE_FLOOR_S = 20;
// The stream sends a heartbeat after 3 s without a reading (LIVE_HEARTBEAT_SECONDS in
// services/api/citizenwatt_api/v2.py), and looks for readings every second: nothing at all for
// this long (two heartbeats missed), and it is dead (a frozen
// api, a cut connection): close it, open a new one and say so.
const WATCHDOG_MS = 7000;
// How long the watchdog's question "does the server answer at all?" may wait.
const PROBE_MS = 3000;

export function mount(root, ctx) {
  root.innerHTML = `
    <section id="alerts" class="card alerts" role="status" hidden></section>
    <section class="card live">
      <div class="live-head">
        <h1 data-i18n="live.title"></h1>
        <span id="tariff" class="tariff" hidden></span>
      </div>
      <p class="power"><span id="live-power">–</span> <small>W</small></p>
      <p id="live-updated" class="muted loading" data-i18n="common.loading"></p>
      <p id="live-announce" class="visually-hidden" role="status"></p>
      <h2 data-i18n="live.lastMinutes"></h2>
      <div id="live-chart" class="chart"></div>
      <p class="today"><span data-i18n="live.today"></span>
        <b id="today-kwh">–</b> kWh · <b id="today-euros">–</b> €</p>
      <p id="today-flows" class="today" hidden></p>
    </section>`;
  const $ = (id) => root.querySelector(`#${id}`);
  const wanted = ctx.sensor === "all" ? null : Number(ctx.sensor);
  const names = new Map(ctx.sensors.map((s) => [s.id, s.name || s.key]));
  const series = new Map(); // sensor id -> ReadingSeries
  let newest = null; // the newest reading seen: {ts, rate}
  let plot = null;
  let closed = false;
  let stream = null;
  let lastEvent = performance.now(); // when the stream last said anything (reading, heartbeat, open)
  let interrupted = false; // the watchdog found the stream dead and has not heard from it since
  let pendingRefresh = null; // a redraw asked for by refreshSoon()
  let shownState = null; // the state last announced: "fresh", "stale", "silent" or "interrupted"
  // Times on the chart in the household's zone and the reader's language (uPlot's own are English).
  const clock = new Intl.DateTimeFormat(currentLocale(), { timeZone: ctx.timezone, hour: "2-digit", minute: "2-digit" });

  /** Keep `reading` unless the view shows another sensor or already has it; true when it was new. */
  function add(reading) {
    if (wanted !== null && reading.sensor !== wanted) return false;
    if (!series.has(reading.sensor)) series.set(reading.sensor, new ReadingSeries());
    if (!series.get(reading.sensor).insert(reading.ts, reading.power)) return false;
    if (!newest || reading.ts >= newest.ts) newest = { ts: reading.ts, rate: reading.rate };
    return true;
  }

  function trim() {
    const oldest = Date.now() / 1000 - WINDOW_S;
    for (const s of series.values()) s.dropBefore(oldest);
  }

  /** How long the most overdue sensor still counted in power now has been silent, or null if none is. */
  function overdue(now) {
    let worst = null;
    for (const s of series.values()) {
      const age = now - s.lastTs();
      if (age > ctx.onlineSeconds) continue; // no longer counted: "silent" says so
      const limit = Math.max(STALE_PERIODS * (s.period() ?? 0), STALE_FLOOR_S);
      if (age > limit && (worst === null || age > worst)) worst = age;
    }
    return worst;
  }

  /** Say a change of state once to screen readers; the seconds ticking by are never announced. */
  function announceState(state, text) {
    const previous = shownState;
    shownState = state;
    if (state === previous || previous === null) return;
    // Losing and finding the server is the frame's to say (its banner is an alert): not twice.
    if (state === "interrupted" || previous === "interrupted") return;
    const region = $("live-announce");
    // Emptied first: the same words as last time (readings back again) would not be announced.
    region.textContent = "";
    setTimeout(() => {
      region.textContent = state === "fresh" ? t("live.fresh") : text;
    }, 100);
  }

  function showNow() {
    const updated = $("live-updated");
    updated.classList.remove("loading");
    if (!newest) {
      updated.textContent = ctx.sensors.length ? t("live.waiting") : t("empty.sensors");
      return;
    }
    // The household's power now: the newest reading of each sensor still heard from, added up.
    // A sensor silent for longer than the api's online limit no longer counts (its plug may be
    // pulled): adding its last value would show power that is not drawn any more.
    const now = Date.now() / 1000;
    let total = 0;
    for (const s of series.values()) if (now - s.lastTs() <= ctx.onlineSeconds) total += s.lastPower();
    const age = Math.max(0, now - newest.ts);
    const silent = age > ctx.onlineSeconds;
    const late = overdue(now);
    let state = "fresh";
    let text = t("live.updated", { s: Math.round(age) });
    if (interrupted) [state, text] = ["interrupted", t("live.interrupted", { ago: ago(age) })];
    else if (silent) [state, text] = ["silent", t("live.silent", { ago: ago(age) })];
    else if (late !== null) [state, text] = ["stale", t("live.stale", { s: Math.round(late) })];
    $("live-power").textContent = silent ? "–" : number(total, 0);
    updated.textContent = text;
    updated.dataset.state = state;
    updated.classList.toggle("muted", state === "fresh");
    updated.classList.toggle("error", state !== "fresh");
    announceState(state, text);
    const tariff = $("tariff");
    tariff.hidden = false;
    tariff.className = `tariff ${newest.rate}`;
    tariff.textContent = `${newest.rate === "night" ? "☾" : "☀"} ${t(`live.tariff.${newest.rate}`)}`;
  }

  function draw() {
    const ids = [...series.keys()].sort((a, b) => a - b);
    if (!ids.length) return;
    const chart = $("live-chart");
    // The readings drawn, for tests and tools: {sensor id: [[ts, W], ...]} in time order.
    chart.dataset.points = JSON.stringify(Object.fromEntries(ids.map((id) => [id, series.get(id).pairs()])));
    const data = uPlot.join(ids.map((id) => [series.get(id).ts, series.get(id).power]));
    if (!plot || plot.ids.join() !== ids.join()) {
      plot?.destroy();
      const made = makeChart(
        chart,
        {
          tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), ctx.timezone),
          // Power from 0 W, or from below 0 when a sensor exports (negative power).
          scales: { x: { time: true, range: () => [Date.now() / 1000 - WINDOW_S, Date.now() / 1000] }, y: { range: (u, min, max) => [Math.min(0, (min ?? 0) * 1.15), Math.max(100, (max ?? 0) * 1.15)] } },
          // The names of the sensors only: their values are in the big number above.
          legend: { show: ids.length > 1, live: false },
          axes: [
            { values: (u, splits) => splits.map((ts) => clock.format(new Date(ts * 1000))), space: 60 },
            { label: "W", size: 56, values: tickValues },
          ],
          series: [
            {},
            ...ids.map((id, index) => ({
              label: names.get(id) ?? `#${id}`,
              stroke: COLORS.lines[index % COLORS.lines.length],
              width: 2,
              spanGaps: true,
              points: { show: false },
            })),
          ],
        },
        data,
      );
      plot = { ...made, ids };
    } else {
      plot.chart.setData(data);
    }
  }

  function refresh() {
    clearTimeout(pendingRefresh);
    pendingRefresh = null;
    trim();
    showNow();
    draw();
  }

  // The stream brings readings in bursts (the aggregator stores them in batches, and an outage's
  // backlog comes at once): one redraw for the burst, not one per reading.
  function refreshSoon() {
    pendingRefresh ??= setTimeout(refresh, 100);
  }

  async function loadToday() {
    try {
      const params = { sensor: ctx.sensor, start: todayIn(ctx.timezone), bucket: "day", count: 1, tz: ctx.timezone };
      // Today's euros as the costs route rounds them: a small cost shows its digits, not 0.00.
      const [report, costs] = await Promise.all([
        api("/api/v2/energy", { params }),
        api("/api/v2/costs", { params }).catch(() => null),
      ]);
      if (closed) return; // the view was left while the request ran: its elements are gone
      $("today-kwh").textContent = number(report.total_kwh, 2);
      $("today-euros").textContent = costs?.shown
        ? shown(costs.shown)
        : report.total_euros === null || report.total_euros === undefined
          ? "–"
          : number(report.total_euros, 2);
      // Where a sensor shown exports (solar panels), today's net hides what went each way: say both.
      const exporting = ctx.sensors.some((s) => s.exports && (wanted === null || s.id === wanted));
      $("today-flows").hidden = !exporting;
      if (exporting) $("today-flows").textContent = flowsText(report.total_import_kwh, report.total_export_kwh, report.total_net_kwh);
    } catch (error) {
      if (!closed) ctx.onError(error);
    }
  }

  /** The last ten minutes as stored, merged into what the stream already brought. */
  async function loadRecent() {
    try {
      const recent = await api("/api/v2/readings", { params: { sensor: ctx.sensor, since: Date.now() / 1000 - WINDOW_S } });
      if (closed) return;
      recent.forEach(add);
      refresh();
    } catch (error) {
      if (!closed) ctx.onError(error);
    }
  }

  /**
   * A new connection to the stream. Its first event comes after the server has fixed where it
   * starts (its newest reading), so the history asked for then holds every reading before that
   * point: nothing falls between the two, on the first connection or after an outage.
   */
  function connect() {
    stream?.close();
    const source = new EventSource("/api/v2/live");
    stream = source;
    let first = true;
    const heard = () => {
      lastEvent = performance.now();
      if (interrupted) {
        interrupted = false;
        reportReachable(true);
      }
      if (first) {
        first = false;
        loadRecent();
      }
    };
    source.addEventListener("open", () => {
      lastEvent = performance.now();
    });
    source.addEventListener("heartbeat", () => {
      heard();
      showNow();
    });
    source.addEventListener("reading", (event) => {
      heard();
      if (add(JSON.parse(event.data))) refreshSoon();
    });
    source.addEventListener("error", () => {
      // Refused for good (a 401 when the session ended): let the next API call say why. Otherwise
      // EventSource tries again by itself, and the watchdog judges whether the stream is dead.
      if (source.readyState === EventSource.CLOSED) {
        api("/api/v2/session").then((s) => s.user || ctx.onError(new ApiError(401, "session ended")), ctx.onError);
      }
    });
  }

  /** Once a second: the stream has said nothing for too long? Then it is dead: say so and reconnect. */
  function watchdog() {
    if (performance.now() - lastEvent <= WATCHDOG_MS) return;
    lastEvent = performance.now(); // the next look is a whole WATCHDOG_MS after this new connection
    if (!interrupted) {
      interrupted = true;
      // Is the server down, or only the stream? The banner says the former, with the reason.
      api("/api/v2/session", { timeoutMs: PROBE_MS }).catch((error) => !closed && interrupted && ctx.onError(error));
    }
    connect();
  }

  const ticker = setInterval(() => {
    watchdog();
    showNow();
  }, 1000);
  const todayTimer = setInterval(loadToday, 30000);
  const stopAlerts = mountAlerts($("alerts"), ctx, { sensorId: wanted });
  connect();
  loadRecent();
  loadToday();

  return () => {
    closed = true;
    stream?.close();
    clearInterval(ticker);
    clearInterval(todayTimer);
    clearTimeout(pendingRefresh);
    stopAlerts();
    plot?.destroy();
  };
}
