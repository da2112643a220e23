// Live view: power now, the last ten minutes, today's energy and cost; fed by server-sent events.
import { api, ApiError } from "../api.js";
import { ago, currentLocale, flowsText, number, t } from "../i18n.js";
import { COLORS, makeChart, tickValues, todayIn } from "../charts.js";
import { mountAlerts } from "../alerts.js";
import { shown } from "../tariffs.js";

const WINDOW_S = 600;

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
      <h2 data-i18n="live.lastMinutes"></h2>
      <div id="live-chart" class="chart"></div>
      <p class="today"><span data-i18n="live.today"></span>
        <b id="today-kwh">–</b> kWh · <b id="today-euros">–</b> €</p>
      <p id="today-flows" class="today" hidden></p>
    </section>`;
  const $ = (id) => root.querySelector(`#${id}`);
  const wanted = ctx.sensor === "all" ? null : Number(ctx.sensor);
  const names = new Map(ctx.sensors.map((s) => [s.id, s.name || s.key]));
  const series = new Map(); // sensor id -> {ts: [], power: []}
  let newest = null; // the newest reading seen: {ts, rate}
  let plot = null;
  let closed = false;
  // Times on the chart in the household's zone and the reader's language (uPlot's own are English).
  const clock = new Intl.DateTimeFormat(currentLocale(), { timeZone: ctx.timezone, hour: "2-digit", minute: "2-digit" });

  function add(reading) {
    if (wanted !== null && reading.sensor !== wanted) return;
    if (!series.has(reading.sensor)) series.set(reading.sensor, { ts: [], power: [] });
    const s = series.get(reading.sensor);
    if (s.ts.length && reading.ts <= s.ts[s.ts.length - 1]) return; // already have it
    s.ts.push(reading.ts);
    s.power.push(reading.power);
    if (!newest || reading.ts >= newest.ts) newest = { ts: reading.ts, rate: reading.rate };
  }

  function trim() {
    const oldest = Date.now() / 1000 - WINDOW_S;
    for (const s of series.values()) {
      while (s.ts.length > 1 && s.ts[0] < oldest) {
        s.ts.shift();
        s.power.shift();
      }
    }
  }

  function showNow() {
    if (!newest) {
      $("live-updated").classList.remove("loading");
      $("live-updated").textContent = ctx.sensors.length ? t("live.waiting") : t("empty.sensors");
      return;
    }
    // The household's power now: the newest reading of each sensor still heard from, added up.
    // A sensor silent for longer than the api's online limit no longer counts (its plug may be
    // pulled): adding its last value would show power that is not drawn any more.
    const now = Date.now() / 1000;
    let total = 0;
    for (const s of series.values()) if (now - s.ts[s.ts.length - 1] <= ctx.onlineSeconds) total += s.power[s.power.length - 1] ?? 0;
    const age = Math.max(0, now - newest.ts);
    const silent = age > ctx.onlineSeconds;
    $("live-power").textContent = silent ? "–" : number(total, 0);
    $("live-updated").classList.remove("loading");
    $("live-updated").textContent = silent ? t("live.silent", { ago: ago(age) }) : t("live.updated", { s: Math.round(age) });
    const tariff = $("tariff");
    tariff.hidden = false;
    tariff.className = `tariff ${newest.rate}`;
    tariff.textContent = `${newest.rate === "night" ? "☾" : "☀"} ${t(`live.tariff.${newest.rate}`)}`;
  }

  function draw() {
    const ids = [...series.keys()].sort((a, b) => a - b);
    if (!ids.length) return;
    const data = uPlot.join(ids.map((id) => [series.get(id).ts, series.get(id).power]));
    if (!plot || plot.ids.join() !== ids.join()) {
      plot?.destroy();
      const made = makeChart(
        $("live-chart"),
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

  async function start() {
    try {
      const recent = await api("/api/v2/readings", { params: { sensor: ctx.sensor, since: Date.now() / 1000 - WINDOW_S } });
      if (closed) return;
      recent.forEach(add);
      showNow();
      draw();
    } catch (error) {
      ctx.onError(error);
    }
    loadToday();
  }

  const stream = new EventSource("/api/v2/live");
  stream.addEventListener("reading", (event) => {
    add(JSON.parse(event.data));
    trim();
    showNow();
    draw();
  });
  stream.addEventListener("open", () => ctx.clearError());
  stream.addEventListener("error", () => {
    if (stream.readyState !== EventSource.CLOSED) $("live-updated").textContent = t("live.reconnecting");
    // Refused for good (a 401 when the session ended): let the next API call say why.
    else api("/api/v2/session").then((s) => s.user || ctx.onError(new ApiError(401, "session ended")), ctx.onError);
  });
  const ticker = setInterval(showNow, 1000);
  const todayTimer = setInterval(loadToday, 30000);
  const stopAlerts = mountAlerts($("alerts"), ctx, { sensorId: wanted });
  start();

  return () => {
    closed = true;
    stream.close();
    clearInterval(ticker);
    clearInterval(todayTimer);
    stopAlerts();
    plot?.destroy();
  };
}
