// One way for every form to submit: button disabled while waiting, then the outcome under the form.
import { t } from "./i18n.js";

/**
 * On submit, run `save(fields)`. What it returns (text) is shown as success; what it throws (the
 * API's own message, or a text of ours) as an error, also passed to `onError` if given.
 */
export function wireForm(form, save, { onError } = {}) {
  const status = form.querySelector(".status");
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
