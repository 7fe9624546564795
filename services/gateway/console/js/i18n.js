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

// A service's fixed English sentence in the reader's language. `patterns[kind]` is
// [regex, [names of its groups], [names of optional fixed phrases]]; a match becomes
// t(`${prefix}.${kind}`, {name: group}); a fixed phrase that matched becomes
// t(`${prefix}.${kind}.${name}`), one that did not "". Text matching no pattern (people's own
// words, a template the console does not know) is returned as it came.
export function translated(patterns, prefix, kind, text) {
  const pattern = patterns[kind];
  const match = pattern && pattern[0].exec(text || "");
  if (!match) return text || "";
  const phrases = pattern[2] || [];
  const value = (name, group) => {
    if (group === undefined) return "";
    return phrases.includes(name) ? t(`${prefix}.${kind}.${name}`) : group;
  };
  return t(`${prefix}.${kind}`, Object.fromEntries(pattern[1].map((name, index) => [name, value(name, match[index + 1])])));
}

// The label of an entry's kind: t(`${prefix}.${kind}`), or the kind itself when unknown.
export function kindLabel(prefix, kind) {
  const key = `${prefix}.${kind}`;
  const text = t(key);
  return text === key ? kind : text;
}
