// Sensors: what is connected, whether it is heard from, its battery, how much it said today.
import { api } from "../api.js";
import { ago, flowsText, number, t } from "../i18n.js";
import { mountAlerts, standbyText } from "../alerts.js";
import { todayIn } from "../charts.js";
import { mountQuarantine } from "../quarantine.js";

export function mount(root, ctx) {
  root.innerHTML = `<section id="alerts" class="card alerts" role="status" hidden></section>
    <section class="card"><h1 data-i18n="sensors.title"></h1>
    <div id="sensors-body"><p class="loading" data-i18n="common.loading"></p></div>
    <p class="muted" data-i18n="sensors.standbyHelp"></p></section>
    <section id="quarantine" class="card" aria-labelledby="quarantine-title" hidden></section>`;
  const body = root.querySelector("#sensors-body");
  const stopQuarantine = mountQuarantine(root.querySelector("#quarantine"), ctx);
  let closed = false;
  let standby = new Map(); // sensor id -> its entry in /api/v2/alerts
  const stopAlerts = mountAlerts(root.querySelector("#alerts"), ctx, {
    onReport: (report) => {
      standby = new Map(report.sensors.map((entry) => [entry.sensor, entry]));
      for (const td of body.querySelectorAll("td.standby")) td.textContent = standbyText(standby.get(Number(td.dataset.id)));
    },
  });

  function cell(label, content) {
    const td = document.createElement("td");
    td.dataset.label = label;
    if (content instanceof Node) td.append(content);
    else td.textContent = content;
    return td;
  }

  // Today's energy of one sensor: net kWh, or imported, exported and net for one that exports.
  async function todayEnergy(sensor) {
    try {
      const report = await api("/api/v2/energy", {
        params: { sensor: sensor.id, start: todayIn(ctx.timezone), bucket: "day", count: 1, tz: ctx.timezone },
      });
      if (report.buckets[0].kwh === null) return "–";
      if (!sensor.exports) return `${number(report.total_net_kwh, 2)} kWh`;
      return flowsText(report.total_import_kwh, report.total_export_kwh, report.total_net_kwh);
    } catch {
      return "–"; // the table's other figures are still worth showing
    }
  }

  async function load() {
    let list;
    let energies;
    try {
      list = await api("/api/v2/sensors");
      energies = await Promise.all(list.map(todayEnergy));
    } catch (error) {
      if (closed) return;
      body.innerHTML = `<p class="error" id="sensors-error"></p>`; // not "Loading…" for ever
      body.querySelector("#sensors-error").textContent = error.message;
      ctx.onError(error);
      return;
    }
    if (closed) return;
    if (!list.length) {
      body.innerHTML = `<p class="empty" id="sensors-empty"></p>`;
      body.querySelector("#sensors-empty").textContent = t("empty.sensors");
      return;
    }
    const table = document.createElement("table");
    table.className = "sensors-table";
    const heads = ["name", "kind", "state", "power", "lastSeen", "battery", "today", "standby", "energyToday"].map((k) => t(`sensors.${k}`));
    table.innerHTML = `<thead><tr>${heads.map((h) => `<th scope="col"></th>`).join("")}</tr></thead><tbody></tbody>`;
    table.querySelectorAll("th").forEach((th, i) => (th.textContent = heads[i]));
    const now = Date.now() / 1000;
    for (const [index, s] of list.entries()) {
      const badge = document.createElement("span");
      badge.className = `badge ${s.online ? "online" : "offline"}`;
      badge.textContent = t(s.online ? "sensors.online" : "sensors.offline");
      const row = document.createElement("tr");
      row.dataset.sensor = s.key;
      row.append(
        cell(heads[0], s.name || s.key),
        // Made-up readings (the simulator, and the history it publishes on a first start) say so.
        cell(heads[1], s.simulated ? `${s.kind} (${t("sensors.simulated")})` : s.kind),
        cell(heads[2], badge),
        cell(heads[3], s.power === null ? "–" : `${number(s.power, 0)} W`),
        cell(heads[4], s.last_seen === null ? t("sensors.never") : ago(now - s.last_seen)),
        cell(heads[5], s.battery === null ? "–" : `${number(s.battery, 2)} V`),
        cell(heads[6], number(s.readings_today, 0)),
        cell(heads[7], standbyText(standby.get(s.id))),
        cell(heads[8], energies[index]),
      );
      row.children[7].classList.add("standby");
      row.children[7].dataset.id = String(s.id);
      row.children[8].classList.add("energy");
      table.tBodies[0].append(row);
    }
    body.replaceChildren(table);
  }

  load();
  const timer = setInterval(load, 10000);
  return () => {
    closed = true;
    clearInterval(timer);
    stopAlerts();
    stopQuarantine();
  };
}
