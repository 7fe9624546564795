// Strings by language: the shell's (strings.js) and each view's own (`strings` of the view
// module), merged at registration. t("key", {name: …}) fills {name}; a missing key shows the key.
const dictionaries = { zh: {}, en: {} };
export const LANGUAGES = ["zh", "en"];
const STORAGE = "careops.console.lang";
let current = sessionStorage.getItem(STORAGE) || localStorage.getItem(STORAGE) || "zh";
if (!LANGUAGES.includes(current)) current = "zh";

export function addStrings(strings) {
  for (const language of LANGUAGES) Object.assign(dictionaries[language], strings[language] || {});
}

export function language() {
  return current;
}

export function setLanguage(lang) {
  if (!LANGUAGES.includes(lang)) return;
  current = lang;
  localStorage.setItem(STORAGE, lang);
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
}

export function t(key, values = {}) {
  const text = dictionaries[current][key] ?? dictionaries.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in values ? String(values[name]) : `{${name}}`));
}

// A time as the reader's locale writes it.
export function formatTime(iso) {
  if (!iso) return "—";
  return new Date(iso).toLocaleString(current === "zh" ? "zh-CN" : "en-GB", {
    dateStyle: "short",
    timeStyle: "short",
  });
}
