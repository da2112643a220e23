// The page's frame: who is logged in, the sensor picker, the language, and hash routes to the views.
import { api, ApiError, connection } from "./api.js";
import { setLanguage, currentLanguage, t, translate } from "./i18n.js";
import * as account from "./views/account.js";
import * as live from "./views/live.js";
import * as history from "./views/history.js";
import * as sensors from "./views/sensors.js";
import * as settings from "./views/settings.js";

const VIEWS = { live, history, sensors, settings, install: account.install, login: account.login };
const PUBLIC = new Set(["install", "login"]);
const PROBE_MS = 3000; // while the server does not answer, how often to ask whether it is back
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
    banner.textContent = "";
    delete banner.dataset.unreachable;
    return;
  }
  const text = error instanceof ApiError && error.unreachable ? error.message : `${t("common.error")}: ${error.message}`;
  // The banner is an alert: written again with the same words, a screen reader would say it again.
  if (banner.textContent !== text) banner.textContent = text;
  banner.dataset.unreachable = String(error instanceof ApiError && error.unreachable);
  banner.hidden = false;
}

/** Say `text` once to screen readers (a polite status message, not shown). */
function announce(text) {
  let region = $("announce");
  if (!region) {
    region = document.createElement("div");
    region.id = "announce";
    region.className = "visually-hidden";
    region.setAttribute("role", "status");
    document.body.append(region);
  }
  // Emptied first: the same words again (a second outage) would not be announced otherwise.
  region.textContent = "";
  setTimeout(() => {
    region.textContent = text;
  }, 100);
}

// The server stopped answering (any request of any view, or the live stream): the banner says so
// until it answers again, which a request every few seconds finds out without the user reloading.
let probing = null;
connection.addEventListener("down", (event) => {
  if (event.detail) showError(event.detail);
  if (probing) return;
  probing = setInterval(async () => {
    try {
      const session = await api("/api/v2/session", { timeoutMs: PROBE_MS });
      if (state.session?.user && !session.user) handleError(new ApiError(401, "session ended"));
    } catch {
      // still down: the banner already says so
    }
  }, PROBE_MS);
});
connection.addEventListener("up", () => {
  clearInterval(probing);
  probing = null;
  const banner = $("banner");
  if (!banner.hidden && banner.dataset.unreachable === "true") showError(null);
  announce(t("common.back"));
  // The view is mounted again, its figures asked for again, unless it is the live one (its stream
  // reconnects by itself) or shows a form, whose typed values a new mount would lose (a settings
  // page that could not load shows its error instead, and is mounted again).
  if (routeOf(location.hash).name !== "live" && !$("view").querySelector("form")) render();
});

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
  if (!probing) showError(null); // a server still not answering stays said from view to view
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

  // Served by the worker from its cache (sw.js): the server did not answer the page itself, so
  // its first question gets the probe's short deadline rather than a whole request timeout.
  const fromCache = document.documentElement.hasAttribute("data-from-cache");
  for (;;) {
    try {
      state.session = await api("/api/v2/session", fromCache ? { timeoutMs: PROBE_MS } : {});
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

// A reload while the api does not answer shows this page from the worker's cache (sw.js) instead
// of a blank tab. Browsers give service workers to secure contexts only (https, http://localhost):
// on a plain-http LAN address navigator.serviceWorker is undefined and the page does without.
navigator.serviceWorker?.register("/sw.js", { scope: "/" }).catch((error) => console.warn("service worker:", error));
