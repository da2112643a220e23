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
