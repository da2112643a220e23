// History: energy per hour/day/month over a day, week, month or year, in kWh or euros, day and night.
import { api } from "../api.js";
import { currentLocale, number, t } from "../i18n.js";
import { COLORS, makeChart, tickValues, todayIn } from "../charts.js";

const PERIODS = ["day", "week", "month", "year"];

// Calendar arithmetic on YYYY-MM-DD strings, in UTC so the browser's own zone never shifts a date.
const parse = (iso) => new Date(`${iso}T00:00:00Z`);
const iso = (date) => date.toISOString().slice(0, 10);
function shift(dateIso, period, steps) {
  const d = parse(dateIso);
  if (period === "day") d.setUTCDate(d.getUTCDate() + steps);
  if (period === "week") d.setUTCDate(d.getUTCDate() + 7 * steps);
  if (period === "month") d.setUTCMonth(d.getUTCMonth() + steps, 1);
  if (period === "year") d.setUTCFullYear(d.getUTCFullYear() + steps, 0, 1);
  return iso(d);
}
function daysInMonth(dateIso) {
  const d = parse(dateIso);
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 0)).getUTCDate();
}

/** What to ask the API for one period, and how to label its buckets. */
function request(period, dateIso) {
  const lang = currentLocale();
  const d = parse(dateIso);
  if (period === "day") {
    // 25 hours covers a DST day; buckets starting on the next day are dropped.
    return { bucket: "hour", count: 25, start: dateIso, keep: (b) => b.start.slice(0, 10) === dateIso, label: (b) => `${b.start.slice(11, 13)}h` };
  }
  if (period === "week") {
    const weekday = new Intl.DateTimeFormat(lang, { weekday: "short", timeZone: "UTC" });
    const monday = new Date(d);
    monday.setUTCDate(d.getUTCDate() - ((d.getUTCDay() + 6) % 7));
    return { bucket: "day", count: 7, start: iso(monday), keep: () => true, label: (b) => weekday.format(parse(b.start.slice(0, 10))) };
  }
  if (period === "month") {
    const first = iso(new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1)));
    return { bucket: "day", count: daysInMonth(dateIso), start: first, keep: () => true, label: (b) => String(Number(b.start.slice(8, 10))) };
  }
  const month = new Intl.DateTimeFormat(lang, { month: "short", timeZone: "UTC" });
  const first = `${d.getUTCFullYear()}-01-01`;
  return { bucket: "month", count: 12, start: first, keep: () => true, label: (b) => month.format(parse(b.start.slice(0, 10))) };
}

function title(period, report) {
  const lang = currentLocale();
  const first = parse(report.buckets[0].start.slice(0, 10));
  const last = parse(report.buckets[report.buckets.length - 1].start.slice(0, 10));
  const fmt = (options, date) => new Intl.DateTimeFormat(lang, { ...options, timeZone: "UTC" }).format(date);
  if (period === "day") return fmt({ weekday: "long", day: "numeric", month: "long", year: "numeric" }, first);
  if (period === "week") return `${fmt({ day: "numeric", month: "short" }, first)} – ${fmt({ day: "numeric", month: "short", year: "numeric" }, last)}`;
  if (period === "month") return fmt({ month: "long", year: "numeric" }, first);
  return fmt({ year: "numeric" }, first);
}

