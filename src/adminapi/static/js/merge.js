// Three-way merge of prompts documents, key by key: base (what the operator started from), theirs (what
// is on disk now), mine (the draft).  Keys changed on one side only merge themselves; the operator
// chooses (or edits) each key changed on both sides.

import { $, el } from "./dom.js";
import { canonical, keyLabel, valueText } from "./diff.js";

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

/** {keys: [{key, base, theirs, mine, status: same|theirs|mine|conflict, result}], conflicts: n} */
export function threeWay(baseDoc, theirsDoc, mineDoc) {
  const base = canonical(baseDoc);
  const theirs = canonical(theirsDoc);
  const mine = canonical(mineDoc);
  const order = [...Object.keys(theirs), ...Object.keys(mine).filter((k) => !(k in theirs)),
    ...Object.keys(base).filter((k) => !(k in theirs) && !(k in mine))];
  const keys = order.map((key) => {
    const b = base[key];
    const t = theirs[key];
    const m = mine[key];
    let status;
    let result;
    if (same(t, m)) { status = same(b, t) ? "same" : "both"; result = t; }
    else if (same(b, t)) { status = "mine"; result = m; }
    else if (same(b, m)) { status = "theirs"; result = t; }
    else { status = "conflict"; result = m; }
    return { key, base: b, theirs: t, mine: m, status, result };
  });
  return { keys, conflicts: keys.filter((k) => k.status === "conflict").length };
}

const STATUS_TEXT = {
  theirs: "изменено только на диске — взято автоматически",
  mine: "изменено только у вас — оставлено автоматически",
  both: "одинаково изменено с обеих сторон",
};

function column(title, value) {
  return el("div", { class: "merge-col" }, el("div", { class: "merge-col-title", text: title }), el("pre", { class: "doc", text: valueText(value) }));
}

/**
 * Draw the merge view into `box`.  `onApply(doc)` gets the merged document; `onCancel()` closes it.
 * `who` says where "theirs" came from ("сохранено оператором alice").
 */
export function renderMerge(box, merge, { who, onApply, onCancel, onTakeTheirs }) {
  const rows = merge.keys.filter((k) => k.status !== "same").map((k) => {
    const row = el("fieldset", { class: `merge-key ${k.status}`, "data-key": k.key, "data-status": k.status },
      el("legend", { text: keyLabel(k.key) }),
      el("div", { class: "merge-cols" }, column("Было (основа)", k.base), column("На диске (их)", k.theirs), column("Ваш черновик", k.mine)));
    if (k.status === "conflict") {
      const name = `merge-${k.key}`;
      const result = el("textarea", { id: `merge-result-${k.key}`, rows: 3, "data-result": k.key });
      result.value = valueText(k.mine === undefined ? "" : k.mine);
      const pick = (side) => {
        const v = side === "theirs" ? k.theirs : k.mine;
        result.value = v === undefined ? "" : valueText(v);
        result.dataset.removed = v === undefined ? "true" : "";
      };
      result.dataset.removed = k.mine === undefined ? "true" : "";
      result.addEventListener("input", () => { result.dataset.removed = ""; });
      row.append(
        el("p", { class: "merge-status conflict-text", text: "Изменено с обеих сторон — выберите или отредактируйте результат:" }),
        el("div", { class: "merge-choice", role: "radiogroup", "aria-label": `Что оставить: ${k.key}` },
          el("label", {}, el("input", { type: "radio", name, value: "mine", checked: true, onchange: () => pick("mine") }), " Мой вариант"),
          el("label", {}, el("input", { type: "radio", name, value: "theirs", onchange: () => pick("theirs") }), " Их вариант")),
        el("label", { for: result.id, text: "Результат" }), result);
    } else {
      row.append(el("p", { class: "merge-status", text: STATUS_TEXT[k.status] }));
    }
    return row;
  });
  const title = el("h2", { id: "merge-title", tabindex: "-1", text: "Объединение изменений" });
  box.replaceChildren(
    title,
    el("p", { text: `На диске новая версия (${who}). Ваш черновик не потерян: ${merge.conflicts
      ? `конфликтующих промптов: ${merge.conflicts}, выберите вариант для каждого.`
      : "конфликтов нет, изменения объединены автоматически."}` }),
    ...rows,
    el("div", { class: "dialog-actions" },
      el("button", { type: "button", id: "merge-apply", text: "Принять объединение", onclick: () => onApply(collect(box, merge)) }),
      el("button", { type: "button", id: "merge-take-theirs", class: "secondary", text: "Взять версию с диска целиком", onclick: onTakeTheirs }),
      el("button", { type: "button", id: "merge-cancel", class: "secondary", text: "Отложить", onclick: onCancel })));
  box.hidden = false;
  title.focus();
}

function collect(box, merge) {
  const out = {};
  for (const k of merge.keys) {
    if (k.status !== "conflict") {
      if (k.result !== undefined) out[k.key] = k.result;
      continue;
    }
    const area = $(`textarea[data-result="${CSS.escape(k.key)}"]`, box);
    if (area.dataset.removed === "true" && area.value === "") continue;
    const template = k.mine !== undefined ? k.mine : k.theirs;
    out[k.key] = Array.isArray(template) ? area.value.split("\n").map((s) => s.trim()).filter(Boolean) : area.value;
  }
  return out;
}
