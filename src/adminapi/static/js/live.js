// The panel pushes changes (Server-Sent Events): a new version on disk, a broken or repaired file, a
// consumer's status.  EventSource cannot send the token, so each connection first takes a single-use
// ticket (POST with the token).  A lost connection is reported ("нет связи") and retried by itself.

import * as api from "./api.js";

const handlers = { prompts: [], consumers: [], state: [] };
let source = null;
let timer = null;
let delay = 250;
let stopped = true;
let label = "production";  // the stream follows the label the editor works on
export const live = { state: "offline", prompts: null, consumers: null };

export function on(name, fn) { handlers[name].push(fn); }

function setState(state) {
  if (live.state === state) return;
  live.state = state;
  for (const fn of handlers.state) fn(state);
}

function retry() {
  if (stopped || timer) return;
  timer = setTimeout(() => { timer = null; connect(); }, delay);
  delay = Math.min(delay * 2, 3000);
}

async function connect() {
  if (stopped) return;
  let ticket;
  try {
    ticket = await api.eventsTicket();
  } catch (e) {
    setState("offline");
    if (!e.isAuth) retry();  // a refused token opens the login dialog; start() is called again after it
    return;
  }
  if (stopped) return;
  const query = `ticket=${encodeURIComponent(ticket.ticket)}&label=${encodeURIComponent(label)}`;
  const es = new EventSource(`/api/events?${query}`);
  source = es;
  es.addEventListener("open", () => { delay = 250; setState("online"); });
  for (const name of ["prompts", "consumers"]) {
    es.addEventListener(name, (m) => {
      const data = JSON.parse(m.data);
      if (source !== es || (data.label && data.label !== label)) return;  // a stream of the label left behind
      live[name] = data;
      for (const fn of handlers[name]) fn(data);
    });
  }
  es.addEventListener("error", () => {
    es.close();
    if (source === es) source = null;
    setState("offline");
    retry();
  });
}

export function start() {
  if (!stopped) return;
  stopped = false;
  delay = 250;
  connect();
}

/** Follow `next` (a label; "production" is the prompts file): the stream is reopened for it. */
export function setLabel(next) {
  if (next === label) return;
  label = next;
  live.prompts = live.consumers = null;
  if (stopped) return;
  clearTimeout(timer);
  timer = null;
  if (source) source.close();
  source = null;
  delay = 250;
  connect();
}

export function stop() {
  stopped = true;
  clearTimeout(timer);
  timer = null;
  if (source) source.close();
  source = null;
  setState("offline");
}
