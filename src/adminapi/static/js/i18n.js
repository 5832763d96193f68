// Every text the operator reads, in Russian: API error codes, validation kinds, end reasons, origins.
// The API keeps stable machine-readable codes (and English details); this is where they become words.

const CODES = {
  bad_request: "Некорректный запрос.",
  kb_bad_name: "Недопустимое имя файла базы знаний.",
  token_required: "Нужен токен администратора.",
  wrong_token: "Неверный токен.",
  not_found: "Не найдено.",
  no_prompts_file: "Файла промптов ещё нет: сохраните документ, чтобы создать его.",
  no_revision: "Такой версии нет в истории.",
  no_valid_prompts: "На диске нет корректного файла промптов.",
  kb_not_found: "Такого файла в базе знаний нет.",
  no_call: "Такого звонка нет в журнале.",
  method_not_allowed: "Такое действие не поддерживается.",
  body_timeout: "Запрос передавался слишком долго и был прерван.",
  unsafe_file: "На месте файла не обычный файл (канал, каталог, устройство или недопустимая ссылка): ничего не прочитано и не записано.",
  prompts_unreadable: "Файл промптов не удаётся прочитать.",
  prompts_invalid_on_disk: "Файл промптов на диске повреждён, а корректной версии в истории нет.",
  not_patchable: "Изменить этот промпт отдельно нельзя: сохраните документ целиком.",
  patch_busy: "Файл всё время меняется: повторите позже.",
  stale_etag: "Промпты изменились с тех пор, как вы их загрузили: ваши изменения не записаны.",
  if_match_empty: "Пустой заголовок If-Match.",
  if_match_no_file: "Файла промптов нет, а запрос требует существующий.",
  too_large: "Слишком большой объём.",
  kb_not_text: "Недопустимое содержимое: нужен текст UTF-8 (Markdown, текст или JSON).",
  invalid_json: "Документ — не корректный JSON.",
  invalid_document: "Документ не прошёл проверку.",
  invalid_request: "Некорректные данные запроса.",
  patch_empty: "Не указано ни новое значение, ни удаление.",
  write_failed: "Не удалось записать файл на диск.",
  internal: "Внутренняя ошибка панели.",
  not_ready: "Панель сейчас недоступна (запускается или останавливается).",
  no_space: "На диске панели нет места: сохранение не выполнено.",
  ticket_invalid: "Подключение к обновлениям устарело.",
  too_many_tickets: "Слишком много подключений к обновлениям, повторите позже.",
  too_many_streams: "Открыто слишком много вкладок с панелью.",
  no_label: "Такой метки нет: у неё нет файла.",
  invalid_label: "Недопустимая метка: имя из a–z, 0–9, - и _ (до 32 символов), или на месте её файла не обычный файл.",
  label_exists: "Такая метка уже есть.",
  label_conflict: "Так продвинуть нельзя (метка сама на себя или слишком много меток).",
  // Not from the API: the request did not reach it, or a code this page does not know yet.
  network: "Нет связи с панелью.",
  client_error: "Запрос отклонён.",
};

const KINDS = {
  missing: "обязательное поле не заполнено",
  blank: "не может быть пустым",
  string_too_short: "не может быть пустым",
  string_too_long: "слишком длинный текст",
  string_type: "должно быть строкой",
  tuple_type: "должно быть списком строк",
  list_type: "должно быть списком",
  dict_type: "должно быть объектом",
  model_type: "должно быть объектом",
  not_object: "документ должен быть JSON-объектом { … }",
  json_syntax: "ошибка синтаксиса JSON",
  json_invalid: "тело запроса — не корректный JSON",
  too_long: "слишком много элементов",
  list_too_long: "слишком много элементов",
  int_parsing: "должно быть целым числом",
  int_type: "должно быть целым числом",
  bool_parsing: "должно быть да/нет",
  bool_type: "должно быть да/нет",
  float_parsing: "должно быть числом",
  greater_than_equal: "слишком маленькое значение",
  less_than_equal: "слишком большое значение",
  literal_error: "недопустимое значение из списка",
  date_parsing: "некорректная дата",
  date_from_datetime_parsing: "некорректная дата",
  datetime_parsing: "некорректные дата и время",
  datetime_from_date_parsing: "некорректные дата и время",
  value_error: "недопустимое значение",
  invalid: "недопустимое значение",
};

const JSON_MESSAGES = [
  ["Expecting ',' delimiter", "ожидалась запятая"],
  ["Expecting ':' delimiter", "ожидалось двоеточие"],
  ["Expecting property name enclosed in double quotes", "ожидалось имя ключа в двойных кавычках"],
  ["Expecting value", "ожидалось значение"],
  ["Unterminated string", "незакрытая строка"],
  ["Extra data", "лишние данные после документа"],
  ["Invalid control character", "недопустимый управляющий символ в строке"],
  ["Invalid \\escape", "недопустимая escape-последовательность"],
  ["Invalid \\uXXXX escape", "недопустимая escape-последовательность \\u"],
  ["invalid UTF-8", "файл не в кодировке UTF-8"],
  ["nested too deeply", "слишком глубокая вложенность"],
];

