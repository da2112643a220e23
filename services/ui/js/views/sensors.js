// Sensors: what is connected, whether it is heard from, its battery, how much it said today.
import { api } from "../api.js";
import { ago, number, t } from "../i18n.js";

export function mount(root, ctx) {
  root.innerHTML = `<section class="card"><h1 data-i18n="sensors.title"></h1>
    <div id="sensors-body"><p class="loading" data-i18n="common.loading"></p></div></section>`;
  const body = root.querySelector("#sensors-body");
  let closed = false;

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
    const heads = ["name", "kind", "state", "power", "lastSeen", "battery", "today"].map((k) => t(`sensors.${k}`));
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
        cell(heads[1], s.kind),
        cell(heads[2], badge),
        cell(heads[3], s.power === null ? "–" : `${number(s.power, 0)} W`),
        cell(heads[4], s.last_seen === null ? t("sensors.never") : ago(now - s.last_seen)),
        cell(heads[5], s.battery === null ? "–" : `${number(s.battery, 2)} V`),
        cell(heads[6], number(s.readings_today, 0)),
      );
      table.tBodies[0].append(row);
    }
    body.replaceChildren(table);
  }

  load();
  const timer = setInterval(load, 10000);
  return () => {
    closed = true;
    clearInterval(timer);
  };
}
