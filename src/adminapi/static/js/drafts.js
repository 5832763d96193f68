// Unsaved drafts in the browser's local storage, one per operator and label, so a reload, a crash or a
// logout loses nothing.  Settings (e.g. "save without review") are kept per operator too.

const PREFIX = "promptwatch.v1";
const draftKey = (operator, label) => `${PREFIX}.draft.${operator}.${label || "default"}`;
const settingsKey = (operator) => `${PREFIX}.settings.${operator}`;

/** {base_sha, doc | null, raw | null, view, saved_at} or null. */
export function loadDraft(operator, label) {
  try {
    const value = JSON.parse(localStorage.getItem(draftKey(operator, label)) || "null");
    return value && typeof value === "object" ? value : null;
  } catch (_) {
    return null;
  }
}

/** Keep the draft; false when the browser refuses (storage full or disabled): the caller says so. */
export function storeDraft(operator, label, draft) {
  try {
    localStorage.setItem(draftKey(operator, label), JSON.stringify({ ...draft, saved_at: Date.now() / 1000 }));
    return true;
  } catch (_) {
    return false;
  }
}

export function dropDraft(operator, label) {
  localStorage.removeItem(draftKey(operator, label));
}

export function loadSettings(operator) {
  try {
    return { skipReview: false, ...JSON.parse(localStorage.getItem(settingsKey(operator)) || "{}") };
  } catch (_) {
    return { skipReview: false };
  }
}

export function storeSettings(operator, settings) {
  localStorage.setItem(settingsKey(operator), JSON.stringify(settings));
}
