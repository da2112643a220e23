// The form part that types one dated version of a tariff: valid from, subscription, a price per
// time-of-use period (per Tempo colour for a Tempo tariff), the windows of the periods at minute
// resolution, and the price of exported energy. Used for a new tariff and for a new version.
import { el } from "./forms.js";
import { t } from "./i18n.js";
import { TEMPO_COLOURS, colourName, periodName } from "./tariffs.js";

const labelled = (text, input) => el("label", {}, [el("span", { text }), input]);

/**
 * Fill `container` with the fields of a version, starting from `version` (a copy of the newest
 * one, say) or from a blank two-period one. Returns `read()`, which gives the version to send or
 * throws an Error whose message says what to fix.
 */
export function versionEditor(container, { version = null, tempo = false, validFrom }) {
  const start = version ?? {
    subscription_euros_per_month: 0,
    periods: { peak: 0 },
    default_period: "peak",
    windows: [],
    export_euros_per_kwh: 0,
  };
  // The default period (the one outside every window) is listed first.
  const names = Object.keys(start.periods).sort((a, b) => (a === start.default_period ? -1 : b === start.default_period ? 1 : 0));

  const from = el("input", { type: "date", name: "valid_from", required: true, value: validFrom });
  const subscription = el("input", {
    type: "number", name: "subscription", step: "any", min: "0", required: true, inputmode: "decimal",
    value: String(start.subscription_euros_per_month ?? 0),
  });
  const exportPrice = el("input", {
    type: "number", name: "export", step: "any", min: "0", inputmode: "decimal", value: String(start.export_euros_per_kwh ?? 0),
  });
  const periodRows = el("div", { class: "rows periods" });
  const windowRows = el("div", { class: "rows windows" });
  const addPeriod = el("button", { type: "button", class: "secondary small", text: t("tariff.addPeriod") });
  const addWindow = el("button", { type: "button", class: "secondary small", text: t("tariff.addWindow") });

  // Row labels carry their number ("Period 2 price (€/kWh)") so each field is named on its own;
  // each row is a group named after it ("Period 2"), its remove button among its fields.
  function renumber() {
    [...periodRows.children].forEach((row, i) => {
      const n = i + 1;
      row.setAttribute("aria-label", t("tariff.periodRow", { n }));
      row.querySelector("[name=period]").setAttribute("aria-label", t("tariff.periodN", { n }));
      for (const input of row.querySelectorAll("[data-colour]")) {
        const colour = input.dataset.colour;
        input.setAttribute("aria-label", colour ? t("tariff.priceNColour", { n, colour: colourName(colour).toLowerCase() }) : t("tariff.priceN", { n }));
      }
      row.querySelector("button").setAttribute("aria-label", t("tariff.removePeriod", { n }));
      row.querySelector("button").disabled = periodRows.children.length === 1;
    });
    [...windowRows.children].forEach((row, i) => {
      const n = i + 1;
      row.setAttribute("aria-label", t("tariff.windowRow", { n }));
      row.querySelector("[name=start]").setAttribute("aria-label", t("tariff.windowStart", { n }));
      row.querySelector("[name=end]").setAttribute("aria-label", t("tariff.windowEnd", { n }));
      row.querySelector("select").setAttribute("aria-label", t("tariff.windowPeriod", { n }));
      row.querySelector("button").setAttribute("aria-label", t("tariff.removeWindow", { n }));
    });
    syncPeriodChoices();
  }

  const periodNames = () => [...periodRows.querySelectorAll("[name=period]")].map((input) => input.value.trim());

  // Each window's period picker offers the periods as typed now, keeping its choice by position.
  function syncPeriodChoices() {
    const list = periodNames();
    for (const select of windowRows.querySelectorAll("select")) {
      const chosen = select.selectedIndex >= 0 ? select.selectedIndex : Number(select.dataset.index ?? 1);
      select.replaceChildren(...list.map((name, i) => el("option", { value: String(i), text: name ? periodName(name) : `#${i + 1}` })));
      select.selectedIndex = Math.min(Math.max(chosen, 0), list.length - 1);
    }
  }

  function periodRow(name, prices) {
    const nameInput = el("input", { name: "period", value: name, required: true, autocomplete: "off", spellcheck: "false" });
    nameInput.addEventListener("input", syncPeriodChoices);
    const priceInputs = (tempo ? TEMPO_COLOURS : [""]).map((colour) =>
      el("input", {
        type: "number", step: "any", min: "0", required: true, inputmode: "decimal", "data-colour": colour,
        placeholder: colour ? colourName(colour) : "€/kWh",
        value: prices === null ? "" : String(colour ? prices?.[colour] ?? "" : prices),
      }),
    );
    const remove = el("button", { type: "button", class: "secondary small", text: "×" });
    const row = el("div", { class: `row-line period-line${tempo ? " tempo" : ""}`, role: "group" }, [nameInput, ...priceInputs, remove]);
    remove.addEventListener("click", () => {
      const index = [...periodRows.children].indexOf(row);
      row.remove();
      // Windows on the removed period move to the first; those after it shift down by one.
      for (const select of windowRows.querySelectorAll("select")) {
        if (select.selectedIndex === index) select.selectedIndex = 0;
        else if (select.selectedIndex > index) select.selectedIndex -= 1;
        select.dataset.index = String(select.selectedIndex);
      }
      renumber();
    });
    return row;
  }

  function windowRow(window) {
    const startInput = el("input", { type: "time", name: "start", step: "60", required: true, value: window?.start ?? "22:00" });
    const endInput = el("input", { type: "time", name: "end", step: "60", required: true, value: window?.end ?? "06:00" });
    const select = el("select", { name: "window-period" });
    const index = window ? periodNames().indexOf(window.period) : periodRows.children.length > 1 ? 1 : 0;
    select.dataset.index = String(Math.max(index, 0));
    const remove = el("button", { type: "button", class: "secondary small", text: "×" });
    const row = el("div", { class: "row-line window-line", role: "group" }, [startInput, el("span", { text: "–", "aria-hidden": "true" }), endInput, select, remove]);
    remove.addEventListener("click", () => {
      row.remove();
      renumber();
    });
    return row;
  }

  for (const name of names) periodRows.append(periodRow(name, start.periods[name]));
  for (const w of start.windows ?? []) windowRows.append(windowRow(w));
  addPeriod.addEventListener("click", () => {
    periodRows.append(periodRow("", tempo ? {} : null));
    renumber();
  });
  addWindow.addEventListener("click", () => {
    windowRows.append(windowRow(null));
    renumber();
  });

  container.replaceChildren(
    labelled(t("tariff.validFrom"), from),
    labelled(t("tariff.subscription"), subscription),
    el("fieldset", {}, [
      el("legend", { text: tempo ? t("tariff.pricesTempo") : t("tariff.prices") }),
      el("p", { class: "muted hint", text: t("tariff.periodsHelp") }),
      periodRows,
      addPeriod,
    ]),
    el("fieldset", {}, [
      el("legend", { text: t("tariff.windows") }),
      el("p", { class: "muted hint", text: t("tariff.windowsHelp") }),
      windowRows,
      addWindow,
    ]),
    labelled(t("tariff.exportPrice"), exportPrice),
  );
  renumber();

  const amount = (input, what) => {
    const value = input.value.trim() === "" ? NaN : Number(input.value);
    if (!Number.isFinite(value) || value < 0) throw new Error(t("tariff.err.number", { what }));
    return value;
  };

  return function read() {
    const list = periodNames();
    if (list.some((name) => !name)) throw new Error(t("tariff.err.periodName"));
    if (new Set(list).size !== list.length) throw new Error(t("tariff.err.periodTwice"));
    const periods = {};
    [...periodRows.children].forEach((row, i) => {
      const inputs = [...row.querySelectorAll("[data-colour]")];
      if (tempo) {
        periods[list[i]] = Object.fromEntries(inputs.map((input) => [input.dataset.colour, amount(input, periodName(list[i]))]));
      } else {
        periods[list[i]] = amount(inputs[0], periodName(list[i]));
      }
    });
    if (!from.value) throw new Error(t("tariff.err.date"));
    const windows = [...windowRows.children].map((row) => {
      const startValue = row.querySelector("[name=start]").value.slice(0, 5);
      const endValue = row.querySelector("[name=end]").value.slice(0, 5);
      if (!startValue || !endValue) throw new Error(t("tariff.err.window"));
      return { start: startValue, end: endValue, period: list[row.querySelector("select").selectedIndex] };
    });
    return {
      valid_from: from.value,
      subscription_euros_per_month: amount(subscription, t("tariff.subscription")),
      periods,
      default_period: list[0],
      windows,
      export_euros_per_kwh: exportPrice.value.trim() === "" ? 0 : amount(exportPrice, t("tariff.exportPrice")),
    };
  };
}
