// One way for every form to submit: button disabled while waiting, then the outcome under the form.
import { currentLocale, longDate, t } from "./i18n.js";

/** "22:00" (a time field's HH:MM value) as the page's language writes a time of day; "" if none. */
function clockTime(value) {
  const [hours, minutes] = (value ?? "").split(":").map(Number);
  if (!Number.isInteger(hours) || !Number.isInteger(minutes)) return "";
  const words = { hour: "2-digit", minute: "2-digit", timeZone: "UTC" };
  return new Intl.DateTimeFormat(currentLocale(), words).format(Date.UTC(2000, 0, 1, hours, minutes));
}

/**
 * The browser draws date and time fields in its own language ("01/16/2025", "10:00 PM" in an
 * American browser, its calendar in English) whatever the page's: so each such field of a form
 * has its value in the page's language beside it ("jeudi 16 janvier 2025", "22:00"), kept up to
 * date as it changes. Hidden from screen readers, which read the field itself under its label.
 */
function echoDates(form) {
  for (const input of form.querySelectorAll("input[type=date], input[type=time]")) {
    let echo = input.nextElementSibling;
    if (!echo?.classList.contains("date-echo")) {
      echo = document.createElement("span");
      echo.className = "date-echo muted";
      echo.setAttribute("aria-hidden", "true");
      input.after(echo);
    }
    const text = input.type === "date" ? longDate(input.value) : clockTime(input.value);
    if (echo.textContent !== text) echo.textContent = text; // unchanged: no mutation, no loop below
  }
}

/**
 * On submit, run `save(fields)`. What it returns (text) is shown as success; what it throws (the
 * API's own message, or a text of ours) as an error, also passed to `onError` if given.
 */
export function wireForm(form, save, { onError } = {}) {
  const status = form.querySelector(".status");
  echoDates(form);
  for (const type of ["input", "change"]) form.addEventListener(type, () => echoDates(form));
  form.addEventListener("reset", () => setTimeout(() => echoDates(form))); // after the fields are reset
  // Fields added later (the tariff editor builds its rows as the user goes) get theirs too.
  new MutationObserver(() => echoDates(form)).observe(form, { childList: true, subtree: true });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    status.className = "status";
    status.textContent = "";
    try {
      const message = await save(new FormData(form));
      if (message) {
        status.textContent = message;
        status.classList.add("ok");
      }
    } catch (error) {
      status.textContent = error.status === 0 ? t("common.offline") : error.message;
      status.classList.add("error");
      onError?.(error);
    } finally {
      button.disabled = false;
    }
  });
}

/** A new element: attributes by name ("text" sets its text; true is a bare attribute, false/null
 * none), then its children. The settings forms are built with it. */
export const el = (tag, attrs = {}, children = []) => {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "text") node.textContent = value;
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(name, value === true ? "" : String(value));
  }
  node.append(...children);
  return node;
};
