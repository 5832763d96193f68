// Status: the version on disk, every process (host, software version, uptime, last seen, its prompts
// version), expected processes that are not running; refreshed by itself.  Links to /metrics and the docs.

import * as api from "./api.js";
import { $, $$, announce, el, labelCells, short } from "./dom.js";
import { clock, codeText, duration, fileErrorText, when } from "./i18n.js";

export const state = { timer: null, last: null };
const REFRESH_MS = 5000;

const COLUMNS = ["Сервис", "Хост", "PID", "Версия ПО", "Работает", "Последний статус", "Промпты", "Актуально", "Режим", "Ошибка"];

function consumerRow(c, now) {
  return el("tr", { "data-service": c.service, "data-pid": String(c.pid), "data-host": c.host || c.hostname },
    el("th", { scope: "row", text: c.service }),
    el("td", { text: c.host || c.hostname }),
    el("td", { text: String(c.pid) }),
    el("td", { text: c.version || "—" }),
    el("td", { text: c.started_at ? duration(now - c.started_at) : "—" }),
    el("td", { text: c.updated_at ? `${when(c.updated_at)} (${duration(now - c.updated_at)} назад)` : "—" }),
    el("td", {}, el("code", { text: short(c.sha256) })),
    el("td", { text: c.in_sync ? "да" : "нет" }),
    el("td", { text: c.mode }),
    el("td", { text: fileErrorText(c.last_error) }));
}

function consumerTable(id, caption, consumers, now) {
  return el("div", { class: "table-wrap" }, el("table", { id, class: "status-consumers" },
    el("caption", { text: caption }),
    el("thead", {}, el("tr", {}, ...COLUMNS.map((t) => el("th", { scope: "col", text: t })))),
    el("tbody", {}, ...consumers.map((c) => consumerRow(c, now)))));
}

function agentText(h) {
  if (!h.agent) return "агент не на связи: его запись устарела (агент или хост остановлен)";
  const a = h.agent;
  if (!a.connected) return `агент работает (pid ${a.pid}), но не связан с Redis${a.last_error ? `: ${a.last_error}` : ""}`;
  const versions = Object.entries(a.versions).map(([doc, v]) => `${doc} v${v}`).join(", ");
  const state = a.distributing ? "распространяет изменения" : "на связи, но не всё согласовано";
  return `агент ${state} (pid ${a.pid}); ${versions || "версий ещё нет"}`;
}

function conflictItem(c) {
  return el("li", { "data-conflict": c.sha256 },
    `${when(c.at)}: ${c.name} — правка на хосте ${c.host} (основа v${c.base_version}) проиграла версии ` +
    `v${c.winner_version} с хоста ${c.winner_host}; сохранена в ${c.kept}.`);
}

// With Redis (PROMPTS_REDIS_URL) the processes are grouped by host; a host whose agent is gone says so.
function hostsView(s, now) {
  if (s.distributing === null || s.distributing === undefined) return [];
  const out = [];
  if (!s.distributing) {
    out.push(el("div", { class: "banner error", id: "status-not-distributing", role: "alert" },
      `Хост ${s.host} не распространяет изменения на другие хосты: ${s.not_distributing_reason || "причина неизвестна"}. ` +
      "Сохранения применяются здесь и будут отправлены, когда связь восстановится."));
  }
  for (const h of s.hosts) {
    const id = `status-host-${h.host}`;
    out.push(el("section", { class: "status-host", id, "data-connected": String(h.connected), "aria-labelledby": `${id}-title` },
      el("h3", { id: `${id}-title`, text: `Хост ${h.host}${h.host === s.host ? " (эта панель)" : ""}` }),
      el("p", { class: h.connected ? "" : "error", text: agentText(h) }),
      h.consumers.length
        ? consumerTable(`status-table-${h.host}`, `Процессы хоста ${h.host}`, h.consumers, now)
        : el("p", { text: "Процессов нет." })));
  }
  if (s.conflicts && s.conflicts.length) {
    out.push(el("section", { id: "status-conflicts", "aria-labelledby": "status-conflicts-title" },
      el("h3", { id: "status-conflicts-title", class: "error", text: "Конфликты" }),
      el("ul", {}, ...s.conflicts.map(conflictItem))));
  }
  return out;
}

function render(s) {
  state.last = s;
  const now = s.panel ? s.panel.now : Date.now() / 1000;
  const missing = s.missing || [];
  const grouped = hostsView(s, now);
  $("#status-view").replaceChildren(
    missing.length ? el("div", { class: "banner error", id: "status-missing", role: "alert" },
      `Не запущены ожидаемые процессы: ${missing.join(", ")}.`) : "",
    el("p", {}, "Файл: ", el("code", { text: s.path })),
    el("p", {}, "Версия на диске: ", el("code", { text: s.sha256 || "нет файла" }),
      s.valid ? "" : el("b", { class: "error", text: ` — файл повреждён: ${fileErrorText(s.error)}` })),
    el("p", { text: `Панель следит за файлом: ${s.watching}. Актуальны: ${s.in_sync}, отстают: ${s.out_of_sync}.` }),
    s.panel ? el("p", { id: "status-panel", text: `Панель: хост ${s.panel.hostname}, версия ${s.panel.version}, работает ${duration(now - s.panel.started_at)}.` }) : "",
    ...(grouped.length ? grouped : [consumerTable("status-table", "Процессы, использующие промпты", s.consumers, now)]));
  for (const table of $$("#status-view table")) labelCells(table);
  $("#status-updated").textContent = `Обновлено в ${clock()}; обновляется каждые ${REFRESH_MS / 1000} с.`;
}

async function refresh() {
  try {
    render(await api.status());
  } catch (e) {
    if (e.isAuth) return;
    $("#status-updated").textContent = `Не удалось обновить (${codeText(e.code, e.status)}); повтор через ${REFRESH_MS / 1000} с.`;
  }
}

async function downloadMetrics() {
  try {
    const blob = await api.metricsText();
    const a = el("a", { href: URL.createObjectURL(blob), download: "metrics.txt", hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  } catch (e) {
    if (!e.isAuth) announce($("#status-message"), `Метрики не получены: ${codeText(e.code, e.status)}`, "error");
  }
}

export async function show() {
  await refresh();
  clearInterval(state.timer);
  state.timer = setInterval(() => { if (!$("#tab-status").hidden) refresh(); else clearInterval(state.timer); }, REFRESH_MS);
}

export function onConsumers() {
  if (!$("#tab-status").hidden) refresh();
}

export function install() {
  $("#metrics-download").addEventListener("click", () => downloadMetrics());
}
