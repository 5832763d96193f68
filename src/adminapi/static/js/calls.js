// Calls: filters (caller, dates, end reason, "had an error"), errors flagged, the prompts version of each
// call linked to its revision, the transcript with the greeting in a dialog.  State: `state`.

import * as api from "./api.js";
import { $, labelCells, el, short } from "./dom.js";
import { END_REASONS, endReasonText, ms, when } from "./i18n.js";
import { go, path } from "./router.js";

export const state = { offset: 0, limit: 50, total: 0, filters: {} };

function readFilters() {
  state.filters = {
    caller: $("#calls-caller").value.trim(),
    since: $("#calls-since").value,
    until: $("#calls-until").value,
    end_reason: $("#calls-reason").value,
    had_error: $("#calls-errors").checked ? "true" : "",
  };
}

async function loadList() {
  const data = await api.calls({ ...state.filters, limit: state.limit, offset: state.offset });
  state.total = data.total;
  const body = $("#calls-table tbody");
  body.replaceChildren(...data.items.map((c) => el("tr", { "data-call": c.id, class: c.had_error ? "had-error" : "" },
    el("td", {}, el("a", { href: path("calls", c.id), "data-route": true, text: when(c.started_at) })),
    el("td", { text: c.console ? "консоль (stasis console)" : `${c.caller_number} ${c.caller_name}`.trim() }),
    el("td", { text: c.duration != null ? `${Math.round(c.duration)} с` : "идёт" }),
    el("td", { text: String(c.turn_count) }),
    el("td", { text: endReasonText(c.end_reason) }),
    el("td", {}, c.had_error ? el("span", { class: "flag-error", text: "⚠ ошибка" }) : ""),
    el("td", {}, el("a", { href: path("history", c.prompts_sha256), "data-route": true, class: "sha", text: short(c.prompts_sha256),
      "aria-label": `Версия промптов ${short(c.prompts_sha256)}` })))));
  if (!data.items.length) body.append(el("tr", {}, el("td", { colspan: 7, class: "muted", text: "звонков нет" })));
  labelCells($("#calls-table"));
  const to = Math.min(state.offset + state.limit, state.total);
  $("#calls-page").textContent = state.total ? `${state.offset + 1}–${to} из ${state.total}` : "";
}

async function greetingOf(sha) {
  try {
    const doc = await api.revision(sha);
    return doc.greeting || "";
  } catch (_) {
    return null; // that version is no longer in the history
  }
}

async function showCall(id) {
  const dialog = $("#call-dialog");
  const c = await api.call(id);
  const greeting = await greetingOf(c.prompts_sha256);
  const title = el("h2", { id: "call-title", tabindex: "-1", text: `Звонок ${c.caller_number} ${c.caller_name}`.trim() });
  const close = el("button", { type: "button", id: "call-close", class: "secondary", text: "Закрыть", onclick: () => dialog.close() });
  dialog.replaceChildren(title,
    el("p", { class: "muted" }, `${when(c.started_at)} · завершение: ${endReasonText(c.end_reason)} · промпты `,
      el("a", { href: path("history", c.prompts_sha256), "data-route": true, text: short(c.prompts_sha256), onclick: () => dialog.close() })),
    el("ol", { class: "transcript", id: "call-transcript" },
      el("li", { class: "turn greeting" }, el("div", { class: "bot", text: greeting === null ? "Бот (приветствие): версия промптов не сохранилась в истории" : `Бот (приветствие): ${greeting}` })),
      ...c.turns.map((t) => el("li", { class: `turn${t.error ? " has-error" : ""}` },
        el("div", { class: "caller", text: `Абонент: ${t.caller_text}` }),
        el("div", { class: "bot", text: `Бот: ${t.bot_text}` }),
        el("small", { class: "muted", text: `распознавание ${ms(t.stt_ms)} · модель ${ms(t.llm_ms)} · синтез ${ms(t.tts_ms)}` }),
        t.error ? el("div", { class: "flag-error", text: "⚠ ошибка в этой реплике" }) : ""))),
    el("div", { class: "dialog-actions" }, close));
  dialog.dataset.call = id;
  if (!dialog.open) dialog.showModal();
  title.focus();
}

export async function show(parts) {
  await loadList();
  if (parts[0]) await showCall(parts[0]);
  else if ($("#call-dialog").open) $("#call-dialog").close();
}

export function install() {
  const reason = $("#calls-reason");
  reason.append(...Object.entries(END_REASONS).filter(([k]) => k !== "hangup" && k !== "transfer").map(([value, text]) => el("option", { value, text })));
  $("#calls-filter").addEventListener("submit", (ev) => { ev.preventDefault(); readFilters(); state.offset = 0; loadList(); });
  $("#calls-prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - state.limit); loadList(); });
  $("#calls-next").addEventListener("click", () => { if (state.offset + state.limit < state.total) { state.offset += state.limit; loadList(); } });
  $("#call-dialog").addEventListener("close", () => { if (location.pathname.startsWith("/calls/")) go(path("calls")); });
}
