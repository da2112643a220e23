// uPlot (vendored in vendor/uplot) sized to its container and redrawn when that changes.
import { number } from "./i18n.js";

export const COLORS = { day: "#f2a900", night: "#3b4cc0", lines: ["#1f6f50", "#c2410c", "#7c3aed", "#0e7490", "#be185d"] };

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

/** A uPlot chart filling `container`; returns it plus a function that removes it. */
export function makeChart(container, options, data) {
  const chart = new uPlot({ ...options, width: Math.max(container.clientWidth, 200), height: chartHeight() }, data, container);
  const resize = new ResizeObserver(() => chart.setSize({ width: Math.max(container.clientWidth, 200), height: chartHeight() }));
  resize.observe(container);
  return {
    chart,
    destroy() {
      resize.disconnect();
      chart.destroy();
    },
  };
}

/** The date (YYYY-MM-DD) it is now in a time zone. */
export function todayIn(timezone) {
  return new Intl.DateTimeFormat("en-CA", { timeZone: timezone, year: "numeric", month: "2-digit", day: "2-digit" }).format(new Date());
}
