// History: energy per hour/day/month over a day, week, month or year, in kWh (day and night) or in
// euros (the costs the api priced with the household's dated tariffs, stacked by part: period, and
// day colour for Tempo; with the subscription prorated when asked); optionally beside the period
// before and the same period a year earlier (dashed lines), or split by sensor (stacked bars).
import { api } from "../api.js";
import { currentLocale, number, t } from "../i18n.js";
import { COLORS, makeChart, tickValues, todayIn } from "../charts.js";
import { SUBSCRIPTION_COLOUR, euros, partColours, partKey, partName, price } from "../tariffs.js";

const PERIODS = ["day", "week", "month", "year"];
// The comparisons the API offers (/api/v2/energy/compare), in the order they are drawn.
const REFERENCES = ["previous", "year"];
const REFERENCE_COLORS = { previous: "#4b5563", year: "#dc2626" };
const REFERENCE_DASH = { previous: [6, 4], year: [2, 3] };

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
/** A real calendar date written YYYY-MM-DD (2026-02-30 is not: Date would roll it to 2 March). */
const isDate = (text) => /^\d{4}-\d{2}-\d{2}$/.test(text) && !Number.isNaN(parse(text).getTime()) && iso(parse(text)) === text;
const earlier = (a, b) => (a < b ? a : b);

/**
 * The parts of a cost report or bucket that hold energy: a sensor that only exported in a period
 * has a part of 0 kWh and 0 € there, which would only clutter the legend and the table.
 */
const pricedParts = (report) => (report?.parts ?? []).filter((part) => part.kwh !== 0 || Number(part.shown) !== 0);

/** The export credit, taken off the total: shown with a minus so that the column adds up. */
const credit = (text) => (Number(text) === 0 ? euros(text) : `−${euros(text)}`);

