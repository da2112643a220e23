// The page's frame: who is logged in, the sensor picker, the language, and hash routes to the views.
import { api, ApiError } from "./api.js";
import { setLanguage, currentLanguage, t, translate } from "./i18n.js";
import * as account from "./views/account.js";
import * as live from "./views/live.js";
import * as history from "./views/history.js";
import * as sensors from "./views/sensors.js";
import * as settings from "./views/settings.js";

const VIEWS = { live, history, sensors, settings, install: account.install, login: account.login };
const PUBLIC = new Set(["install", "login"]);
const $ = (id) => document.getElementById(id);

const state = {
  session: null, // {installed, user}
  sensors: [],
  timezone: Intl.DateTimeFormat().resolvedOptions().timeZone,
  onlineSeconds: 120, // replaced by the api's own limit at login
  sensor: localStorage.getItem("cw.sensor") || "all",
};
let unmount = null;

function showError(error) {
  const banner = $("banner");
  if (!error) {
    banner.hidden = true;
    return;
  }
  banner.textContent = error instanceof ApiError && error.status === 0 ? t("common.offline") : `${t("common.error")}: ${error.message}`;
  banner.hidden = false;
}

/** Every view reports API failures here: a lost session sends the user to the login page. */
function handleError(error) {
  if (error instanceof ApiError && error.status === 401) {
    state.session = { installed: true, user: null };
    go("login");
    return;
  }
  showError(error);
}

function go(route) {
  if (location.hash !== `#/${route}`) location.hash = `#/${route}`;
  else render();
}

async function loadHousehold() {
  const [list, household] = await Promise.all([api("/api/v2/sensors"), api("/api/v2/settings")]);
  state.sensors = list;
  state.timezone = household.timezone;
  state.onlineSeconds = household.online_seconds;
  fillSensorPicker();
}

function fillSensorPicker() {
  const pick = $("sensor-pick");
  const options = [["all", t("sensor.all")], ...state.sensors.map((s) => [String(s.id), s.name || s.key])];
  if (!options.some(([value]) => value === state.sensor)) state.sensor = "all";
  pick.replaceChildren(
    ...options.map(([value, label]) => {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = label;
      option.selected = value === state.sensor;
      return option;
    }),
  );
}

function routeOf(hash) {
  const [name, ...args] = hash.replace(/^#\/?/, "").split("/").filter(Boolean);
  return { name: VIEWS[name] ? name : "live", args };
}

async function render() {
  const { name, args } = routeOf(location.hash);
  if (!state.session) return; // still starting
  const loggedIn = Boolean(state.session.user);
  if (!state.session.installed && name !== "install") return go("install");
  if (state.session.installed && !loggedIn && name !== "login") return go("login");
  if (loggedIn && PUBLIC.has(name)) return go("live");

  $("nav").hidden = !loggedIn;
  $("logout").hidden = !loggedIn;
  $("sensor-pick-label").hidden = !loggedIn || !["live", "history"].includes(name);
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.route === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (unmount) unmount();
  unmount = null;
  showError(null);
  const root = $("view");
  root.replaceChildren();
  const context = {
    ...state,
    args,
    onError: handleError,
    clearError: () => showError(null),
    navigate: (route) => go(route),
    onLoggedIn: async (user) => {
      state.session = { installed: true, user };
      try {
        await loadHousehold();
      } catch (error) {
        handleError(error);
      }
      go("live");
    },
  };
  unmount = VIEWS[name].mount(root, context) ?? null;
  translate(root);
}

async function start() {
  setLanguage(currentLanguage());
  $("language").value = currentLanguage();
  translate();
  $("language").addEventListener("change", (event) => {
    setLanguage(event.target.value);
    translate();
    fillSensorPicker();
    render();
  });
  $("sensor-pick").addEventListener("change", (event) => {
    state.sensor = event.target.value;
    localStorage.setItem("cw.sensor", state.sensor);
    render();
  });
  $("logout").addEventListener("click", async () => {
    try {
      await api("/api/v2/logout", { method: "POST" });
    } catch (error) {
      return handleError(error);
    }
    state.session = { installed: true, user: null };
    go("login");
  });
  window.addEventListener("hashchange", render);
  // The sensor list changes when a collector starts: refresh the picker now and then.
  setInterval(async () => {
    if (!state.session?.user) return;
    try {
      const list = await api("/api/v2/sensors");
      if (list.map((s) => s.id).join() !== state.sensors.map((s) => s.id).join()) {
        state.sensors = list;
        fillSensorPicker();
      }
    } catch {
      // the views report their own errors; this is only a refresh
    }
  }, 30000);

  for (;;) {
    try {
      state.session = await api("/api/v2/session");
      if (state.session.user) await loadHousehold();
      break;
    } catch (error) {
      showError(error);
      await new Promise((resolve) => setTimeout(resolve, 3000)); // the api may be starting: try again
    }
  }
  render();
}

start();
