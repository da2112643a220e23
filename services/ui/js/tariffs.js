// Tariffs and costs as the page shows them: names of periods and Tempo colours in the page's
// language, a colour per cost part, and the server's rounded figures (`shown`) in the reader's locale.
import { currentLocale, t } from "./i18n.js";
import { COLORS } from "./charts.js";

export const TEMPO_COLOURS = ["blue", "white", "red"];

// Bar colours of the cost parts, each at least 3:1 against the cards' white (WCAG 2.1, 1.4.11):
// the well-known periods keep the charts' day/night colours; a Tempo part is its day's colour,
// darker at peak (peak and off-peak of a colour 2.9-3.4:1 apart); the subscription is grey.
const PART_COLOURS = {
  base: "#1f6f50",
  peak: COLORS.day,
  offpeak: COLORS.night,
  "peak|blue": "#1e3a8a",
  "offpeak|blue": "#5a8ff2",
  "peak|white": "#374151",
  "offpeak|white": "#8b95a3",
  "peak|red": "#7f1d1d",
  "offpeak|red": "#e35d5d",
};
const OTHER_COLOURS = ["#0e7490", "#be185d", "#7c3aed", "#c2410c", "#4d7c0f"];
export const SUBSCRIPTION_COLOUR = "#7d8590";

/** A time-of-use period's name: the seeded ones translated, one typed by the user as typed. */
export function periodName(period) {
  const key = `period.${period}`;
  const text = t(key);
  return text === key ? period : text;
}

export function colourName(colour) {
  return t(`tempo.${colour}`);
}

/** "Peak · red day" (with "assumed" when the day's colour was not known and the server assumed it). */
export function partName(part) {
  const words = [periodName(part.period)];
  if (part.colour) words.push(colourName(part.colour).toLowerCase() + (part.colour_assumed ? ` ${t("costs.assumed")}` : ""));
  return words.join(" · ");
}

export const partKey = (part) => (part.colour ? `${part.period}|${part.colour}` : part.period);

/** A colour per part key, stable for the well-known ones, cycling for the others. */
export function partColours(keys) {
  const colours = {};
  let other = 0;
  for (const key of keys) colours[key] = PART_COLOURS[key] ?? OTHER_COLOURS[other++ % OTHER_COLOURS.length];
  return colours;
}

/**
 * The server's rounded figure ("0.29", "-1.50", "0.0042") in the reader's locale ("0,29"), with
 * exactly its decimals: never rounded again here, so what adds up on the server adds up on screen.
 */
export function shown(text) {
  if (text === null || text === undefined) return "–";
  const decimals = (String(text).split(".")[1] ?? "").length;
  return new Intl.NumberFormat(currentLocale(), { minimumFractionDigits: decimals, maximumFractionDigits: decimals }).format(Number(text));
}

export const euros = (text) => (text === null || text === undefined ? "–" : `${shown(text)} €`);

/** A price per kWh as typed in the tariff (up to 5 decimals, at least 4). */
export function price(value) {
  if (value === null || value === undefined) return "–";
  return new Intl.NumberFormat(currentLocale(), { minimumFractionDigits: 4, maximumFractionDigits: 5 }).format(value);
}

export function money(value) {
  return new Intl.NumberFormat(currentLocale(), { minimumFractionDigits: 2, maximumFractionDigits: 2 }).format(value);
}

export function kindName(kind) {
  return t(`tariff.kind.${kind}`);
}

/** A date (YYYY-MM-DD) in the reader's language: "1 Aug 2025". */
export function dateText(isoDate) {
  return new Intl.DateTimeFormat(currentLocale(), { day: "numeric", month: "short", year: "numeric", timeZone: "UTC" }).format(
    new Date(`${isoDate}T00:00:00Z`),
  );
}

/** The version of `tariff` in force on `day` (the newest starting on or before it), or null. */
export function versionOn(tariff, day) {
  const sorted = [...tariff.versions].sort((a, b) => a.valid_from.localeCompare(b.valid_from));
  let found = null;
  for (const v of sorted) if (v.valid_from <= day) found = v;
  return found;
}

/** The household's tariff on `day` from its dated list ([{valid_from, tariff_id}]). */
export function householdTariffOn(household, day) {
  let found = null;
  for (const h of [...household].sort((a, b) => a.valid_from.localeCompare(b.valid_from))) if (h.valid_from <= day) found = h;
  return found;
}
