// uPlot (vendored in vendor/uplot) sized to its container and redrawn when that changes. Every
// chart made here gets a text alternative: its canvas is an image named by its series, described
// by a visually-hidden table of the values it draws (a screen reader cannot read a canvas).
import { currentLocale, number, t } from "./i18n.js";

// The marks' colours, each at least 3:1 against the cards' white (WCAG 2.1, 1.4.11): the day bar
// 3.4:1, the night bar 12.7:1 (and 3.7:1 against the day bar it is drawn over), lines 5.2-6.1:1.
// The axes' tick labels are text: the page's ink, 15:1.
export const COLORS = {
  day: "#c27c00",
  night: "#1e2a78",
  axis: "#1d2430",
  lines: ["#1f6f50", "#c2410c", "#7c3aed", "#0e7490", "#be185d"],
};

// Up to this many points a chart's table lists every one; past it (the live chart's readings) it
// gives each series' latest, lowest and highest value instead.
const MAX_ROWS = 62;

const charts = new WeakMap(); // container -> its uPlot, read by chartIn()
let described = 0; // a counter for the description elements' ids

/** The uPlot drawn in `container`, or null (the accessibility test reads its colours from it). */
export const chartIn = (container) => charts.get(container) ?? null;

/**
 * Axis tick labels in the reader's language with as many decimals as the tick step needs
 * (a 0.0002 kWh step shows 0.0004, not 0 twice; a 500 W step shows 1 500).
 */
export function tickValues(u, splits, axisIndex, space, step) {
  let decimals = 0;
  // The fewest decimals that write the step exactly (0.25 needs two, 0.2 one), six at most.
  while (decimals < 6 && !isWhole(step * 10 ** decimals)) decimals += 1;
  return splits.map((v) => number(v, decimals));
}

const isWhole = (x) => Math.abs(x - Math.round(x)) <= 1e-6 * Math.max(1, Math.abs(x));

export function chartHeight() {
  return window.matchMedia("(max-width: 40rem)").matches ? 200 : 260;
}

// Decimals of a value in the table, by the unit of the y axis, as the page writes it elsewhere.
const DECIMALS = { kWh: 3, "€": 2, W: 0 };

/** A value in the table ("–" for none): three decimals below 1, two below 100, none above unless its unit says. */
function valueText(value, unit) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  const size = Math.abs(value);
  return number(value, DECIMALS[unit] ?? (size >= 100 ? 0 : size >= 1 ? 2 : 3));
}

/**
 * Each series' own values: its data, or `raw` when the caller draws something else than the
 * series' figures (uPlot does not stack: a stacked bar is drawn from zero up to the running sum of
 * the parts below it and itself, and `raw` keeps the part's own value for the table).
 */
const ownValues = (options, data) => options.series.map((s, i) => s.raw ?? data[i]);

/** How the x axis writes a value: the caller's tick labels, else a time or a number. */
function xWriter(options) {
  const values = options.axes?.[0]?.values;
  if (typeof values === "function") return (u, x) => String(values(u, [x], 0, 0, 0)[0] ?? "");
  if (options.scales?.x?.time === false) return (u, x) => number(x, 0);
  const format = new Intl.DateTimeFormat(currentLocale(), { dateStyle: "short", timeStyle: "short" });
  return (u, x) => format.format(new Date(x * 1000));
}

const cell = (tag, text, attrs = {}) => {
  const node = document.createElement(tag);
  node.textContent = text;
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  return node;
};

/** The chart's name, its summary and its table of values, written again from its data. */
function describe(u, options, parts) {
  const unit = options.axes?.[1]?.label ?? "";
  const inUnit = unit ? ` (${unit})` : ""; // "Total (kWh)"
  const shown = options.series.map((s, i) => ({ s, i })).filter(({ s, i }) => i > 0 && s.show !== false);
  const labels = shown.map(({ s }) => s.label ?? "");
  const name = t("chart.name", { series: labels.join(", "), unit: inUnit });
  const xs = u.data[0] ?? [];
  const writeX = xWriter(options);
  const values = ownValues(options, u.data);
  u.ctx.canvas.setAttribute("aria-label", name);
  parts.summary.textContent = xs.length
    ? t(xs.length <= MAX_ROWS ? "chart.summaryAll" : "chart.summaryRange", {
        first: writeX(u, xs[0]), last: writeX(u, xs[xs.length - 1]), count: xs.length,
      })
    : t("chart.noData");
  const head = document.createElement("tr");
  const rows = [];
  if (xs.length <= MAX_ROWS) {
    head.append(cell("th", t("chart.when"), { scope: "col" }), ...labels.map((label) => cell("th", `${label}${inUnit}`, { scope: "col" })));
    xs.forEach((x, j) => {
      const row = document.createElement("tr");
      row.append(cell("th", writeX(u, x), { scope: "row" }), ...shown.map(({ i }) => cell("td", valueText(values[i][j], unit))));
      rows.push(row);
    });
  } else {
    head.append(
      cell("th", t("chart.series"), { scope: "col" }),
      ...["chart.latest", "chart.lowest", "chart.highest"].map((key) => cell("th", `${t(key)}${inUnit}`, { scope: "col" })),
    );
    for (const { s, i } of shown) {
      const known = values[i].filter((v) => v !== null && v !== undefined);
      const row = document.createElement("tr");
      row.append(
        cell("th", s.label ?? "", { scope: "row" }),
        cell("td", valueText(known[known.length - 1], unit)),
        cell("td", valueText(known.length ? Math.min(...known) : null, unit)),
        cell("td", valueText(known.length ? Math.max(...known) : null, unit)),
      );
      rows.push(row);
    }
  }
  const caption = cell("caption", name);
  const thead = document.createElement("thead");
  thead.append(head);
  const tbody = document.createElement("tbody");
  tbody.append(...rows);
  parts.table.replaceChildren(caption, thead, tbody);
}

/** A uPlot chart filling `container`, with its text alternative; returns it plus a function that removes both. */
export function makeChart(container, options, data) {
  const id = `chart-description-${++described}`;
  // Read by screen readers in place, hidden on screen; never announced as it changes (the live
  // chart's changes with every reading), even inside a live region.
  const description = document.createElement("div");
  description.className = "visually-hidden chart-description";
  description.setAttribute("aria-live", "off");
  const summary = cell("p", "", { id });
  const table = document.createElement("table");
  description.append(summary, table);
  const parts = { summary, table };
  const redo = (u) => describe(u, options, parts);
  const hooks = { ...options.hooks };
  hooks.ready = [...(hooks.ready ?? []), redo];
  hooks.setData = [...(hooks.setData ?? []), redo];
  const axes = (options.axes ?? [{}, {}]).map((axis) => ({ stroke: COLORS.axis, ...axis }));
  const size = () => ({ width: Math.max(container.clientWidth, 200), height: chartHeight() });
  const chart = new uPlot({ ...options, axes, hooks, ...size() }, data, container);
  chart.ctx.canvas.setAttribute("role", "img");
  chart.ctx.canvas.setAttribute("aria-describedby", id);
  container.append(description);
  charts.set(container, chart);
  const resize = new ResizeObserver(() => chart.setSize(size()));
  resize.observe(container);
  return {
    chart,
    destroy() {
      resize.disconnect();
      charts.delete(container);
      chart.destroy();
      description.remove();
    },
  };
}

/** The date (YYYY-MM-DD) it is now in a time zone. */
export function todayIn(timezone) {
  return new Intl.DateTimeFormat("en-CA", { timeZone: timezone, year: "numeric", month: "2-digit", day: "2-digit" }).format(new Date());
}
