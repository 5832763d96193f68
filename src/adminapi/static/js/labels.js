// Labels in the panel: which label the editor edits (a switcher), a new label as a copy of another,
// promotion (the diff it will apply, an explicit confirmation, the target's ETag: a change made
// meanwhile is refused with 412, never overwritten; the result lists the processes that applied it),
// and the outcomes of each label and version from the call log (its own page, /outcomes).
//
// `install(host)` mounts it: host.label() and host.setLabel(label) are the label the editor works
// on ("production" is the prompts file itself); setLabel resolves false when the operator kept the
// unsaved edits of the current label instead.

import * as api from "./api.js";
import { $, el, labelCells } from "./dom.js";
import { endReasonText } from "./i18n.js";

const PRODUCTION = "production";
const WAIT_MS = api.WAIT_MS;
const LABEL_RE = /^[a-z0-9][a-z0-9_-]{0,31}$/;

const short = (sha) => (sha ? sha.slice(0, 8) : "—");
const pct = (x) => `${(100 * x).toFixed(1)} %`;
const pp = (x) => `${x > 0 ? "+" : ""}${(100 * x).toFixed(1)}`;

/** What a refused request says: its status, the Russian sentence for its code, the current sha on a 412. */
function problem(e) {
  if (!(e instanceof api.ApiError)) throw e;
  return { status: e.status, code: e.code, detail: e.message, current: e.currentSha };
}

export function install(host) {
  const ui = new LabelsUi(host);
  ui.mount();
  return ui;
}

class LabelsUi {
  constructor(host) {
    this.host = host;
    this.labels = [];
    this.review = null; // {src, dst, dstSha}: the comparison the operator is looking at
  }

  async json(method, path, opts) {
    return (await api.request(method, path, opts)).json();
  }

  mount() {
    if (this.host.switcher) this.mountSwitcher(this.host.switcher);
    if (this.host.outcomes) this.mountOutcomes(this.host.outcomes);
  }

  // ---- the switcher and the new-label dialog --------------------------------------------------------

  mountSwitcher(root) {
    this.select = el("select", { id: "label-select",
      onchange: async () => { await this.host.setLabel(this.select.value); await this.refresh(); } });  // prettier-ignore
    this.newDialog = this.buildNewDialog();
    this.promoteDialog = this.buildPromoteDialog();
    root.replaceChildren(
      el("label", { for: "label-select", class: "labels-title" }, "Метка"),
      this.select,
      el("button", { type: "button", id: "label-new", class: "secondary", onclick: () => this.openNew() }, "Новая метка…"),
      el("button", { type: "button", id: "label-promote", class: "secondary", onclick: () => this.openPromote() },
        "Продвинуть…"),  // prettier-ignore
      el("span", { id: "label-info", class: "muted", role: "status" }),
      this.newDialog,
      this.promoteDialog,
    );
    this.refresh().catch((e) => this.say("#label-info", problem(e).detail));
  }

  say(selector, text) {
    const node = $(selector);
    if (node) node.textContent = text;
  }

  async refresh() {
    this.labels = (await this.json("GET", "/api/labels")).items;
    const current = this.host.label();
    const names = this.labels.map((l) => l.label);
    if (!names.includes(current)) names.push(current); // a label being created, or whose file went away
    this.select.replaceChildren(...names.map((n) => el("option", { value: n, selected: n === current }, n)));
    const info = this.labels.find((l) => l.label === current);
    this.say("#label-info", info
      ? `${info.file} · ${short(info.sha256)} · процессов на этой версии: ${info.in_sync} из ${info.in_sync + info.out_of_sync}`
      : "");  // prettier-ignore
  }

  labelOptions(selected, { exclude } = {}) {
    return this.labels.filter((l) => l.label !== exclude)
      .map((l) => el("option", { value: l.label, selected: l.label === selected }, l.label));
  }

