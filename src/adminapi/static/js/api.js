// Requests to the panel's API: the operator's token on each, errors as ApiError with a stable code.
// Functions about prompts take a `label` (undefined: the one live document) so that staging/production
// labels can be threaded through without touching the pages.

import { codeText } from "./i18n.js";

const TOKEN_KEY = "adminToken";
let token = localStorage.getItem(TOKEN_KEY) || "";
const authListeners = [];

export const WAIT_MS = 5000;

export class ApiError extends Error {
  constructor(status, body, headers) {
    const problem = body && typeof body === "object" ? body : {};
    const code = problem.code || (status === 0 ? "network" : "");
    super(codeText(code, status));
    this.status = status;
    this.code = code;
    this.detail = problem.detail || "";
    this.errors = problem.errors || [];
    this.currentSha = problem.current_sha256 || null;
    this.headers = headers;
  }
  get isAuth() { return this.status === 401 || this.status === 403; }
  get isNetwork() { return this.status === 0; }
}

export const hasToken = () => Boolean(token);
export function setToken(value) { token = value; }
export function keepToken() { localStorage.setItem(TOKEN_KEY, token); }
export function forgetToken() { token = ""; localStorage.removeItem(TOKEN_KEY); }
/** Called with the error when a request is refused for its token (the login dialog opens). */
export function onAuthError(fn) { authListeners.push(fn); }
export const authHeader = () => ({ Authorization: `Bearer ${token}` });

export async function request(method, path, { json, body, headers = {} } = {}) {
  const h = { ...authHeader(), ...headers };
  if (json !== undefined) {
    h["Content-Type"] = "application/json; charset=utf-8";
    body = JSON.stringify(json, null, 2);
  }
  let r;
  try {
    r = await fetch(path, { method, headers: h, body, cache: "no-store" });
  } catch (_) {
    throw new ApiError(0, null, null);  // offline, refused, reset: the page says "нет связи"
  }
  if (!r.ok && r.status !== 304) {
    const err = new ApiError(r.status, await r.json().catch(() => null), r.headers);
    if (err.isAuth) for (const fn of authListeners) fn(err);
    throw err;
  }
  return r;
}

const getJson = async (path) => (await request("GET", path)).json();
const q = (params) => {
  const s = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") s.set(k, v);
  const text = s.toString();
  return text ? `?${text}` : "";
};
const enc = encodeURIComponent;

// ---- prompts (label-aware) ----------------------------------------------------------------------

const promptsUrl = (tail, label, params = {}) => `/api/prompts${tail}${q({ ...params, label })}`;

/** {doc, etag, sha, valid}: the live document (the newest valid one when the file on disk is broken). */
export async function getPrompts(label) {
  let r;
  try {
    r = await request("GET", promptsUrl("", label));
  } catch (e) {
    if (e.code === "no_prompts_file") return { doc: {}, etag: null, sha: null, valid: true };
    throw e;
  }
  const etag = r.headers.get("ETag");
  return { doc: await r.json(), etag, sha: etag ? etag.replaceAll('"', "") : null, valid: r.headers.get("X-Prompts-Valid") !== "false" };
}

/** Save the whole document: `body` is the exact text (raw JSON mode) or an object. */
export async function savePrompts({ body, etag, message, label }) {
  const r = await request("PUT", promptsUrl("", label, { wait_ms: WAIT_MS, message }), {
    body: typeof body === "string" ? body : JSON.stringify(body, null, 2),
    headers: { "Content-Type": "application/json; charset=utf-8", ...(etag ? { "If-Match": etag } : {}) },
  });
  return { result: await r.json(), etag: r.headers.get("ETag") };
}

export const history = (label, limit = 200) => getJson(promptsUrl("/history", label, { limit }));
export async function revision(sha, label) {
  return (await request("GET", promptsUrl(`/history/${enc(sha)}`, label))).json();
}
export const diff = (from, to, label) => getJson(promptsUrl("/diff", label, { from, to }));
export async function rollback(sha, etag, label) {
  const r = await request("POST", promptsUrl(`/rollback/${enc(sha)}`, label, { wait_ms: WAIT_MS }), {
    headers: etag ? { "If-Match": etag } : {},
  });
  return r.json();
}

// ---- the rest ------------------------------------------------------------------------------------

export const status = () => getJson("/api/status");
export const whoami = () => getJson("/api/whoami");
export const eventsTicket = async () => (await request("POST", "/api/events/ticket")).json();
export const kbList = () => getJson("/api/kb");
export const kbRead = async (name) => (await request("GET", `/api/kb/${enc(name)}`)).text();
export const kbDelete = (name) => request("DELETE", `/api/kb/${enc(name)}`);
export const calls = (params) => getJson(`/api/calls${q(params)}`);
export const call = (id) => getJson(`/api/calls/${enc(id)}`);
export const playground = async (prompts, text, history) =>
  (await request("POST", "/api/playground", { json: { prompts, text, history } })).json();
export const metricsText = async () => (await request("GET", "/metrics")).blob();

/** Upload one knowledge-base file with progress (XMLHttpRequest: fetch has no upload progress). */
export function kbUpload(file, name, onProgress) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    form.append("file", file, file.name);
    if (name) form.append("name", name);
    const xhr = new XMLHttpRequest();
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
    xhr.onload = () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch (_) { /* not JSON: the status says enough */ }
      if (xhr.status === 200 || xhr.status === 201) resolve({ file: body, created: xhr.status === 201 });
      else {
        const err = new ApiError(xhr.status, body, null);
        if (err.isAuth) for (const fn of authListeners) fn(err);
        reject(err);
      }
    };
    xhr.onerror = () => reject(new ApiError(0, null, null));
    xhr.open("POST", "/api/kb");
    xhr.setRequestHeader("Authorization", `Bearer ${token}`);
    xhr.send(form);
  });
}