export function mount(root, ctx) {
  const period = PERIODS.includes(ctx.args[0]) ? ctx.args[0] : "day";
  const dateIso = /^\d{4}-\d{2}-\d{2}$/.test(ctx.args[1] ?? "") ? ctx.args[1] : todayIn(ctx.timezone);
  let unit = localStorage.getItem("cw.unit") === "euros" ? "euros" : "kwh";
  root.innerHTML = `
    <section class="card">
      <div class="controls">
        <div class="segmented" role="group" id="periods">
          ${PERIODS.map((p) => `<button type="button" data-period="${p}" aria-pressed="${p === period}" data-i18n="history.${p}"></button>`).join("")}
        </div>
        <div class="segmented" role="group" id="units">
          <button type="button" data-unit="kwh" data-i18n="history.kwh"></button>
          <button type="button" data-unit="euros" data-i18n="history.euros"></button>
        </div>
      </div>
      <div class="controls">
        <button type="button" class="secondary" id="prev" data-i18n-label="history.prev">‹</button>
        <label><span class="visually-hidden" data-i18n="history.date"></span>
          <input type="date" id="date" value="${dateIso}" required></label>
        <button type="button" class="secondary" id="next" data-i18n-label="history.next">›</button>
        <h1 id="period-title" class="period-title"></h1>
      </div>
      <div id="history-body"><p class="loading" data-i18n="common.loading"></p></div>
      <p class="downloads" id="downloads" hidden>
        <span data-i18n="history.download"></span>
        <a id="csv-energy" class="button secondary" download data-i18n="history.csvEnergy"></a>
        <a id="csv-readings" class="button secondary" download data-i18n="history.csvReadings"></a>
      </p>
    </section>`;
  const $ = (id) => root.querySelector(`#${id}`);
  const goTo = (p, d) => ctx.navigate(`history/${p}/${d}`);
  root.querySelectorAll("[data-period]").forEach((b) => b.addEventListener("click", () => goTo(b.dataset.period, dateIso)));
  $("prev").addEventListener("click", () => goTo(period, shift(dateIso, period, -1)));
  $("next").addEventListener("click", () => goTo(period, shift(dateIso, period, 1)));
  $("date").addEventListener("change", (event) => event.target.value && goTo(period, event.target.value));
  root.querySelectorAll("[data-unit]").forEach((b) =>
    b.addEventListener("click", () => {
      unit = b.dataset.unit;
      localStorage.setItem("cw.unit", unit);
      show();
    }),
  );

  let report = null;
  let labels = [];
  let buckets = [];
  let plot = null;
  let closed = false;

  function show() {
    root.querySelectorAll("[data-unit]").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.unit === unit)));
    if (!report) return;
    const body = $("history-body");
    plot?.destroy();
    plot = null;
    const totalOf = (b) => (unit === "kwh" ? b.kwh : b.euros);
    const nightOf = (b) => (unit === "kwh" ? b.night_kwh : b.night_euros);
    const sum = (pick) => buckets.reduce((acc, b) => acc + (pick(b) ?? 0), 0);
    const digits = unit === "kwh" ? 3 : 2;
    const suffix = unit === "kwh" ? " kWh" : " €";
    const value = (pick) => (unit === "euros" && report.total_euros === null ? t("history.noPrice") : number(sum(pick), digits) + suffix);
    if (buckets.every((b) => b.kwh === null)) {
      body.innerHTML = `<p class="empty" id="history-empty"></p>`;
      $("history-empty").textContent = ctx.sensors.length ? t("history.empty") : t("empty.sensors");
      return;
    }
    body.innerHTML = `
      <div class="legend"><span><i class="swatch day"></i>${t("history.dayPart")}</span><span><i class="swatch night"></i>${t("history.nightPart")}</span></div>
      <div id="history-chart" class="chart"></div>
      <p id="bucket-detail" class="bucket-detail muted"></p>
      <div class="totals">
        <div><span>${t("history.total")}</span><b id="total">${value(totalOf)}</b></div>
        <div><span><i class="swatch day"></i>${t("history.dayPart")}</span><b id="total-day">${value((b) => (totalOf(b) ?? 0) - (nightOf(b) ?? 0))}</b></div>
        <div><span><i class="swatch night"></i>${t("history.nightPart")}</span><b id="total-night">${value(nightOf)}</b></div>
      </div>`;
    // The bar under the pointer (or the finger: a tap moves uPlot's cursor) in words and numbers.
    const amount = (v) => (v === null ? "–" : number(v, digits) + suffix);
    const detail = (u) => {
      const i = u.cursor.idx;
      $("bucket-detail").textContent =
        buckets[i] === undefined // no bar under the pointer (idx null) or none yet
          ? t("history.pointHint")
          : `${labels[i]} · ${amount(totalOf(buckets[i]))} · ${t("history.nightPart").toLowerCase()} ${amount(nightOf(buckets[i]))}`;
    };
    // Two bar series from zero: the whole bucket in the day colour, its night part drawn over it.
    const bars = uPlot.paths.bars({ size: [0.7, 48] });
    const xs = buckets.map((_, i) => i);
    plot = makeChart(
      $("history-chart"),
      {
        legend: { show: false },
        hooks: { setCursor: [detail], ready: [detail] },
        scales: { x: { time: false, range: [-0.5, buckets.length - 0.5] }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
        axes: [
          { values: (u, splits) => splits.map((i) => labels[i] ?? ""), space: 28, grid: { show: false } },
          { label: unit === "kwh" ? "kWh" : "€", size: 60, values: tickValues },
        ],
        series: [
          {},
          { label: t("history.total"), fill: COLORS.day, stroke: COLORS.day, paths: bars, points: { show: false } },
          { label: t("history.nightPart"), fill: COLORS.night, stroke: COLORS.night, paths: bars, points: { show: false } },
        ],
      },
      [xs, buckets.map(totalOf), buckets.map(nightOf)],
    );
  }

  // The shown period as CSV files (streamed by the api, saved by the browser with the session
  // cookie): its buckets exactly as drawn, and every raw reading of its days.
  function links(r) {
    const url = (path, params) => `${path}?${new URLSearchParams(params)}`;
    const lastDay = iso(new Date(parse(shift(r.start, period, 1)).getTime() - 86400000));
    $("csv-energy").href = url("/api/v2/export/energy.csv", {
      sensor: ctx.sensor, start: r.start, bucket: r.bucket, count: buckets.length, tz: ctx.timezone,
    });
    $("csv-readings").href = url("/api/v2/export/readings.csv", {
      sensor: ctx.sensor, start: r.start, end: lastDay, tz: ctx.timezone,
    });
    $("downloads").hidden = false;
  }

  async function load() {
    const r = request(period, dateIso);
    try {
      const fetched = await api("/api/v2/energy", {
        params: { sensor: ctx.sensor, start: r.start, bucket: r.bucket, count: r.count, tz: ctx.timezone },
      });
      if (closed) return;
      report = fetched;
      buckets = report.buckets.filter(r.keep);
      labels = buckets.map(r.label);
      $("period-title").textContent = title(period, report);
      links(r);
      show();
    } catch (error) {
      $("history-body").innerHTML = `<p class="error" id="history-error"></p>`;
      $("history-error").textContent = error.message;
      ctx.onError(error);
    }
  }

  load();
  // A period that includes today keeps filling up: refresh it every minute.
  const refresher = setInterval(() => {
    const today = todayIn(ctx.timezone);
    const r = request(period, dateIso);
    const end = shift(r.start, period, 1);
    if (r.start <= today && today < end) load();
  }, 60000);
  return () => {
    closed = true;
    clearInterval(refresher);
    plot?.destroy();
  };
}