  buildNewDialog() {
    const dialog = el("dialog", { id: "label-new-dialog", "aria-labelledby": "label-new-title" });
    dialog.append(el("form", { method: "dialog", class: "card", onsubmit: (ev) => this.createLabel(ev) },
      el("h2", { id: "label-new-title" }, "Новая метка"),
      el("p", { class: "muted" }, "Начинается как копия другой метки; имя: латиница в нижнем регистре, цифры, - и _ (до 32)."),
      el("label", { for: "label-new-name" }, "Имя"),
      el("input", { id: "label-new-name", required: true, maxlength: 32, autocomplete: "off", placeholder: "staging" }),
      el("label", { for: "label-new-from" }, "Копия метки"),
      el("select", { id: "label-new-from" }),
      el("p", { id: "label-new-error", class: "error", role: "alert", hidden: true }),
      el("div", { class: "save-row" },
        el("button", { type: "submit", id: "label-new-create" }, "Создать"),
        el("button", { type: "button", class: "secondary", onclick: () => dialog.close() }, "Отмена")),
    ));  // prettier-ignore
    return dialog;
  }

  openNew() {
    const from = $("#label-new-from");
    from.replaceChildren(...this.labelOptions(this.host.label()));
    $("#label-new-name").value = "";
    $("#label-new-error").hidden = true;
    this.newDialog.showModal();
  }

  async createLabel(ev) {
    ev.preventDefault();
    const name = $("#label-new-name").value.trim();
    const from = $("#label-new-from").value;
    const error = $("#label-new-error");
    if (!LABEL_RE.test(name)) {
      error.hidden = false;
      error.textContent = "Имя метки: 1–32 символа a–z, 0–9, - и _, первым — буква или цифра.";
      return;
    }
    try {
      await api.request("POST", "/api/labels", { json: { label: name, from } });
    } catch (e) {
      const p = problem(e);
      error.hidden = false;
      error.textContent = p.code === "label_exists" ? `Метка ${name} уже есть.` : p.detail;
      return;
    }
    this.newDialog.close();
    await this.host.setLabel(name);
    await this.refresh();
  }

  // ---- promotion ----------------------------------------------------------------------------------

  buildPromoteDialog() {
    const dialog = el("dialog", { id: "label-promote-dialog", class: "wide-dialog", "aria-labelledby": "label-promote-title" });
    const reload = () => this.compare().catch((e) => this.promoteError(problem(e).detail));
    dialog.append(el("div", { class: "card" },
      el("h2", { id: "label-promote-title" }, "Продвижение метки"),
      el("div", { class: "save-row" },
        el("label", { for: "promote-src" }, "Что"), el("select", { id: "promote-src", onchange: reload }),
        el("label", { for: "promote-dst" }, "Куда"), el("select", { id: "promote-dst", onchange: reload })),
      el("p", { id: "promote-summary", role: "status" }),
      el("ul", { id: "promote-changes", class: "changes" }),
      el("details", {}, el("summary", {}, "Построчный diff"), el("pre", { id: "promote-diff", class: "diff" })),
      el("label", { class: "check" },
        el("input", { type: "checkbox", id: "promote-confirm",
          onchange: (e) => { $("#promote-go").disabled = !e.target.checked || !this.review; } }),
        " Я проверил изменения, которые получит целевая метка"),
      el("p", { id: "promote-error", class: "error", role: "alert", hidden: true }),
      el("div", { id: "promote-result", role: "status", hidden: true }),
      el("div", { class: "save-row" },
        el("button", { type: "button", id: "promote-go", disabled: true, onclick: () => this.promote() }, "Продвинуть"),
        el("button", { type: "button", class: "secondary", onclick: () => dialog.close() }, "Закрыть")),
    ));  // prettier-ignore
    return dialog;
  }

  async openPromote() {
    await this.refresh();
    const current = this.host.label();
    const src = current !== PRODUCTION ? current : (this.labels.find((l) => l.label !== PRODUCTION) || {}).label;
    $("#promote-src").replaceChildren(...this.labelOptions(src));
    $("#promote-dst").replaceChildren(...this.labelOptions(PRODUCTION));
    $("#promote-result").hidden = true;
    this.promoteDialog.showModal();
    await this.compare().catch((e) => this.promoteError(problem(e).detail));
  }

