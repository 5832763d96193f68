// Differences between two prompts documents: per prompt (key) and as text lines.

import { el } from "./dom.js";
import { CHANGE_KINDS, FIELD_LABELS } from "./i18n.js";

export const KNOWN = ["system_prompt", "greeting", "fillers", "fallback", "goodbye"];
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

/** The document without empty optional values, keys in a stable order (known first). */
export function canonical(doc) {
  const out = {};
  const keys = [...KNOWN.filter((k) => k in doc), ...Object.keys(doc).filter((k) => !KNOWN.includes(k))];
  for (const k of keys) {
    const v = doc[k];
    if (v === null || v === undefined) continue;
    if (k === "fillers" && Array.isArray(v) && v.length === 0) continue;
    out[k] = v;
  }
  return out;
}

export const equalDocs = (a, b) => same(canonical(a), canonical(b));

/** [{key, kind: added|removed|changed, before, after}] */
export function keyChanges(before, after) {
  const a = canonical(before);
  const b = canonical(after);
  const out = [];
  for (const key of [...Object.keys(b), ...Object.keys(a).filter((k) => !(k in b))]) {
    if (!(key in a)) out.push({ key, kind: "added", before: undefined, after: b[key] });
    else if (!(key in b)) out.push({ key, kind: "removed", before: a[key], after: undefined });
    else if (!same(a[key], b[key])) out.push({ key, kind: "changed", before: a[key], after: b[key] });
  }
  return out;
}

/** A line diff (longest common subsequence): [{op: " "|"-"|"+", line}]. */
export function lineDiff(oldText, newText) {
  const a = oldText.split("\n");
  const b = newText.split("\n");
  const n = a.length;
  const m = b.length;
  const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) {
    lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
  }
  const out = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (a[i] === b[j]) { out.push({ op: " ", line: a[i] }); i++; j++; }
    else if (lcs[i + 1][j] >= lcs[i][j + 1]) out.push({ op: "-", line: a[i++] });
    else out.push({ op: "+", line: b[j++] });
  }
  while (i < n) out.push({ op: "-", line: a[i++] });
  while (j < m) out.push({ op: "+", line: b[j++] });
  return out;
}

export const docText = (doc) => JSON.stringify(canonical(doc), null, 2);
export const valueText = (v) => (v === undefined ? "(нет)" : Array.isArray(v) ? v.join("\n") : String(v));
export const keyLabel = (key) => (FIELD_LABELS[key] ? `${FIELD_LABELS[key].replace(/ \(.*\)$/, "")} (${key})` : key);

/** The per-key list and the text diff of two documents, ready to put in a page or a dialog. */
export function renderDiff(before, after, { id = "diff" } = {}) {
  const changes = keyChanges(before, after);
  const list = el("ul", { class: "changes", id: `${id}-keys` }, ...changes.map((c) => el("li", { class: c.kind, "data-key": c.key },
    el("b", { text: `${keyLabel(c.key)}: ${CHANGE_KINDS[c.kind]}` }),
    c.kind !== "added" ? el("div", { class: "before" }, el("span", { class: "sr-only", text: "было: " }), valueText(c.before)) : "",
    c.kind !== "removed" ? el("div", { class: "after" }, el("span", { class: "sr-only", text: "стало: " }), valueText(c.after)) : "")));
  if (!changes.length) list.append(el("li", { text: "без изменений" }));
  return el("div", { class: "diff-box" }, list, renderUnified(lineDiff(docText(before), docText(after)), `${id}-text`));
}

export function renderUnified(lines, id) {
  const pre = el("pre", { class: "diff", id, tabindex: "0", "aria-label": "Изменения построчно" });
  for (const { op, line } of lines) {
    pre.append(el("span", { class: op === "+" ? "add" : op === "-" ? "del" : "ctx", text: `${op} ${line}\n` }));
  }
  return pre;
}

/** A unified diff text from the server, coloured per line. */
export function renderServerUnified(text, id) {
  const lines = (text || "").split("\n").filter((l) => l !== "").map((l) => ({ op: l[0] === "+" && !l.startsWith("+++") ? "+" : l[0] === "-" && !l.startsWith("---") ? "-" : " ", line: l.slice(1) }));
  return renderUnified(lines.length ? lines : [{ op: " ", line: "(без изменений)" }], id);
}