/** What to ask the API for one period, and how to label its buckets. */
function request(period, dateIso) {
  const lang = currentLocale();
  const d = parse(dateIso);
  if (period === "day") {
    // 25 hours covers a DST day; buckets starting on the next day are dropped.
    return { bucket: "hour", count: 25, start: dateIso, keep: (b) => b.start.slice(0, 10) === dateIso, label: (b) => t("history.hour", { hh: b.start.slice(11, 13), h: Number(b.start.slice(11, 13)) }) };
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

/** The calendar span a reference covers, shortly: "14 Jan 2026", "5 – 11 Jan 2026", "December 2025". */
function spanTitle(period, series) {
  const lang = currentLocale();
  const first = parse(series.start.slice(0, 10));
  const last = new Date(parse(series.end.slice(0, 10)).getTime() - 86400000);
  const fmt = (options, date) => new Intl.DateTimeFormat(lang, { ...options, timeZone: "UTC" }).format(date);
  if (period === "day") return fmt({ day: "numeric", month: "short", year: "numeric" }, first);
  if (period === "week") return `${fmt({ day: "numeric", month: "short" }, first)} – ${fmt({ day: "numeric", month: "short", year: "numeric" }, last)}`;
  if (period === "month") return fmt({ month: "long", year: "numeric" }, first);
  return fmt({ year: "numeric" }, first);
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

/**
 * The date as lists in the page's language (the browser's own date field would speak the browser's
 * language, whatever the page's): the day for a day or a week, the month by name unless a year is
 * shown, the year. Dates after today are not offered; a picked day the month lacks becomes its last.
 */
function datePicker(root, period, dateIso, today, onPick) {
  const [year, month, day] = dateIso.split("-").map(Number);
  const [thisYear, thisMonth] = today.split("-").map(Number);
  const locale = currentLocale();
  const monthName = new Intl.DateTimeFormat(locale, { month: "long", timeZone: "UTC" });
  const option = (value, text, selected, disabled) => {
    const node = document.createElement("option");
    node.value = String(value);
    node.textContent = text;
    node.selected = selected;
    node.disabled = disabled;
    return node;
  };
  const pad = (n) => String(n).padStart(2, "0");
  const $ = (id) => root.querySelector(`#${id}`);
  const days = Array.from({ length: daysInMonth(dateIso) }, (_, i) => i + 1);
  $("date-day").replaceChildren(...days.map((d) => option(d, String(d), d === day, `${year}-${pad(month)}-${pad(d)}` > today)));
  const months = Array.from({ length: 12 }, (_, i) => i + 1);
  $("date-month").replaceChildren(
    ...months.map((m) => option(m, monthName.format(Date.UTC(2000, m - 1, 1)), m === month, year === thisYear && m > thisMonth)),
  );
  const firstYear = Math.min(year, thisYear - 15);
  const years = Array.from({ length: Math.max(thisYear, year) - firstYear + 1 }, (_, i) => Math.max(thisYear, year) - i);
  $("date-year").replaceChildren(...years.map((y) => option(y, String(y), y === year, y > thisYear)));
  $("date-day").hidden = period === "month" || period === "year";
  $("date-month").hidden = period === "year";
  const pick = () => {
    const y = Number($("date-year").value);
    const m = Number($("date-month").value);
    const last = daysInMonth(`${y}-${pad(m)}-01`);
    const picked = `${y}-${pad(m)}-${pad(Math.min(Number($("date-day").value), last))}`;
    onPick(earlier(picked, today));
  };
  for (const id of ["date-day", "date-month", "date-year"]) $(id).addEventListener("change", pick);
}

// The control a keyboard user moved with (a date list, an arrow, a period button): the view is
// mounted again for the new period, and focus goes back to it instead of being lost to the page.
let refocus = null;

export function mount(root, ctx) {
  const period = PERIODS.includes(ctx.args[0]) ? ctx.args[0] : "day";
  const today = todayIn(ctx.timezone);
  // A date in the address that no calendar has (2026-02-30): said once, in words, and not asked for.
  const badDate = ctx.args[1] && !isDate(ctx.args[1]) ? ctx.args[1] : null;
  const dateIso = ctx.args[1] && !badDate ? ctx.args[1] : today;
  let unit = localStorage.getItem("cw.unit") === "euros" ? "euros" : "kwh";
  root.innerHTML = `
    <section class="card">
      <div class="controls">
        <div class="segmented" role="group" id="periods" data-i18n-label="history.periods">
          ${PERIODS.map((p) => `<button type="button" data-period="${p}" aria-pressed="${p === period}" data-i18n="history.${p}"></button>`).join("")}
        </div>
        <div class="segmented" role="group" id="units" data-i18n-label="history.units">
          <button type="button" data-unit="kwh" data-i18n="history.kwh"></button>
          <button type="button" data-unit="euros" data-i18n="history.euros"></button>
        </div>
        <label id="subscription-label" class="check" hidden><input type="checkbox" id="with-subscription"><span data-i18n="costs.includeSubscription"></span></label>
      </div>
      <div class="controls">
        <button type="button" class="secondary" id="prev" data-i18n-label="history.prev">‹</button>
        <div class="date-pick" role="group" id="date-pick" data-i18n-label="history.date">
          <select id="date-day" data-i18n-label="history.pickDay"></select>
          <select id="date-month" data-i18n-label="history.pickMonth"></select>
          <select id="date-year" data-i18n-label="history.pickYear"></select>
        </div>
        <button type="button" class="secondary" id="next" data-i18n-label="history.next">›</button>
        <h1 id="period-title" class="period-title"></h1>
      </div>
      <div class="controls compare-controls" role="group" aria-labelledby="compare-label">
        <span id="compare-label" class="muted" data-i18n="history.compare"></span>
        <label><input type="checkbox" id="cmp-previous" data-ref="previous"><span data-i18n="history.comparePrevious"></span></label>
        <label><input type="checkbox" id="cmp-year" data-ref="year"><span data-i18n="history.compareYear"></span></label>
        <label id="by-sensor-label"><input type="checkbox" id="by-sensor"><span data-i18n="history.bySensor"></span></label>
      </div>
      <div id="history-body"><p class="loading" data-i18n="common.loading"></p></div>
      <p class="downloads" id="downloads" hidden>
        <span data-i18n="history.download"></span>
        <a id="csv-energy" class="button secondary" download data-i18n="history.csvEnergy"></a>
        <a id="csv-readings" class="button secondary" download data-i18n="history.csvReadings"></a>
      </p>
    </section>`;
  const $ = (id) => root.querySelector(`#${id}`);
  const goTo = (p, d) => {
    const active = root.contains(document.activeElement) ? document.activeElement : null;
    refocus = active?.id ? `#${active.id}` : active?.dataset.period ? `[data-period="${active.dataset.period}"]` : null;
    ctx.navigate(`history/${p}/${d}`);
  };
  root.querySelectorAll("[data-period]").forEach((b) => b.addEventListener("click", () => goTo(b.dataset.period, dateIso)));
  $("prev").addEventListener("click", () => goTo(period, shift(dateIso, period, -1)));
  // No period after today's: "next" stops at the one holding today (and lands on today, not after).
  $("next").disabled = shift(request(period, dateIso).start, period, 1) > today;
  $("next").addEventListener("click", () => goTo(period, earlier(shift(dateIso, period, 1), today)));
  datePicker(root, period, dateIso, today, (picked) => goTo(period, picked));
  if (refocus) {
    const target = root.querySelector(refocus);
    (target && !target.disabled ? target : $("prev")).focus(); // "next" may have just become disabled
    refocus = null;
  }
  root.querySelectorAll("[data-unit]").forEach((b) =>
    b.addEventListener("click", () => {
      unit = b.dataset.unit;
      localStorage.setItem("cw.unit", unit);
      // Euros come from /api/v2/costs, asked for the first time the € unit is shown.
      show();
      if (unit === "euros" && report && costs === null) load();
    }),
  );

  // Which comparisons are on, kept across visits like the unit. The split by sensor is a split of
  // the household: it is offered with "All sensors" picked, where the totals are the household's.
  const wanted = new Set((localStorage.getItem("cw.compare") ?? "").split(",").filter((k) => REFERENCES.includes(k)));
  const canSplit = ctx.sensor === "all";
  let split = canSplit && localStorage.getItem("cw.bySensor") === "1";
  for (const box of root.querySelectorAll("[data-ref]")) {
    box.checked = wanted.has(box.dataset.ref);
    box.addEventListener("change", () => {
      if (box.checked) wanted.add(box.dataset.ref);
      else wanted.delete(box.dataset.ref);
      localStorage.setItem("cw.compare", REFERENCES.filter((k) => wanted.has(k)).join(","));
      load();
    });
  }
  $("by-sensor").checked = split;
  $("by-sensor").disabled = !canSplit;
  if (!canSplit) $("by-sensor-label").title = t("history.bySensorAll");
  $("by-sensor").addEventListener("change", (event) => {
    split = event.target.checked;
    localStorage.setItem("cw.bySensor", split ? "1" : "0");
    load();
  });

  // Whether the costs include the subscription (prorated by the server), remembered like the unit.
  let withSubscription = localStorage.getItem("cw.subscription") === "1";
  $("with-subscription").checked = withSubscription;
  $("with-subscription").addEventListener("change", (event) => {
    withSubscription = event.target.checked;
    localStorage.setItem("cw.subscription", withSubscription ? "1" : "0");
    load();
  });

  let report = null;
  let costs = null; // /api/v2/costs, in the € unit
  let comparison = null; // /api/v2/energy/compare, when a comparison is on
  let parts = null; // /api/v2/energy/by-sensor, when split by sensor
  let labels = [];
  let buckets = [];
  let plot = null;
  let closed = false;
  let loads = 0;

  function show() {
    root.querySelectorAll("[data-unit]").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.unit === unit)));
    $("subscription-label").hidden = unit !== "euros";
    if (!report) return;
    if (unit === "euros" && costs === null) {
      plot?.destroy();
      plot = null;
      $("history-body").innerHTML = `<p class="loading">${t("common.loading")}</p>`;
      return;
    }
    const body = $("history-body");
    plot?.destroy();
    plot = null;
    const totalOf = (b) => (unit === "kwh" ? b.kwh : b.euros);
    const nightOf = (b) => (unit === "kwh" ? b.night_kwh : b.night_euros);
    const sum = (pick) => buckets.reduce((acc, b) => acc + (pick(b) ?? 0), 0);
    const digits = unit === "kwh" ? 3 : 2;
    const suffix = unit === "kwh" ? " kWh" : " €";
    const value = (pick) => (unit === "euros" && report.total_euros === null ? t("history.noPrice") : number(sum(pick), digits) + suffix);
    const amount = (v) => (v === null || v === undefined ? "–" : number(v, digits) + suffix);
    const sumOf = (values) => values.reduce((acc, v) => acc + (v ?? 0), 0);
    const percent = (v) => `${v > 0 ? "+" : ""}${number(v, 1)} %`;
    const pickUnit = (kwh, euros) => (unit === "kwh" ? kwh : euros);
    // Other series are matched to the shown bars by their start (the same instant, written alike).
    const indexOf = (list) => new Map(list.map((b, i) => [b.start, i]));
    const refs = REFERENCES.filter((k) => comparison?.[k]);
    const refValues = {};
    if (refs.length) {
      const at = indexOf(comparison.current.buckets);
      for (const k of refs) {
        refValues[k] = buckets.map((b) => {
          const twin = comparison[k].buckets[at.get(b.start)];
          return twin ? pickUnit(twin.kwh, twin.euros) : null;
        });
      }
    }
    const shownSensors = parts ? parts.sensors.filter((s) => s.total_kwh !== null) : [];
    const sensorValues = {};
    if (parts) {
      const at = indexOf(parts.buckets);
      for (const s of shownSensors) sensorValues[s.id] = buckets.map((b) => pickUnit(s.kwh, s.euros)[at.get(b.start)] ?? null);
    }
    const refTotal = (k) => pickUnit(comparison[k].total_kwh, comparison[k].total_euros);
    // In euros, each shown bar's costs (matched by instant: the two routes may write it apart),
    // its parts summed by key (a bar across a price change holds the same part twice).
    const priced = unit === "euros" && !parts && Boolean(costs);
    const costAt = new Map((costs?.buckets ?? []).map((c) => [Date.parse(c.start), c]));
    const bucketCosts = buckets.map((b) => costAt.get(Date.parse(b.start)) ?? null);
    const partKeys = [];
    for (const part of [...pricedParts(costs), ...bucketCosts.flatMap(pricedParts)]) {
      if (!partKeys.includes(partKey(part))) partKeys.push(partKey(part));
    }
    const partLabel = new Map();
    for (const part of [...pricedParts(costs), ...bucketCosts.flatMap(pricedParts)]) {
      if (!partLabel.has(partKey(part))) partLabel.set(partKey(part), partName({ ...part, colour_assumed: false }));
    }
    const partColour = partColours(partKeys);
    const partValues = {};
    for (const key of partKeys) {
      partValues[key] = bucketCosts.map((c) => {
        const mine = (c?.parts ?? []).filter((part) => partKey(part) === key);
        return mine.length ? mine.reduce((acc, part) => acc + part.euros, 0) : null;
      });
    }
    const showSubscription = Boolean(costs?.subscription) && (costs?.subscription_euros ?? 0) !== 0;
    const subscriptionValues = bucketCosts.map((c) => c?.subscription_euros ?? null);
    const unpriced = unit === "euros" && costs && (costs.shown === null || costs.shown === undefined);
    if (buckets.every((b) => b.kwh === null) && refs.every((k) => comparison[k].total_kwh === null)) {
      body.innerHTML = `<p class="empty" id="history-empty"></p>`;
      $("history-empty").textContent = ctx.sensors.length ? t("history.empty") : t("empty.sensors");
      return;
    }
    const refName = (k) => (k === "previous" ? t(`history.previous.${period}`) : t(period === "week" ? "history.lastYearWeek" : "history.lastYear"));
    const sensorName = (s) => s.name || s.key;
    const sensorColor = (s) => COLORS.lines[shownSensors.indexOf(s) % COLORS.lines.length];
    const swatchLine = (k) => `<i class="swatch line" style="color:${REFERENCE_COLORS[k]}" data-dash="${k}"></i>`;
    const legend = parts
      ? shownSensors.map((s) => `<span data-series="sensor-${s.id}"><i class="swatch" style="background:${sensorColor(s)}"></i><span class="name"></span></span>`)
      : priced
        ? [
            ...partKeys.map((k) => `<span data-series="part-${k}"><i class="swatch" style="background:${partColour[k]}"></i><span class="name"></span></span>`),
            ...(showSubscription ? [`<span data-series="subscription"><i class="swatch" style="background:${SUBSCRIPTION_COLOUR}"></i>${t("costs.subscription")}</span>`] : []),
          ]
        : [`<span data-series="total"><i class="swatch day"></i>${t("history.dayPart")}</span>`, `<span data-series="night"><i class="swatch night"></i>${t("history.nightPart")}</span>`];
    legend.push(...refs.map((k) => `<span data-series="${k}">${swatchLine(k)}${refName(k)}</span>`));
    body.innerHTML = `
      <div class="legend" id="history-legend">${legend.join("")}</div>
      <div id="history-chart" class="chart"></div>
      <p id="bucket-detail" class="bucket-detail muted"></p>
      <div class="totals">
        ${
          unit === "euros" && costs
            ? `<div><span>${t("history.total")}</span><b id="total">${unpriced ? t("history.noPrice") : euros(costs.shown)}</b></div>`
            : `<div><span>${t("history.total")}</span><b id="total">${value(totalOf)}</b></div>
        <div><span><i class="swatch day"></i>${t("history.dayPart")}</span><b id="total-day">${value((b) => (totalOf(b) ?? 0) - (nightOf(b) ?? 0))}</b></div>
        <div><span><i class="swatch night"></i>${t("history.nightPart")}</span><b id="total-night">${value(nightOf)}</b></div>`
        }
        ${refs
          .map(
            (k) => `<div class="reference" data-ref="${k}"><span>${swatchLine(k)}${refName(k)} · <span id="span-${k}"></span></span>
              <b id="total-${k}"></b><small id="change-${k}" class="change"></small></div>`,
          )
          .join("")}
      </div>
      ${unit === "euros" && costs && !unpriced ? `<div class="table-scroll"><table class="costs-table" id="costs-table"></table></div>` : ""}`;
    if (unit === "euros" && costs && !unpriced) costsTable(body.querySelector("#costs-table"));
    // Sensor names and spans come from the database or the calendar: set as text, never as HTML.
    for (const s of shownSensors) {
      body.querySelector(`[data-series="sensor-${s.id}"] .name`).textContent = `${sensorName(s)} · ${amount(sumOf(sensorValues[s.id]))}`;
    }
    if (priced) {
      for (const k of partKeys) body.querySelector(`[data-series="part-${CSS.escape(k)}"] .name`).textContent = partLabel.get(k);
    }
    for (const k of refs) {
      $(`span-${k}`).textContent = spanTitle(period, comparison[k]);
      const unpriced = unit === "euros" && comparison[k].total_euros === null && comparison[k].total_kwh !== null;
      $(`total-${k}`).textContent = unpriced ? t("history.noPrice") : amount(refTotal(k));
      const change = pickUnit(comparison[k].change_percent, comparison[k].change_percent_euros);
      $(`change-${k}`).textContent =
        change === null ? t("history.noChange") : t("history.change", { change: percent(change) });
      $(`change-${k}`).title = t("history.changeHelp", { n: comparison[k].compared_buckets });
      $(`change-${k}`).dataset.change = change === null ? "" : String(change);
    }
    // The bar under the pointer (or the finger: a tap moves uPlot's cursor) in words and numbers.
    const detail = (u) => {
      const i = u.cursor.idx;
      if (buckets[i] === undefined) {
        $("bucket-detail").textContent = t("history.pointHint"); // no bar under the pointer (idx null) or none yet
        return;
      }
      const words = [labels[i]];
      if (priced) {
        // The bar's figures as the server rounded them: its total, then each part and the subscription.
        const c = bucketCosts[i];
        words.push(euros(c?.shown));
        for (const part of pricedParts(c)) words.push(`${partName(part).toLowerCase()} ${euros(part.shown)}`);
        if (showSubscription && c) words.push(`${t("costs.subscription").toLowerCase()} ${euros(c.subscription_shown)}`);
        if (c && Number(c.export_euros)) words.push(`${t("costs.export").toLowerCase()} ${credit(c.export_shown)}`);
      } else if (parts) {
        for (const s of shownSensors) words.push(`${sensorName(s)} ${amount(sensorValues[s.id][i])}`);
        words.push(`${t("history.total").toLowerCase()} ${amount(totalOf(buckets[i]))}`);
      } else {
        words.push(amount(totalOf(buckets[i])), `${t("history.nightPart").toLowerCase()} ${amount(nightOf(buckets[i]))}`);
      }
      for (const k of refs) words.push(`${refName(k).toLowerCase()} ${amount(refValues[k][i])}`);
      $("bucket-detail").textContent = words.join(" · ");
    };
    const bars = uPlot.paths.bars({ size: [0.7, 48] });
    const xs = buckets.map((_, i) => i);
    const series = [{}];
    const data = [xs];
    const keys = [];
    if (priced) {
      // Stacked like the sensors below: each part from zero up to the running sum, the tallest
      // (the sum of all, the subscription on top) drawn first.
      const layers = partKeys.map((k) => ({ key: `part-${k}`, label: partLabel.get(k), colour: partColour[k], values: partValues[k] }));
      if (showSubscription) layers.push({ key: "subscription", label: t("costs.subscription"), colour: SUBSCRIPTION_COLOUR, values: subscriptionValues });
      let below = buckets.map(() => null);
      const stacks = layers.map((layer) => {
        below = below.map((v, i) => (v === null && layer.values[i] === null ? null : (v ?? 0) + (layer.values[i] ?? 0)));
        return { layer, values: below };
      });
      for (const { layer, values } of stacks.reverse()) {
        series.push({ label: layer.label, fill: layer.colour, stroke: layer.colour, paths: bars, points: { show: false }, raw: layer.values });
        data.push(values);
        keys.push(layer.key);
      }
    } else if (parts) {
      // uPlot does not stack: each sensor's bar is drawn from zero up to the running sum of the
      // sensors before it and itself, the tallest first, so each lower part is painted over it.
      let below = buckets.map(() => null);
      const stacks = shownSensors.map((s) => {
        below = below.map((v, i) => (v === null && sensorValues[s.id][i] === null ? null : (v ?? 0) + (sensorValues[s.id][i] ?? 0)));
        return { s, values: below };
      });
      for (const { s, values } of stacks.reverse()) {
        series.push({ label: sensorName(s), fill: sensorColor(s), stroke: sensorColor(s), paths: bars, points: { show: false }, raw: sensorValues[s.id] });
        data.push(values);
        keys.push(`sensor-${s.id}`);
      }
    } else {
      // Two bar series from zero: the whole bucket in the day colour, its night part drawn over it.
      series.push(
        { label: t("history.total"), fill: COLORS.day, stroke: COLORS.day, paths: bars, points: { show: false } },
        { label: t("history.nightPart"), fill: COLORS.night, stroke: COLORS.night, paths: bars, points: { show: false } },
      );
      data.push(buckets.map(totalOf), buckets.map(nightOf));
      keys.push("total", "night");
    }
    for (const k of refs) {
      // A dashed line through the reference's bars, with a dot on each so a lone one shows too.
      const color = REFERENCE_COLORS[k];
      series.push({ label: refName(k), stroke: color, width: 2, dash: REFERENCE_DASH[k], points: { show: true, size: 6, fill: color, stroke: color } });
      data.push(refValues[k]);
      keys.push(k);
    }
    $("history-chart").dataset.series = keys.join(",");
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
        series,
      },
      data,
    );
  }

  /**
   * The period's costs as a table: each part (period, day colour), its kWh, price and euros, the
   * subscription, the export credit and the total, all as the server rounded them (so the rows add
   * up to the total shown, and a tiny cost shows its first significant digits, not 0.00).
   */
  function costsTable(table) {
    const cell = (tag, text, cls) => {
      const node = document.createElement(tag);
      node.textContent = text;
      if (cls) node.className = cls;
      return node;
    };
    const row = (attrs, cells) => {
      const tr = document.createElement("tr");
      for (const [name, value] of Object.entries(attrs)) tr.dataset[name] = value;
      tr.append(...cells);
      return tr;
    };
    const tariffs = new Set(pricedParts(costs).map((p) => p.tariff));
    const head = row({}, [
      cell("th", t("costs.part")), cell("th", t("costs.kwh"), "num"), cell("th", t("costs.price"), "num"), cell("th", t("costs.euros"), "num"),
    ]);
    const rows = pricedParts(costs).map((part) => {
      const name = partName(part) + (tariffs.size > 1 && part.tariff ? ` · ${part.tariff}` : "");
      return row({ part: partKey(part) }, [
        cell("td", name), cell("td", number(part.kwh, 3), "num"), cell("td", price(part.euros_per_kwh), "num"), cell("td", euros(part.shown), "num"),
      ]);
    });
    if (costs.subscription) {
      rows.push(row({ part: "subscription" }, [
        cell("td", `${t("costs.subscription")} (${t("costs.prorated")})`), cell("td", ""), cell("td", ""),
        cell("td", euros(costs.subscription_shown), "num"),
      ]));
    }
    if (Number(costs.export_euros)) {
      const exported = costs.buckets.reduce((acc, b) => acc + (b.export_kwh ?? 0), 0);
      rows.push(row({ part: "export" }, [
        cell("td", t("costs.export")), cell("td", number(exported, 3), "num"), cell("td", ""), cell("td", credit(costs.export_shown), "num"),
      ]));
    }
    const total = row({ part: "total" }, [cell("th", t("costs.total")), cell("td", ""), cell("td", ""), cell("th", euros(costs.shown), "num")]);
    const thead = document.createElement("thead");
    thead.append(head);
    const tbody = document.createElement("tbody");
    tbody.append(...rows);
    const tfoot = document.createElement("tfoot");
    tfoot.append(total);
    table.replaceChildren(thead, tbody, tfoot);
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
    const seq = ++loads; // a toggle clicked while loading: only the newest answer is shown
    const references = REFERENCES.filter((k) => wanted.has(k));
    try {
      const [fetched, compared, splitReport] = await Promise.all([
        api("/api/v2/energy", {
          params: { sensor: ctx.sensor, start: r.start, bucket: r.bucket, count: r.count, tz: ctx.timezone },
        }),
        references.length
          ? api("/api/v2/energy/compare", {
              params: { sensor: ctx.sensor, start: r.start, period, bucket: r.bucket, tz: ctx.timezone, with: references.join(",") },
            })
          : null,
        split ? api("/api/v2/energy/by-sensor", { params: { start: r.start, period, bucket: r.bucket, tz: ctx.timezone } }) : null,
      ]);
      if (closed || seq !== loads) return;
      // The costs of exactly the shown bars (a day has 23, 24 or 25 hours: the energy says which),
      // so that their total is the period's.
      const kept = fetched.buckets.filter(r.keep).length;
      const priced =
        unit === "euros"
          ? await api("/api/v2/costs", {
              params: {
                sensor: ctx.sensor, start: r.start, bucket: r.bucket, count: kept, tz: ctx.timezone, subscription: String(withSubscription),
              },
            }).catch((error) => {
              // An api without the costs route (an older one): the energy's own euros are shown.
              if (error.status === 404 && (error.english ?? error.message) === "Not Found") return false;
              throw error;
            })
          : null;
      if (closed || seq !== loads) return;
      report = fetched;
      costs = priced;
      comparison = compared;
      parts = splitReport;
      buckets = report.buckets.filter(r.keep);
      labels = buckets.map(r.label);
      $("period-title").textContent = title(period, report);
      links(r);
      show();
    } catch (error) {
      if (closed || seq !== loads) return;
      // Said once: a lost session or a server that does not answer is the frame's to say (the login
      // page, the banner); any other refusal here, in the page's language (api.js words it by code).
      if (error.status === 401 || error.status === 0 || error.unreachable) {
        $("history-body").replaceChildren();
        ctx.onError(error);
        return;
      }
      $("history-body").innerHTML = `<p class="error" id="history-error" role="alert"></p>`;
      $("history-error").textContent = error.message;
    }
  }

  if (badDate) {
    $("history-body").innerHTML = `<p class="error" id="history-error" role="alert"></p>`;
    $("history-error").textContent = t("history.badDate", { date: badDate });
    return () => {
      closed = true;
      plot?.destroy();
    };
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
