// The consumers in the editor's sidebar: which process runs which version, grey when the panel is unreachable.

import { $, el, short } from "./dom.js";
import { fileErrorText, ms, when } from "./i18n.js";

const STATES = { "in-sync": "актуально", stale: "отстаёт", error: "ошибка", offline: "нет связи" };

/** `latencies`: pid → ms measured by the last save, shown while that consumer stays on that version. */
export function renderBadges({ consumers, sha256 }, { online, latencies }) {
  $("#disk-sha").textContent = online ? short(sha256) : "нет связи";
  const list = $("#consumer-badges");
  list.replaceChildren(...consumers.map((c) => {
    let state = "stale";
    if (!online) state = "offline";
    else if (c.in_sync) state = "in-sync";
    else if (c.last_error) state = "error";
    const latency = latencies.get(`${c.pid}:${c.sha256}`);
    const detail = !online ? "панель недоступна: состояние неизвестно"
      : c.in_sync ? (latency != null ? `применил за ${ms(latency)}` : `загружено ${when(c.loaded_at)}`)
        : `на версии ${short(c.sha256)}${c.last_error ? " — ошибка загрузки" : ""}`;
    return el("li", { class: `badge ${state}`, "data-service": c.service, "data-pid": String(c.pid), "data-state": state },
      el("b", { text: c.service }), ` (pid ${c.pid}) `, el("span", { class: "state", text: STATES[state] }), el("br"),
      el("small", { text: `${detail} · ${c.mode}` }),
      c.last_error && online ? el("small", { class: "badge-error", text: fileErrorText(c.last_error) }) : "");
  }));
  if (!consumers.length) list.append(el("li", { class: "muted", text: online ? "нет работающих процессов" : "нет связи" }));
  const summary = $("#processes-summary");
  const inSync = consumers.filter((c) => c.in_sync).length;
  summary.textContent = online ? `Процессы: ${inSync} из ${consumers.length} актуальны` : "Процессы: нет связи";
}
