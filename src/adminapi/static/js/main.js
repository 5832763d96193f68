// The admin panel's entry point: login (a modal dialog), tabs with URLs, live updates wired to the pages.

import * as api from "./api.js";
import { $, $$ } from "./dom.js";
import { renderBadges } from "./badges.js";
import { trapFocus } from "./dialog.js";
import * as calls from "./calls.js";
import * as editor from "./editor.js";
import * as historyPage from "./history.js";
import * as kb from "./kb.js";
import * as labels from "./labels.js";
import * as live from "./live.js";
import * as playground from "./playground.js";
import * as router from "./router.js";
import * as statusPage from "./status.js";

const PAGES = { prompts: null, history: historyPage, kb, calls, status: statusPage, playground, outcomes: null };
let labelsUi = null;

/** The label the editor and the history work on ("production": the prompts file itself). */
const currentLabel = () => editor.state.label || "production";

/** Switch the editor and the history to `label`; false when the operator keeps the unsaved edits. */
async function setLabel(label) {
  const next = label === "production" ? undefined : label;
  if (next === editor.state.label) {
    if (!editor.isDirty()) await editor.load(); // the same label, changed (a promotion): show it
    return true;
  }
  if (!(await editor.confirmLoss(`Перейти к метке ${label}?`))) return false;
  editor.state.label = next;
  historyPage.state.label = next;
  live.setLabel(label);
  await editor.load();
  return true;
}
const session = { operator: "", started: false };

// ---- login ---------------------------------------------------------------------------------------

function showLogin(message) {
  const dialog = $("#login");
  $("#login-error").hidden = !message;
  $("#login-error").textContent = message || "";
  if (!dialog.open) dialog.showModal();
  $("#login-token").focus();
}

async function login(ev) {
  ev.preventDefault();
  api.setToken($("#login-token").value.trim());
  let me;
  try {
    me = await api.whoami();
  } catch (e) {
    showLogin(e.isAuth ? "Неверный токен." : e.message);
    return;
  }
  api.keepToken();
  $("#login-token").value = "";
  $("#login").close();
  await start(me);
}

async function logout() {
  if (!(await editor.confirmLoss("Выйти из панели?"))) return;
  api.forgetToken();
  live.stop();
  session.started = false;
  showLogin("");
}

// ---- tabs ----------------------------------------------------------------------------------------

function selectTab(name) {
  for (const b of $$("#tabs [role=tab]")) {
    const on = b.dataset.tab === name;
    b.setAttribute("aria-selected", String(on));
    b.tabIndex = on ? 0 : -1;
  }
  for (const s of $$("section.tab")) s.hidden = s.id !== `tab-${name}`;
  document.title = `${$(`#tabs [data-tab="${name}"]`).textContent} — Метротех, панель администратора`;
}

async function onRoute(route) {
  if (!session.started) return;
  selectTab(route.tab);
  const page = PAGES[route.tab];
  try {
    if (page) await page.show(route.parts);
  } catch (e) {
    if (!(e instanceof api.ApiError) || e.isAuth) { if (!(e instanceof api.ApiError)) throw e; return; }
    const out = $("#page-error");
    out.hidden = false;
    out.textContent = e.message;
  }
}

function installTabs() {
  const tabs = $$("#tabs [role=tab]");
  for (const b of tabs) {
    b.addEventListener("click", () => router.go(router.path(b.dataset.tab)));
    b.addEventListener("keydown", (e) => {
      const i = tabs.indexOf(b);
      const next = e.key === "ArrowRight" ? tabs[(i + 1) % tabs.length] : e.key === "ArrowLeft" ? tabs[(i - 1 + tabs.length) % tabs.length]
        : e.key === "Home" ? tabs[0] : e.key === "End" ? tabs[tabs.length - 1] : null;
      if (!next) return;
      e.preventDefault();
      next.focus();
      router.go(router.path(next.dataset.tab));
    });
  }
  router.onRoute((r) => { $("#page-error").hidden = true; onRoute(r); });
}

// ---- live updates --------------------------------------------------------------------------------

function drawBadges() {
  if (live.live.consumers) renderBadges(live.live.consumers, { online: live.live.state === "online", latencies: editor.state.latencies });
}

function installLive() {
  live.on("state", (s) => {
    const conn = $("#conn");
    conn.dataset.state = s;
    conn.textContent = s === "online" ? "на связи" : "нет связи";
    drawBadges();
  });
  live.on("consumers", () => { drawBadges(); statusPage.onConsumers(); });
  live.on("prompts", (ev) => { editor.onPrompts(ev); historyPage.onPrompts(); });
}

// ---- start ---------------------------------------------------------------------------------------

async function start(me) {
  session.operator = me.operator;
  session.started = true;
  $("#operator").textContent = me.operator;
  await editor.start(me.operator);
  if (!labelsUi) {
    labelsUi = labels.install({ label: currentLabel, setLabel, switcher: $("#labels-bar"), outcomes: $("#tab-outcomes") });
    PAGES.outcomes = { install() {}, show: () => labelsUi.loadOutcomes() };
  } else await labelsUi.refresh();
  live.start();
  if (matchMedia("(max-width: 760px)").matches) $("#processes").open = false;
  router.emit();
}

// One place for a failed request no page handled itself: said in Russian at the top, never an alert().
addEventListener("unhandledrejection", (ev) => {
  const e = ev.reason;
  if (!(e instanceof api.ApiError)) return;
  ev.preventDefault();
  if (e.isAuth) return; // the login dialog is open
  const out = $("#page-error");
  out.hidden = false;
  out.textContent = e.message;
});

document.addEventListener("DOMContentLoaded", async () => {
  trapFocus();
  $("#login-form").addEventListener("submit", login);
  $("#login").addEventListener("cancel", (e) => e.preventDefault()); // Escape does not dismiss the login
  $("#logout").addEventListener("click", logout);
  api.onAuthError((e) => { live.stop(); session.started = false; showLogin(e.status === 403 ? "Неверный токен." : ""); });
  installTabs();
  installLive();
  editor.install();
  for (const page of Object.values(PAGES)) if (page) page.install();
  router.start();
  if (!api.hasToken()) { showLogin(""); return; }
  try {
    await start(await api.whoami());
  } catch (e) {
    if (!e.isAuth) showLogin(e.message);
  }
});
