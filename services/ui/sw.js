// The page's service worker: a reload while the api does not answer shows the page from a cache
// (which then says the server does not answer, and recovers by itself) instead of a blank tab.
//
// Served at /sw.js by the api (static_ui.py), never cached, with the version of the page's files
// and their URLs written in below: a new version of the page is a new worker, which the browser
// installs on its own, and whose activation deletes the old version's cache.
// Only a secure context has service workers (https, http://localhost, http://127.0.0.1): on a
// plain-http LAN address the page registers none, and none of this happens.

const VERSION = "@VERSION@";
const SHELL = ["@SHELL@"]; // the versioned URLs of every file of the page but index.html
const CACHE = `citizenwatt-${VERSION}`;
const CACHE_PREFIX = "citizenwatt-";
const INDEX = "/";
const VERSIONED = "/ui/";
// How long a reload waits for the server's index.html before taking the cached one. The server
// sends it in milliseconds when it runs; a frozen one accepts the connection and never answers.
const NAVIGATION_TIMEOUT_MS = 3000;
// A proxy in front of the api (an https setup) answers for it when it is not there: the cached
// page is better than the proxy's error page, and says the same thing in the household's language.
const GATEWAY_ERRORS = new Set([502, 503, 504]);

/** One file fetched as it is meant to be cached: a 200 of its own URL (not a redirect to another version). */
async function fetchExact(url) {
  const response = await fetch(url, { redirect: "error" });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response;
}

self.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      // index.html and the files it loads, of this version: a page changed since this worker was
      // written would point elsewhere, and the install fails (the browser tries again later).
      const index = await fetchExact(INDEX);
      if (!(await index.clone().text()).includes(`${VERSIONED}${VERSION}/`)) {
        throw new Error(`index.html is not of version ${VERSION}`);
      }
      const files = await Promise.all(SHELL.map(async (url) => [url, await fetchExact(url)]));
      const cache = await caches.open(CACHE);
      await Promise.all([cache.put(INDEX, index), ...files.map(([url, response]) => cache.put(url, response))]);
      // The new version takes over at once: the old one's cache is deleted below, and a page of the
      // old version still open asks the server for its files, which redirects it to the new ones.
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      const names = await caches.keys();
      await Promise.all(names.filter((name) => name.startsWith(CACHE_PREFIX) && name !== CACHE).map((name) => caches.delete(name)));
      await self.clients.claim();
    })(),
  );
});

/** The server's index.html if it answers within NAVIGATION_TIMEOUT_MS, else the cached one. */
async function navigate(request) {
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(), NAVIGATION_TIMEOUT_MS);
  let answer;
  try {
    answer = await fetch(request, { signal: deadline.signal });
    if (!GATEWAY_ERRORS.has(answer.status)) return answer;
  } catch (error) {
    answer = error;
  } finally {
    clearTimeout(timer);
  }
  const cached = await caches.match(INDEX, { cacheName: CACHE });
  if (cached) {
    // Marked, so that the page knows the server has just failed to answer and asks it with a
    // short deadline: its banner then comes in seconds, not after a full request timeout.
    const html = (await cached.text()).replace("<html", '<html data-from-cache=""');
    return new Response(html, { status: 200, headers: cached.headers });
  }
  // Nothing cached: the proxy's page or the browser's own error page, as without a worker.
  if (answer instanceof Response) return answer;
  throw answer;
}

/** A file of the page: its URL names its content, so a cached copy is always right. */
async function versionedFile(request) {
  const cached = await caches.match(request, { ignoreVary: true });
  return cached ?? fetch(request);
}

self.addEventListener("fetch", (event) => {
  const { request } = event;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin || request.method !== "GET") return;
  if (request.mode === "navigate" && (url.pathname === "/" || url.pathname === "/index.html")) {
    event.respondWith(navigate(request));
  } else if (url.pathname.startsWith(VERSIONED)) {
    event.respondWith(versionedFile(request));
  }
  // Anything else (the API, /login, /healthz, the live stream, /docs) is left to the browser:
  // no respondWith, so it goes to the network exactly as on a page without a worker.
});