  promoteError(text) {
    const node = $("#promote-error");
    node.hidden = !text;
    node.textContent = text || "";
  }

  /** Load what promoting src onto dst changes; the target's sha shown is the ETag the promotion sends. */
  async compare() {
    const src = $("#promote-src").value;
    const dst = $("#promote-dst").value;
    const confirm = $("#promote-confirm");
    confirm.checked = false;
    $("#promote-go").disabled = true;
    this.review = null;
    this.promoteError("");
    $("#promote-changes").replaceChildren();
    $("#promote-diff").textContent = "";
    if (!src || !dst || src === dst) {
      this.say("#promote-summary", "Выберите две разные метки.");
      return;
    }
    const d = await this.json("GET", `/api/labels/compare?from=${encodeURIComponent(dst)}&to=${encodeURIComponent(src)}`);
    this.review = { src, dst, dstSha: d.from_sha256, srcSha: d.to_sha256 };
    this.say("#promote-summary", d.changes.length
      ? `${dst} (${short(d.from_sha256)}) получит версию ${src} (${short(d.to_sha256)}): изменений — ${d.changes.length}.`
      : `${dst} уже совпадает с ${src} по содержимому (${short(d.to_sha256)}).`);  // prettier-ignore
    const kinds = { added: "добавлен", removed: "удалён", changed: "изменён" };
    $("#promote-changes").replaceChildren(...d.changes.map((c) =>
      el("li", { "data-key": c.key }, el("code", {}, c.key), ` — ${kinds[c.kind] || c.kind}`,
        c.kind !== "added" ? el("div", { class: "before" }, "было: ", JSON.stringify(c.before)) : null,
        c.kind !== "removed" ? el("div", { class: "after" }, "станет: ", JSON.stringify(c.after)) : null)));  // prettier-ignore
    $("#promote-diff").textContent = d.unified;
  }

  async promote() {
    const review = this.review;
    if (!review || !$("#promote-confirm").checked) return;
    const go = $("#promote-go");
    go.disabled = true;
    let out;
    try {
      const path = `/api/labels/${encodeURIComponent(review.dst)}/promote?from=${encodeURIComponent(review.src)}&wait_ms=${WAIT_MS}`;
      out = await this.json("POST", path, { headers: { "If-Match": `"${review.dstSha}"` } });
    } catch (e) {
      const p = problem(e);
      if (p.code === "stale_etag") {
        await this.compare().catch(() => {});
        this.promoteError(`Метку ${review.dst} изменили, пока вы смотрели (теперь ${short(p.current)}): ничего не записано. ` +
          "Проверьте обновлённые изменения и подтвердите снова.");  // prettier-ignore
      } else {
        this.promoteError(p.detail);
        go.disabled = false;
      }
      return;
    }
    const result = $("#promote-result");
    const applied = out.consumers.filter((c) => c.in_sync);
    const stale = out.consumers.filter((c) => !c.in_sync);
    result.hidden = false;
    result.replaceChildren(
      el("p", { class: out.all_applied ? "banner ok" : "banner warn" },
        `${review.dst} теперь ${short(out.sha256)} (из ${review.src}). ` +
        (out.all_applied ? `Применили все процессы: ${applied.length}.` : `Ещё не применили: ${stale.length}.`)),
      el("ul", { id: "promote-consumers" }, ...out.consumers.map((c) => el("li", { "data-service": c.service },
        c.in_sync ? `${c.service} (pid ${c.pid}) — применил${c.latency_ms != null ? ` за ${Math.round(c.latency_ms)} мс` : ""}`
          : `${c.service} (pid ${c.pid}) — ещё на ${short(c.sha256)}${c.last_error ? `: ${c.last_error}` : ""}`))),
    );  // prettier-ignore
    this.review = null;
    $("#promote-confirm").checked = false;
    await this.refresh();
    if (this.host.label() === review.dst) await this.host.setLabel(review.dst); // the editor shows the new version
  }

  // ---- outcomes -----------------------------------------------------------------------------------

