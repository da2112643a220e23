// Alerts found by the aggregator (GET /api/v2/alerts): a card listing the active ones, shown by the
// live and sensors views, and the standby figure of a sensor. Texts are built here from each
// alert's figures, so they follow the page's language (the api's `message` is MQTT's English).
import { api } from "./api.js";
import { currentLocale, number, t } from "./i18n.js";

const REFRESH_MS = 30000;

/** One alert as a sentence in the page's language, times in the household's zone. */
export function describe(alert, sensorName, timezone) {
  const locale = currentLocale();
  const time = (ts, options) => new Intl.DateTimeFormat(locale, { timeZone: timezone, ...options }).format(new Date(ts * 1000));
  const d = alert.details;
  if (alert.kind === "silent") {
    const since = time(d.last_seen, { dateStyle: "short", timeStyle: "short" });
    return d.period_s === null || d.period_s === undefined
      ? t("alerts.silent", { sensor: sensorName, since })
      : t("alerts.silentPeriod", { sensor: sensorName, since, period: number(d.period_s, d.period_s < 10 ? 1 : 0) });
  }
  if (alert.kind === "unusual") {
    const hm = { hour: "2-digit", minute: "2-digit" };
    return t("alerts.unusual", {
      sensor: sensorName,
      kwh: number(d.wh / 1000, 2),
      from: time(d.hour_start, hm),
      to: time(d.hour_start + 3600, hm),
      usual: number(d.usual_wh / 1000, 2),
      weekday: time(d.hour_start, { weekday: "long" }),
    });
  }
  if (alert.kind === "standby") {
    return t(d.euros_per_year === null ? "alerts.standby" : "alerts.standbyCost", {
      sensor: sensorName,
      watts: number(d.standby_w, 0),
      euros: d.euros_per_year === null ? "" : number(d.euros_per_year, 0),
      limit: number(d.limit_w, 0),
    });
  }
  return `${sensorName}: ${alert.message}`;
}

/** "85 W · 144 €/year", or "–" while the sensor has no measured night yet. */
export function standbyText(entry) {
  if (!entry || entry.standby_w === null) return "–";
  const watts = `${number(entry.standby_w, 0)} W`;
  if (entry.standby_euros_per_year === null) return watts;
  return `${watts} · ${t("alerts.perYear", { euros: number(entry.standby_euros_per_year, 0) })}`;
}

/**
 * Fill `container` with a card of the active alerts (of `sensorId` only, when given), hidden while
 * there are none; refreshed every 30 s. `onReport(report)` also receives every answer. Returns a
 * function that stops the refresh.
 */
export function mountAlerts(container, ctx, { sensorId = null, onReport = null } = {}) {
  let closed = false;
  container.hidden = true;

  async function load() {
    let report;
    try {
      report = await api("/api/v2/alerts");
    } catch (error) {
      ctx.onError(error);
      return;
    }
    if (closed) return;
    onReport?.(report);
    const items = [];
    for (const entry of report.sensors) {
      if (sensorId !== null && entry.sensor !== sensorId) continue;
      for (const alert of entry.active) {
        const li = document.createElement("li");
        li.dataset.sensor = entry.key;
        li.dataset.kind = alert.kind;
        li.textContent = describe(alert, entry.name || entry.key, ctx.timezone);
        items.push(li);
      }
    }
    // The card is a status region: written again with the same alerts every 30 s, it would be
    // read out again every 30 s. Only a change is written (and so announced).
    const said = items.map((li) => `${li.dataset.sensor}|${li.dataset.kind}|${li.textContent}`).join("\n");
    if (container.dataset.said === said) return;
    container.dataset.said = said;
    container.hidden = items.length === 0;
    if (!items.length) {
      container.replaceChildren();
      return;
    }
    const title = document.createElement("h2");
    title.textContent = t("alerts.title");
    const list = document.createElement("ul");
    list.id = "alerts-list";
    list.append(...items);
    container.replaceChildren(title, list);
  }

  load();
  const timer = setInterval(load, REFRESH_MS);
  return () => {
    closed = true;
    clearInterval(timer);
  };
}
