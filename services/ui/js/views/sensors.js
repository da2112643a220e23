// Sensors: what is connected, whether it is heard from, its battery, how much it said today.
import { api } from "../api.js";
import { ago, number, t } from "../i18n.js";
import { mountAlerts, standbyText } from "../alerts.js";

export function mount(root, ctx) {
  root.innerHTML = `<section id="alerts" class="card alerts" role="status" hidden></section>
    <section class="card"><h1 data-i18n="sensors.title"></h1>
    <div id="sensors-body"><p class="loading" data-i18n="common.loading"></p></div>
    <p class="muted" data-i18n="sensors.standbyHelp"></p></section>`;
  const body = root.querySelector("#sensors-body");
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

  async function load() {
    let list;
    try {
      list = await api("/api/v2/sensors");
    } catch (error) {
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
    const heads = ["name", "kind", "state", "power", "lastSeen", "battery", "today", "standby"].map((k) => t(`sensors.${k}`));
    table.innerHTML = `<thead><tr>${heads.map((h) => `<th scope="col"></th>`).join("")}</tr></thead><tbody></tbody>`;
    table.querySelectorAll("th").forEach((th, i) => (th.textContent = heads[i]));
    const now = Date.now() / 1000;
    for (const s of list) {
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
      );
      row.lastChild.classList.add("standby");
      row.lastChild.dataset.id = String(s.id);
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
  };
}
