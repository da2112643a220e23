// Readings the aggregator set aside for an impossible time (GET /api/v2/quarantine): a card in the
// sensors view, hidden while there are none, with Release and Delete buttons for an administrator.
// The reason stays in the api's English (it names seqs and UTC times); its kind is worded here.
import { api } from "./api.js";
import { currentLocale, number, t } from "./i18n.js";

const REFRESH_MS = 30000;

/** "Dated in the future" or "Clock went back", from the start of the aggregator's reason. */
function kindOf(reason) {
  if (reason.startsWith("in the future")) return t("quarantine.future");
  if (reason.startsWith("time went back")) return t("quarantine.timeBack");
  return "";
}

/**
 * Fill `container` (a section) with the quarantined readings, refreshed every 30 s and after each
 * action. Returns a function that stops the refresh.
 */
export function mountQuarantine(container, ctx) {
  let closed = false;
  container.hidden = true;
  // Built once: the status line stays the same element, so a screen reader hears each change.
  container.innerHTML = `<h2 id="quarantine-title"></h2><p class="muted"></p>
    <p id="quarantine-status" role="status"></p><div class="quarantine-list"></div>`;
  container.querySelector("h2").textContent = t("quarantine.title");
  container.querySelector("p.muted").textContent = t("quarantine.intro");
  const status = container.querySelector("#quarantine-status");
  const list = container.querySelector(".quarantine-list");
  const isAdmin = Boolean(ctx.session?.user?.is_admin);
  const when = (ts) =>
    new Intl.DateTimeFormat(currentLocale(), { timeZone: ctx.timezone, dateStyle: "short", timeStyle: "medium" }).format(
      new Date(ts * 1000),
    );

  function cell(label, content) {
    const td = document.createElement("td");
    td.dataset.label = label;
    if (content instanceof Node) td.append(content);
    else td.textContent = content;
    return td;
  }

  async function act(path, method, done) {
    try {
      const answer = await api(path, { method });
      status.textContent = done(answer);
    } catch (error) {
      ctx.onError(error);
    }
    await load();
  }

  function button(label, name, onClick, secondary = false) {
    const b = document.createElement("button");
    b.type = "button";
    if (secondary) b.className = "secondary";
    b.textContent = label;
    b.setAttribute("aria-label", name);
    b.addEventListener("click", () => {
      b.disabled = true;
      onClick();
    });
    return b;
  }

  function render(report) {
    container.hidden = report.total === 0;
    const keys = ["sensor", "stamped", "power", "reason", "received", ...(isAdmin ? ["actions"] : [])];
    const heads = keys.map((k) => t(`quarantine.${k}`));
    const table = document.createElement("table");
    table.className = "sensors-table quarantine-table";
    table.setAttribute("aria-labelledby", "quarantine-title");
    table.innerHTML = `<thead><tr>${heads.map(() => `<th scope="col"></th>`).join("")}</tr></thead><tbody></tbody>`;
    table.querySelectorAll("th").forEach((th, i) => (th.textContent = heads[i]));
    for (const r of report.readings) {
      const name = r.sensor_name || r.sensor_key;
      const why = document.createElement("span");
      const kind = document.createElement("strong");
      kind.textContent = kindOf(r.reason);
      const detail = document.createElement("span");
      detail.lang = "en";
      detail.textContent = r.reason;
      if (kind.textContent) why.append(kind, document.createElement("br"));
      why.append(detail);
      const row = document.createElement("tr");
      row.dataset.quarantined = String(r.id);
      row.append(
        cell(heads[0], name),
        cell(heads[1], when(r.ts)),
        cell(heads[2], `${number(r.power, 0)} W`),
        cell(heads[3], why),
        cell(heads[4], when(r.received_at)),
      );
      if (isAdmin) {
        const actions = document.createElement("span");
        actions.className = "actions";
        const labels = { sensor: name, time: when(r.ts) };
        actions.append(
          button(t("quarantine.release"), t("quarantine.releaseLabel", labels), () =>
            act(`/api/v2/quarantine/${r.id}/release`, "POST", (answer) =>
              answer.outcome === "stored" ? t("quarantine.released", { time: when(r.ts) }) : t("quarantine.duplicate"),
            ),
          ),
          " ",
          button(t("quarantine.delete"), t("quarantine.deleteLabel", labels), () =>
            act(`/api/v2/quarantine/${r.id}`, "DELETE", () => t("quarantine.deleted")), true,
          ),
        );
        row.append(cell(heads[5], actions));
      }
      table.tBodies[0].append(row);
    }
    const parts = [table];
    if (report.readings.length < report.total) {
      const more = document.createElement("p");
      more.className = "muted";
      more.textContent = t("quarantine.more", { shown: report.readings.length, total: report.total });
      parts.push(more);
    }
    list.replaceChildren(...parts);
  }

  async function load() {
    let report;
    try {
      report = await api("/api/v2/quarantine");
    } catch {
      return; // the sensors table reports the api's trouble; this card just keeps what it showed
    }
    if (!closed) render(report);
  }

  load();
  const timer = setInterval(load, REFRESH_MS);
  return () => {
    closed = true;
    clearInterval(timer);
  };
}