  mountOutcomes(root) {
    const today = new Date();
    const weekAgo = new Date(today.getTime() - 7 * 86400e3);
    const day = (d) => d.toISOString().slice(0, 10);
    root.replaceChildren(
      el("h2", {}, "Итоги по меткам и версиям"),
      el("form", { id: "outcomes-filter", class: "filters", onsubmit: (ev) => { ev.preventDefault(); this.loadOutcomes(); } },
        el("label", {}, "с ", el("input", { id: "outcomes-since", type: "date", value: day(weekAgo) })),
        el("label", {}, "по ", el("input", { id: "outcomes-until", type: "date", value: day(today) })),
        el("button", { type: "submit", id: "outcomes-apply" }, "Показать")),
      el("p", { id: "outcomes-note", class: "muted", role: "status" }),
      el("div", { class: "table-wrap" }, el("table", { id: "outcomes-table" },
        el("caption", { class: "sr-only" }, "Итоги звонков по меткам и версиям промптов"),
        el("thead", {}, el("tr", {}, ...["Метка", "Версия", "Звонков", "Медиана реплик", "Прощание", "Перевод",
          "Другие завершения", "Ошибки бэкенда", "Медиана ответа", "Прощание против базы", "Перевод против базы"]
          .map((t) => el("th", { scope: "col" }, t)))),
        el("tbody"))),
    );  // prettier-ignore
  }

  async loadOutcomes() {
    const since = $("#outcomes-since").value;
    const until = $("#outcomes-until").value;
    const q = new URLSearchParams();
    if (since) q.set("since", since);
    if (until) q.set("until", until);
    let out;
    try {
      out = await this.json("GET", `/api/outcomes?${q}`);
    } catch (e) {
      this.say("#outcomes-note", problem(e).detail);
      return;
    }
    const base = out.baseline;
    this.say("#outcomes-note", base
      ? `База сравнения: ${base.label} ${short(base.sha256)} (${base.calls} звонков). Интервалы — 95 %; ` +
        `меньше ${out.min_calls} звонков или ${out.min_events} событий на версию — «мало данных».`
      : "За этот период нет завершённых звонков на базовой метке.");  // prettier-ignore
    const cell = (v, reason) => {
      const n = v.end_reasons[reason] || 0;
      return el("td", { "data-reason": reason }, `${n} (${pct(v.shares[reason] || 0)})`);
    };
    const versus = (v, reason) => {
      if (v.baseline) return el("td", { class: "muted" }, "база");
      const c = v.comparisons.find((x) => x.reason === reason);
      if (!c) return el("td", { class: "muted" }, "—");
      if (c.too_small) return el("td", { class: "too-small" }, "мало данных");
      const verdict = c.significant ? (c.difference > 0 ? "выше" : "ниже") : "разница не доказана";
      return el("td", { class: c.significant ? "significant" : "" },
        `${pp(c.difference)} п.п. [${pp(c.low)}; ${pp(c.high)}] — ${verdict}`);  // prettier-ignore
    };
    const rows = out.items.map((v) => {
      const others = Object.entries(v.end_reasons).filter(([r]) => r !== "goodbye" && r !== "operator")
        .map(([r, n]) => `${endReasonText(r)}: ${n}`).join(" · ");  // prettier-ignore
      return el("tr", { "data-label": v.label, "data-sha": v.sha256 },
        el("td", {}, v.label), el("td", {}, el("code", { title: v.sha256 }, short(v.sha256))),
        el("td", { class: "calls" }, String(v.calls)),
        el("td", {}, v.median_turns == null ? "—" : String(v.median_turns)),
        cell(v, "goodbye"), cell(v, "operator"), el("td", {}, others || "—"),
        el("td", {}, `${v.backend_errors} (в ${v.calls_with_errors} зв.)`),
        el("td", {}, v.median_reply_ms == null ? "—" : `${Math.round(v.median_reply_ms)} мс`),
        versus(v, "goodbye"), versus(v, "operator"));  // prettier-ignore
    });
    $("#outcomes-table tbody").replaceChildren(...rows);
    labelCells($("#outcomes-table"));
    if (!rows.length) this.say("#outcomes-note", "За этот период нет завершённых звонков.");
  }
}
