// Status: the version on disk, every process (host, software version, uptime, last seen, its prompts
// version), expected processes that are not running; refreshed by itself.  Links to /metrics and the docs.

import * as api from "./api.js";
import { $, announce, el, labelCells, short } from "./dom.js";
import { clock, codeText, duration, fileErrorText, when } from "./i18n.js";

export const state = { timer: null, last: null };
const REFRESH_MS = 5000;

function render(s) {
  state.last = s;
  const now = s.panel ? s.panel.now : Date.now() / 1000;
  const rows = s.consumers.map((c) => el("tr", { "data-service": c.service, "data-pid": String(c.pid) },
    el("th", { scope: "row", text: c.service }),
    el("td", { text: c.hostname }),
    el("td", { text: String(c.pid) }),
    el("td", { text: c.version || "—" }),
    el("td", { text: c.started_at ? duration(now - c.started_at) : "—" }),
    el("td", { text: c.updated_at ? `${when(c.updated_at)} (${duration(now - c.updated_at)} назад)` : "—" }),
    el("td", {}, el("code", { text: short(c.sha256) })),
    el("td", { text: c.in_sync ? "да" : "нет" }),
    el("td", { text: c.mode }),
    el("td", { text: fileErrorText(c.last_error) })));
  const missing = s.missing || [];
  $("#status-view").replaceChildren(
    missing.length ? el("div", { class: "banner error", id: "status-missing", role: "alert" },
      `Не запущены ожидаемые процессы: ${missing.join(", ")}.`) : "",
    el("p", {}, "Файл: ", el("code", { text: s.path })),
    el("p", {}, "Версия на диске: ", el("code", { text: s.sha256 || "нет файла" }),
      s.valid ? "" : el("b", { class: "error", text: ` — файл повреждён: ${fileErrorText(s.error)}` })),
    el("p", { text: `Панель следит за файлом: ${s.watching}. Актуальны: ${s.in_sync}, отстают: ${s.out_of_sync}.` }),
    s.panel ? el("p", { id: "status-panel", text: `Панель: хост ${s.panel.hostname}, версия ${s.panel.version}, работает ${duration(now - s.panel.started_at)}.` }) : "",
    el("div", { class: "table-wrap" }, el("table", { id: "status-table" },
      el("caption", { text: "Процессы, использующие промпты" }),
      el("thead", {}, el("tr", {}, ...["Сервис", "Хост", "PID", "Версия ПО", "Работает", "Последний статус", "Промпты", "Актуально", "Режим", "Ошибка"]
        .map((t) => el("th", { scope: "col", text: t })))),
      el("tbody", {}, ...rows))));
  labelCells($("#status-table"));
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
