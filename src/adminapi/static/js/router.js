// One URL per page, revision, diff and call (History API); the server serves index.html for each.

export const TABS = ["prompts", "history", "kb", "calls", "status", "playground"];
const listeners = [];
const guards = [];

/** "/history/diff/a/b" → {tab: "history", parts: ["diff", "a", "b"]}. */
export function parse(pathname = location.pathname) {
  const parts = pathname.split("/").filter(Boolean).map(decodeURIComponent);
  const tab = TABS.includes(parts[0]) ? parts[0] : "prompts";
  return { tab, parts: TABS.includes(parts[0]) ? parts.slice(1) : [] };
}

export const path = (tab, ...parts) => `/${[tab, ...parts].map(encodeURIComponent).join("/")}`;
export function onRoute(fn) { listeners.push(fn); }
/** A guard returns a promise of true to allow leaving the current route. */
export function guard(fn) { guards.push(fn); }

async function allowed(to) {
  for (const g of guards) if (!(await g(to))) return false;
  return true;
}

export async function go(target, { replace = false } = {}) {
  if (target === location.pathname) return emit();
  if (!(await allowed(parse(target)))) return;
  if (replace) history.replaceState(null, "", target);
  else history.pushState(null, "", target);
  emit();
}

export function emit() {
  const route = parse();
  for (const fn of listeners) fn(route);
}

export function start() {
  addEventListener("popstate", () => emit());
  // Links inside the app navigate without reloading.
  document.addEventListener("click", (ev) => {
    const a = ev.target.closest("a[data-route]");
    if (!a || ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.button !== 0) return;
    ev.preventDefault();
    go(a.getAttribute("href"));
  });
  if (location.pathname === "/") history.replaceState(null, "", "/prompts");
  emit();
}
