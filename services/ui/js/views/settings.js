// Settings: the household's tariffs (which one from which date, their dated versions, one's own
// tariff, Tempo day colours), the off-peak hours, one's password, and the nRF24 sensor's key and
// address (only in a household that has such a sensor, see hasRadio).
import { api } from "../api.js";
import { t } from "../i18n.js";
import { el, wireForm } from "../forms.js";
import { todayIn } from "../charts.js";
import { versionEditor } from "../tariff-editor.js";
import {
  TEMPO_COLOURS, colourName, dateText, householdTariffOn, kindName, money, periodName, price, versionOn,
} from "../tariffs.js";

const nextDay = (isoDate, steps = 1) => {
  const d = new Date(`${isoDate}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + steps);
  return d.toISOString().slice(0, 10);
};

/**
 * Whether the household has a CitizenWatt nRF24 radio sensor: one of kind nrf24 was heard from
 * (its collector decodes it with the key it was started with), or a radio configuration was saved
 * already (its sensor may not have been heard from since: a wrong key is exactly when one comes
 * here to fix it). Other households never see the AES key and pipe address form, unless they ask
 * for it by its address, #/settings/radio: a sensor flashed with its own key is never heard from
 * until its collector has that key (README, "Add your sensor").
 */
export function hasRadio(settings, sensors) {
  return settings.radios.length > 0 || sensors.some((sensor) => sensor.kind === "nrf24");
}

export function mount(root, ctx) {
  root.innerHTML = `<h1 data-i18n="settings.title"></h1><div id="settings-body"><p class="loading" data-i18n="common.loading"></p></div>`;
  const body = root.querySelector("#settings-body");
  const today = todayIn(ctx.timezone);
  let closed = false;

  /** Submit through `save`; a save that returns nothing says "Saved." */
  function wire(form, save) {
    wireForm(form, async (fields) => (await save(fields)) ?? t("common.saved"), {
      onError: (error) => error.status === 401 && ctx.onError(error),
    });
  }

  function render(settings, tariffData, sensors) {
    body.innerHTML = `
      <section class="card" id="tariff-card"><h2 data-i18n="tariff.title"></h2>
        <p class="muted" data-i18n="tariff.help"></p>
        <table class="household-tariffs" id="household-tariffs">
          <thead><tr><th data-i18n="tariff.from"></th><th data-i18n="tariff.tariff"></th></tr></thead><tbody></tbody>
        </table>
        <form id="tariff-form">
          <div class="row">
            <label><span data-i18n="tariff.tariff"></span><select name="tariff_id" id="tariff-pick"></select></label>
            <label><span data-i18n="tariff.from"></span><input type="date" name="valid_from" id="tariff-from" required></label>
          </div>
          <button type="submit" data-i18n="tariff.use"></button>
          <p class="status" role="status"></p>
        </form>
        <div id="tariff-versions"></div>
      </section>
      <section class="card" id="version-card"><h2 id="version-title"></h2>
        <form id="version-form">
          <p class="muted" data-i18n="tariff.versionHelp"></p>
          <div class="version-fields"></div>
          <button type="submit" data-i18n="tariff.addVersion"></button>
          <p class="status" role="status"></p>
        </form></section>
      <section class="card" id="own-tariff-card"><h2 data-i18n="tariff.own"></h2>
        <form id="own-tariff-form">
          <label><span data-i18n="tariff.name"></span><input name="name" id="own-name" required maxlength="100" autocomplete="off"></label>
          <div class="version-fields"></div>
          <label class="inline"><input type="checkbox" name="apply" checked> <span data-i18n="tariff.applyOwn"></span></label>
          <button type="submit" data-i18n="tariff.create"></button>
          <p class="status" role="status"></p>
        </form></section>
      <section class="card" id="tempo-card"><h2 data-i18n="tempo.title"></h2>
        <p class="muted" data-i18n="tempo.help"></p>
        <p class="tempo-days" id="tempo-days"></p>
        <form id="tempo-form">
          <div class="row">
            <label><span data-i18n="tempo.day"></span><input type="date" name="day" id="tempo-day" required></label>
            <label><span data-i18n="tempo.colour"></span><select name="colour" id="tempo-colour">
              ${TEMPO_COLOURS.map((c) => `<option value="${c}" data-i18n="tempo.${c}"></option>`).join("")}
            </select></label>
          </div>
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
      <section class="card" id="radio-card"><h2 data-i18n="settings.radio"></h2>
        <form id="radio-form">
          <p class="muted" data-i18n="settings.radioHelp"></p>
          <p class="muted" id="radios-known"></p>
          <label><span data-i18n="settings.radioSensor"></span><input name="sensor" value="citizenwatt" pattern="[a-z0-9_\\-]{1,64}" required></label>
          <label><span data-i18n="settings.radioKey"></span><input name="aes_key" autocomplete="off" spellcheck="false" required></label>
          <label><span data-i18n="settings.radioAddress"></span><input name="address" value="0xE056D446D0" spellcheck="false" required></label>
          <button type="submit" data-i18n="common.save"></button>
          <p class="status" role="status"></p>
        </form></section>`;
    for (const node of body.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    const $ = (id) => body.querySelector(`#${id}`);

    // ---- Tariffs: the dated list, the picked tariff's versions, a new version, one's own tariff.
    let refreshTariffs = () => {};
    if (tariffData instanceof Error) {
      for (const id of ["version-card", "own-tariff-card", "tempo-card"]) $(id).hidden = true;
      $("tariff-card").replaceChildren(el("h2", { text: t("tariff.title") }), el("p", { class: "error", id: "tariff-error", text: tariffData.message }));
      if (tariffData.status === 401) ctx.onError(tariffData);
    } else {
      refreshTariffs = tariffs(tariffData);
    }
    night(settings, refreshTariffs, tariffData instanceof Error ? null : tariffData);
    password();
    const asked = ctx.args[0] === "radio";
    if (asked || hasRadio(settings, sensors)) radio(settings, sensors);
    else $("radio-card").remove();
    if (asked) $("radio-card").scrollIntoView();
  }

  function tariffs(tariffData) {
    const $ = (id) => body.querySelector(`#${id}`);
    let data = tariffData;
    const tariffById = (id) => data.tariffs.find((x) => String(x.id) === String(id));
    const pick = $("tariff-pick");
    $("tariff-from").value = today;
    let readVersion = null;

    function showHousehold() {
      const current = householdTariffOn(data.household, today);
      const rows = [...data.household].sort((a, b) => b.valid_from.localeCompare(a.valid_from));
      $("household-tariffs").tBodies[0].replaceChildren(
        ...rows.map((h) => {
          const tariff = tariffById(h.tariff_id);
          const inForce = current && h.valid_from === current.valid_from;
          const name = el("td", { text: tariff ? tariff.name : `#${h.tariff_id}` });
          if (inForce) name.append(" ", el("span", { class: "badge online", text: t("tariff.current") }));
          else if (h.valid_from > today) name.append(" ", el("span", { class: "badge", text: t("tariff.planned") }));
          return el("tr", { "data-valid-from": h.valid_from, "data-tariff": h.tariff_id }, [
            el("td", { text: dateText(h.valid_from) }), name,
          ]);
        }),
      );
      if (!rows.length) $("household-tariffs").tBodies[0].append(el("tr", {}, [el("td", { colspan: 2, class: "muted", text: t("tariff.none") })]));
    }

    function fillPick(selected) {
      pick.replaceChildren(
        ...data.tariffs.map((x) => el("option", { value: x.id, text: `${x.name} (${kindName(x.kind)})`, selected: String(x.id) === String(selected) })),
      );
    }

    /** A version in words and a small table: from when, subscription, prices, hours. */
    function versionBlock(tariff, v, inForce) {
      const tempo = tariff.kind === "tempo";
      const block = el("div", { class: "version", "data-valid-from": v.valid_from });
      const head = el("h3", { text: t("tariff.versionFrom", { date: dateText(v.valid_from) }) });
      if (inForce) head.append(" ", el("span", { class: "badge online", text: t("tariff.inForce") }));
      block.append(head);
      block.append(el("p", { class: "subscription", text: t("tariff.subscriptionIs", { euros: money(v.subscription_euros_per_month) }) }));
      const names = Object.keys(v.periods).sort((a, b) => (a === v.default_period ? -1 : b === v.default_period ? 1 : 0));
      const table = el("table", { class: "prices" });
      const headCells = [el("th", { text: t("tariff.period") })];
      if (tempo) headCells.push(...TEMPO_COLOURS.map((c) => el("th", { text: colourName(c) })));
      else headCells.push(el("th", { text: "€/kWh" }));
      table.append(el("thead", {}, [el("tr", {}, headCells)]));
      table.append(
        el("tbody", {}, names.map((name) => {
          const cells = [el("td", { text: periodName(name) })];
          if (tempo) cells.push(...TEMPO_COLOURS.map((c) => el("td", { text: price(v.periods[name]?.[c]) })));
          else cells.push(el("td", { text: price(v.periods[name]) }));
          return el("tr", { "data-period": name }, cells);
        })),
      );
      block.append(table);
      const windows = v.windows ?? [];
      const hours = windows.length
        ? t("tariff.windowsAre", {
            list: windows.map((w) => `${periodName(w.period)} ${w.start}–${w.end}`).join(", "),
            other: periodName(v.default_period),
          })
        : t("tariff.allDay", { period: periodName(v.default_period) });
      block.append(el("p", { class: "hours", text: hours }));
      if (v.export_euros_per_kwh) block.append(el("p", { class: "muted", text: t("tariff.exportIs", { price: price(v.export_euros_per_kwh) }) }));
      if (!tariff.builtin && tariff.versions.length > 1) {
        const remove = el("button", { type: "button", class: "secondary small", text: t("tariff.deleteVersion") });
        const status = el("p", { class: "status", role: "status" });
        remove.addEventListener("click", async () => {
          remove.disabled = true;
          try {
            const saved = await api(`/api/v2/tariffs/${tariff.id}/versions/${v.valid_from}`, { method: "DELETE" });
            replaceTariff(saved);
            showPicked();
          } catch (error) {
            status.textContent = error.message;
            status.className = "status error";
            remove.disabled = false;
            if (error.status === 401) ctx.onError(error);
          }
        });
        block.append(remove, status);
      }
      return block;
    }

    function replaceTariff(saved) {
      data = { ...data, tariffs: data.tariffs.some((x) => x.id === saved.id) ? data.tariffs.map((x) => (x.id === saved.id ? saved : x)) : [...data.tariffs, saved] };
    }

    /** The picked tariff's versions, newest first, and the version form aimed at it. */
    function showPicked() {
      const tariff = tariffById(pick.value);
      const box = $("tariff-versions");
      if (!tariff) {
        box.replaceChildren();
        return;
      }
      const inForce = versionOn(tariff, today);
      const versions = [...tariff.versions].sort((a, b) => b.valid_from.localeCompare(a.valid_from));
      box.replaceChildren(
        el("h3", { class: "versions-title", text: t("tariff.versionsOf", { name: tariff.name }) }),
        ...versions.map((v) => versionBlock(tariff, v, inForce && v.valid_from === inForce.valid_from)),
      );
      $("version-title").textContent = t("tariff.newVersionOf", { name: tariff.name });
      // The new version starts as a copy of the newest one, from today.
      readVersion = versionEditor($("version-form").querySelector(".version-fields"), {
        version: versions[0] ?? null, tempo: tariff.kind === "tempo", validFrom: today,
      });
    }

    fillPick(data.current_tariff_id ?? data.tariffs[0]?.id);
    pick.addEventListener("change", showPicked);
    showHousehold();
    showPicked();

    wire($("tariff-form"), async (f) => {
      const household = await api("/api/v2/settings/tariff", {
        method: "PUT", body: { tariff_id: Number(f.get("tariff_id")), valid_from: f.get("valid_from") },
      });
      data = { ...data, household: Array.isArray(household) ? household : household.household ?? data.household };
      showHousehold();
      return t("tariff.used", { name: tariffById(f.get("tariff_id"))?.name ?? "", date: dateText(f.get("valid_from")) });
    });

    wire($("version-form"), async () => {
      const tariff = tariffById(pick.value);
      const version = readVersion();
      const saved = await api(`/api/v2/tariffs/${tariff.id}/versions/${version.valid_from}`, { method: "PUT", body: version });
      replaceTariff(saved);
      showPicked();
      return t("tariff.versionSaved", { date: dateText(version.valid_from) });
    });

    const readOwn = versionEditor($("own-tariff-form").querySelector(".version-fields"), {
      version: null, tempo: false, validFrom: today,
    });
    wire($("own-tariff-form"), async (f) => {
      const version = readOwn();
      const created = await api("/api/v2/tariffs", { method: "POST", body: { name: String(f.get("name")).trim(), versions: [version] } });
      replaceTariff(created);
      if (f.get("apply")) {
        const household = await api("/api/v2/settings/tariff", {
          method: "PUT", body: { tariff_id: created.id, valid_from: version.valid_from },
        });
        data = { ...data, household: Array.isArray(household) ? household : household.household ?? data.household };
      }
      fillPick(created.id);
      showHousehold();
      showPicked();
      return t("tariff.created", { name: created.name });
    });

    // ---- Tempo: the colour of today and tomorrow, and a day's colour set by hand.
    $("tempo-day").value = nextDay(today);
    async function showTempo() {
      const box = $("tempo-days");
      try {
        const days = await api("/api/v2/tempo", { params: { start: today, end: nextDay(today, 2) } });
        if (closed) return;
        const colourOf = (day) => days.find((d) => d.day === day)?.colour ?? null;
        const badge = (label, day) => {
          const colour = colourOf(day);
          return el("span", { class: "tempo-day", "data-day": day, "data-colour": colour ?? "" }, [
            `${label} `,
            el("b", { class: `tempo-badge ${colour ?? "unknown"}`, text: colour ? colourName(colour) : t("tempo.unknown") }),
          ]);
        };
        box.replaceChildren(badge(t("tempo.today"), today), " ", badge(t("tempo.tomorrow"), nextDay(today)));
      } catch (error) {
        if (closed) return;
        box.textContent = error.message;
        box.className = "tempo-days error";
        if (error.status === 401) ctx.onError(error);
      }
    }
    showTempo();
    wire($("tempo-form"), async (f) => {
      const day = f.get("day");
      const saved = await api(`/api/v2/tempo/${day}`, { method: "PUT", body: { colour: f.get("colour") } });
      await showTempo();
      return t("tempo.saved", { date: dateText(saved?.day ?? day), colour: colourName(saved?.colour ?? f.get("colour")).toLowerCase() });
    });

    /** New data from the api (after the off-peak hours changed): the list and versions again. */
    return (fresh) => {
      data = fresh;
      const picked = pick.value;
      fillPick(picked);
      showHousehold();
      showPicked();
    };

  }

  // ---- Off-peak hours from today: a new version of the household's tariff.
  function night(settings, refreshTariffs, tariffData) {
    const $ = (id) => body.querySelector(`#${id}`);
    const none = $("night-none");
    const syncNight = () => {
      $("night-start").disabled = none.checked;
      $("night-end").disabled = none.checked;
    };
    // The hours in force today: the first window of the household's tariff version of today that is
    // not its default period (the api's own night window when the tariffs are not known).
    let hours = settings.night_window;
    if (tariffData) {
      const choice = householdTariffOn(tariffData.household, today);
      const tariff = tariffData.tariffs.find((x) => x.id === (choice?.tariff_id ?? tariffData.current_tariff_id));
      const version = tariff ? versionOn(tariff, today) ?? tariff.versions[0] : null;
      if (version) hours = version.windows.find((w) => w.period !== version.default_period) ?? null;
    }
    none.checked = hours === null || hours === undefined;
    $("night-start").value = hours?.start ?? "22:00";
    $("night-end").value = hours?.end ?? "06:00";
    none.addEventListener("change", syncNight);
    syncNight();
    wire($("night-form"), async (f) => {
      const window = none.checked ? null : { start: f.get("start"), end: f.get("end") };
      await api("/api/v2/settings/night-window", { method: "PUT", body: window });
      // The server made it a version of the tariff in force: show it.
      try {
        const fresh = await api("/api/v2/tariffs");
        if (!closed) refreshTariffs(fresh);
      } catch {
        // saved all the same; the list is refreshed on the next visit
      }
    });
  }

  function password() {
    const $ = (id) => body.querySelector(`#${id}`);
    $("password-form").elements.username.value = ctx.session?.user?.login ?? "";
    wire($("password-form"), async (f) => {
      await api("/api/v2/account/password", { method: "POST", body: { current_password: f.get("current"), new_password: f.get("new") } });
      $("password-form").reset();
      return t("settings.passwordDone");
    });
  }

  function radio(settings, sensors) {
    const $ = (id) => body.querySelector(`#${id}`);
    // The sensor id a new configuration is for: the nRF24 sensor heard from, if there is one.
    const heard = sensors.find((sensor) => sensor.kind === "nrf24");
    if (heard && !settings.radios.length) $("radio-form").elements.sensor.value = heard.key;

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

  // Without the tariffs (an api that has none, or one failing) the other settings stay usable. The
  // sensors are asked again (the page's list may be from before a sensor was first heard from).
  Promise.all([
    api("/api/v2/settings"),
    api("/api/v2/tariffs").catch((error) => error),
    api("/api/v2/sensors").catch(() => ctx.sensors),
  ]).then(
    ([settings, tariffs, sensors]) => {
      if (closed) return;
      render(settings, tariffs, sensors);
    },
    (error) => {
      if (closed) return;
      body.innerHTML = `<p class="error" id="settings-error"></p>`;
      body.querySelector("#settings-error").textContent = error.message;
      ctx.onError(error);
    },
  );
  return () => {
    closed = true;
  };
}