export const END_REASONS = {
  goodbye: "бот попрощался",
  caller_hangup: "абонент положил трубку",
  hangup: "звонок завершён",
  no_input: "абонент молчал",
  max_turns: "достигнут лимит реплик",
  error: "ошибка",
  shutdown: "остановка сервиса",
  busy: "все линии заняты",
  operator: "перевод на оператора",
  transfer: "перевод на оператора",
  timeout: "истекло время ожидания",
};

export const ORIGINS = {
  api: "панель", patch: "панель (один промпт)", rollback: "откат", file: "файл (вне панели)",
  promote: "продвижение метки", copy: "новая метка (копия)",
  conflict: "конфликт (правка проиграла более новой версии)",
};

export const FIELD_LABELS = {
  system_prompt: "Системный промпт",
  greeting: "Приветствие",
  fillers: "Фразы-заполнители (по одной в строке)",
  fallback: "Если не расслышал (fallback)",
  goodbye: "Прощание",
};

export const CHANGE_KINDS = { added: "добавлен", removed: "удалён", changed: "изменён" };

/** The Russian sentence for an API error code; an unknown code still gets a Russian sentence. */
export function codeText(code, status) {
  if (code && CODES[code]) return CODES[code];
  return status >= 500 ? CODES.internal : CODES.client_error;
}

function jsonText(message) {
  const known = JSON_MESSAGES.find(([en]) => (message || "").startsWith(en));
  return known ? `${KINDS.json_syntax}: ${known[1]}` : KINDS.json_syntax;
}

/** One validation error item ({path, kind, message, line, col}) in Russian. */
export function itemText(item) {
  let what = KINDS[item.kind] || KINDS.invalid;
  if (item.kind === "json_syntax") what = jsonText(item.message);
  const where = item.line ? `строка ${item.line}, столбец ${item.col}` : item.path && item.path !== "$" ? item.path : "";
  return where ? `${where}: ${what}` : what;
}

const SCHEMA_MESSAGES = [
  ["must not be blank", KINDS.blank],
  ["Field required", KINDS.missing],
  ["String should have at least", KINDS.string_too_short],
  ["String should have at most", KINDS.string_too_long],
  ["Input should be a valid string", KINDS.string_type],
  ["Input should be a valid tuple", KINDS.tuple_type],
  ["Input should be a valid list", KINDS.tuple_type],
  ["must be a JSON object", KINDS.not_object],
];

/**
 * An error a process reports about the prompts file (the core's English, e.g. "prompts.json:3:17:
 * Expecting ',' delimiter" or "prompts.json: greeting: must not be blank") in Russian, keeping the place.
 */
export function fileErrorText(text) {
  if (!text) return "";
  const file = (p) => p.split("/").pop();
  let m = /^(.*?):(\d+):(\d+): (.*)$/s.exec(text);
  if (m) return `${file(m[1])}, строка ${m[2]}, столбец ${m[3]}: ${jsonText(m[4])}`;
  m = /^(.*?): document is (\d+) bytes, the limit is (\d+)$/.exec(text);
  if (m) return `${file(m[1])}: ${size(Number(m[2]))} — больше предела ${size(Number(m[3]))}`;
  m = /^(.*?): no such file$/.exec(text);
  if (m) return `${file(m[1])}: файла нет`;
  m = /^(.*?\.json): (.*)$/s.exec(text);
  if (m) {
    const parts = m[2].split("; ").map((part) => {
      const at = part.indexOf(": ");
      const loc = at > 0 ? part.slice(0, at) : "";
      const msg = at > 0 ? part.slice(at + 2) : part;
      const known = SCHEMA_MESSAGES.find(([en]) => msg.startsWith(en));
      return `${loc ? `${loc}: ` : ""}${known ? known[1] : KINDS.invalid}`;
    });
    return `${file(m[1])}: ${parts.join("; ")}`;
  }
  return "файл не удалось прочитать";
}

/** The end reason of a call in Russian. */
export function endReasonText(reason) {
  if (!reason) return "идёт";
  return END_REASONS[reason] || "другая причина";
}

/** Who made a version: "изменено вручную на диске", "сохранено оператором alice", … */
export function originText(origin, author) {
  if (origin === "file") return "изменено вручную на диске";
  if (origin === "rollback") return `откат, выполнил оператор ${author}`;
  if (origin === "api" || origin === "patch") return `сохранено оператором ${author}`;
  if (origin === "promote") return `продвижение метки, выполнил ${author}`;
  if (origin === "copy") return `новая метка (копия), создал ${author}`;
  return "изменено";
}

// Dates and durations in the operator's own locale (the browser's language).
const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "short", timeStyle: "medium" });
const timeOnly = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });
export const when = (t) => (t ? dateTime.format(new Date(t * 1000)) : "—");
export const clock = (t) => timeOnly.format(t ? new Date(t * 1000) : new Date());

export function duration(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return "—";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} с`;
  if (s < 3600) return `${Math.floor(s / 60)} мин ${s % 60} с`;
  if (s < 86400) return `${Math.floor(s / 3600)} ч ${Math.floor((s % 3600) / 60)} мин`;
  return `${Math.floor(s / 86400)} д ${Math.floor((s % 86400) / 3600)} ч`;
}

const number = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
export const size = (n) => (n < 1024 ? `${n} Б` : n < 1048576 ? `${number.format(n / 1024)} КиБ` : `${number.format(n / 1048576)} МиБ`);
export const ms = (v) => (v != null ? `${number.format(v)} мс` : "—");
