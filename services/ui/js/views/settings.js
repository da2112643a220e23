// Settings: provider and tariff, night hours, one's password, and the nRF24 sensor's key and address.
import { api } from "../api.js";
import { number, t } from "../i18n.js";
import { wireForm } from "../forms.js";

export function mount(root, ctx) {
  root.innerHTML = `<h1 data-i18n="settings.title"></h1><div id="settings-body"><p class="loading" data-i18n="common.loading"></p></div>`;
  const body = root.querySelector("#settings-body");
  let closed = false;

  /** Submit through `save`; a save that returns nothing says "Saved." */
  function wire(form, save) {
    wireForm(form, async (fields) => (await save(fields)) ?? t("common.saved"), {
      onError: (error) => error.status === 401 && ctx.onError(error),
    });
  }

  function render(settings) {
    body.innerHTML = `
      <section class="card"><h2 data-i18n="settings.provider"></h2>
        <form id="provider-form">
          <label><span data-i18n="settings.providerPick"></span><select name="provider_id" id="provider"></select></label>
          <p class="muted" id="prices"></p>
          <button type="submit" data-i18n="common.save"></button>
          <p class="status" role="status"></p>
        </form></section>
      <section class="card"><h2 data-i18n="settings.night"></h2>
        <form id="night-form">
          <p class="muted" data-i18n="settings.nightHelp"></p>
          <label class="inline"><input type="checkbox" name="none" id="night-none"> <span data-i18n="settings.nightNone"></span></label>
          <div class="row">
            <label><span data-i18n="settings.nightStart"></span><input type="time" name="start" id="night-start" required></label>
            <label><span data-i18n="settings.nightEnd"></span><input type="time" name="end" id="night-end" required></label>
          </div>
          <button type="submit" data-i18n="common.save"></button>
          <p class="status" role="status"></p>
        </form></section>
      <section class="card"><h2 data-i18n="settings.password"></h2>
        <form id="password-form">
          <input type="text" name="username" autocomplete="username" hidden>
          <label><span data-i18n="settings.current"></span><input type="password" name="current" autocomplete="current-password" required></label>
          <label><span data-i18n="settings.new"></span><input type="password" name="new" autocomplete="new-password" minlength="8" required></label>
          <button type="submit" data-i18n="common.save"></button>
          <p class="status" role="status"></p>
        </form></section>
      <section class="card"><h2 data-i18n="settings.radio"></h2>
        <form id="radio-form">
          <p class="muted" data-i18n="settings.radioHelp"></p>
          <p class="muted" id="radios-known"></p>
          <label><span data-i18n="settings.radioSensor"></span><input name="sensor" value="citizenwatt" pattern="[a-z0-9_\\-]{1,64}" required></label>
          <label><span data-i18n="settings.radioKey"></span><input name="aes_key" autocomplete="off" spellcheck="false" required></label>
          <label><span data-i18n="settings.radioAddress"></span><input name="address" value="0xE056D446D0" spellcheck="false" required></label>
          <button type="submit" data-i18n="common.save"></button>
          <p class="status" role="status"></p>
        </form></section>`;
    const $ = (id) => body.querySelector(`#${id}`);

    const select = $("provider");
    for (const p of settings.providers) {
      const option = document.createElement("option");
      option.value = p.id;
      option.textContent = p.name;
      option.selected = p.id === settings.provider_id;
      select.append(option);
    }
    const showPrices = () => {
      const p = settings.providers.find((x) => String(x.id) === select.value);
      $("prices").textContent = p
        ? t("settings.prices", { day: number(p.day_euros_per_kwh, 4), night: number(p.night_euros_per_kwh, 4), sub: number(p.day_subscription_euros_per_month, 2) })
        : "";
    };
    select.addEventListener("change", showPrices);
    showPrices();
    wire($("provider-form"), async (f) => {
      await api("/api/v2/settings/provider", { method: "PUT", body: { provider_id: Number(f.get("provider_id")) } });
    });

    const none = $("night-none");
    const syncNight = () => {
      $("night-start").disabled = none.checked;
      $("night-end").disabled = none.checked;
    };
    none.checked = settings.night_window === null;
    $("night-start").value = settings.night_window?.start ?? "22:00";
    $("night-end").value = settings.night_window?.end ?? "06:00";
    none.addEventListener("change", syncNight);
    syncNight();
    wire($("night-form"), async (f) => {
      const window = none.checked ? null : { start: f.get("start"), end: f.get("end") };
      await api("/api/v2/settings/night-window", { method: "PUT", body: window });
    });

    $("password-form").elements.username.value = ctx.session?.user?.login ?? "";
    wire($("password-form"), async (f) => {
      await api("/api/v2/account/password", { method: "POST", body: { current_password: f.get("current"), new_password: f.get("new") } });
      $("password-form").reset();
      return t("settings.passwordDone");
    });

    const known = () =>
      (settings.radios.length ? t("settings.radioKnown", { list: settings.radios.map((r) => `${r.sensor} (${r.address})`).join(", ") }) : "");
    $("radios-known").textContent = known();
    wire($("radio-form"), async (f) => {
      const saved = await api("/api/v2/settings/radio", {
        method: "PUT",
        body: { sensor: f.get("sensor"), aes_key: f.get("aes_key"), address: f.get("address") },
      });
      settings.radios = [...settings.radios.filter((r) => r.sensor !== saved.sensor), { sensor: saved.sensor, address: saved.address }];
      $("radios-known").textContent = known();
      $("radio-form").querySelector("[name=aes_key]").value = "";
      return t(saved.delivered ? "settings.radioSaved" : "settings.radioQueued");
    });
  }

  api("/api/v2/settings").then(
    (settings) => {
      if (closed) return;
      render(settings);
      for (const el of body.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
    },
    (error) => {
      body.innerHTML = `<p class="error" id="settings-error"></p>`;
      body.querySelector("#settings-error").textContent = error.message;
      ctx.onError(error);
    },
  );
  return () => {
    closed = true;
  };
}
