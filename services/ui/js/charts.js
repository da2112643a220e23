// uPlot (vendored in vendor/uplot) sized to its container and redrawn when that changes.

export const COLORS = { day: "#f2a900", night: "#3b4cc0", lines: ["#1f6f50", "#c2410c", "#7c3aed", "#0e7490", "#be185d"] };

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
