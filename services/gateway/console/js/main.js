// The console's shell: sign-in, who am I (GetMyPermissions), the navigation of the views the
// caller's roles may use, the language switch, and hash routing (#/agent, #/supervisor, …).
import { call, onUnauthenticated, Services } from "./api.js";
import { h, replace } from "./dom.js";
import { addStrings, language, setLanguage, t } from "./i18n.js";
import { finishOidc, session, signInLocal, startOidc } from "./session.js";
import shellStrings from "./strings.js";
import views from "./views/index.js";

addStrings(shellStrings);
views.forEach((view) => addStrings(view.strings || {}));

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const who = document.getElementById("who");
const toastBox = document.getElementById("toast");
let config = { signIn: "none", users: [], oidc: null };
let me = null;
let cleanup = null;
// Bumped by every route / sign-in page: a render that finishes after a newer one started is stale.
let generation = 0;

function toast(message) {
  toastBox.textContent = message;
  setTimeout(() => {
    if (toastBox.textContent === message) toastBox.textContent = "";
  }, 6000);
}

// What a view gets: the API, strings, who is signed in and what they may call.
function context() {
  return {
    call,
    t,
    toast,
    me,
    language: language(),
    can: (service, method) => me.methods.has(`${service}/${method}`),
    rerender: () => route(),
  };
}

function available() {
  return views.filter((view) => (view.requires || []).every((method) => me.methods.has(method)));
}

function renderShell() {
  document.title = t("app.title");
  document.getElementById("lang-label").textContent = t("lang.label");
  document.querySelector(".skip").textContent = t("skip");
  nav.setAttribute("aria-label", t("nav.label"));
  document.getElementById("lang-switch").value = language();
  if (!me) {
    replace(nav);
    replace(who);
    return;
  }
  const current = location.hash.replace(/^#\//, "").split("/")[0];
  replace(
    nav,
    available().map((view) =>
      h("a", { href: `#/${view.id}`, "aria-current": view.id === current ? "page" : false }, t(view.title)),
    ),
  );
  const roles = me.roles.map((role) => t(`role.${role}`)).join(", ");
  replace(
    who,
    h("span", { id: "who-am-i" }, t("who", { subject: me.subject, roles })),
    " ",
    h("button", { type: "button", class: "secondary", onclick: signOut }, t("signout")),
  );
}

function signOut() {
  session.clear();
  me = null;
  location.hash = "";
  showSignIn();
}

function showSignIn(reason = "") {
  generation += 1;
  if (cleanup) cleanup();
  cleanup = null;
  document.body.dataset.view = "sign-in";
  renderShell();
  const error = h("p", { class: "error", role: "alert", id: "signin-error" }, reason);
  const form = h("form", { class: "signin panel", "aria-labelledby": "signin-title" });
  form.append(h("h1", { id: "signin-title" }, t("signin.title")));
  if (config.signIn === "local") {
    const select = h(
      "select",
      { id: "signin-user", name: "subject", required: true },
      config.users.map((user) =>
        h("option", { value: user.subject }, `${user.subject} — ${user.roles.map((r) => t(`role.${r}`)).join(", ")}`),
      ),
    );
    form.append(
      h("p", {}, t("signin.local_note")),
      h("label", { for: "signin-user" }, t("signin.user"), select),
      h("button", { type: "submit" }, t("signin.submit")),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        await signInLocal(select.value);
        await start();
      } catch (failure) {
        error.textContent = t("signin.failed", { reason: failure.message });
      }
    });
  } else if (config.signIn === "oidc") {
    form.append(h("button", { type: "submit" }, t("signin.oidc")));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      startOidc(config.oidc);
    });
  } else {
    const input = h("textarea", { id: "signin-token", rows: 4, required: true });
    form.append(
      h("p", {}, t("signin.token_note")),
      h("label", { for: "signin-token" }, t("signin.token"), input),
      h("button", { type: "submit" }, t("signin.submit")),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      session.set(input.value.trim());
      await start();
    });
  }
  form.append(error);
  replace(main, form);
  form.querySelector("select, textarea, button")?.focus();
}

async function route() {
  if (!me) return;
  const mine = ++generation;
  if (cleanup) cleanup();
  cleanup = null;
  const views = available();
  const id = location.hash.replace(/^#\//, "").split("/")[0];
  const view = views.find((candidate) => candidate.id === id);
  renderShell();
  if (!view) {
    if (views.length > 0 && id === "") {
      location.hash = `#/${views[0].id}`; // hashchange routes again
      return;
    }
    document.body.dataset.view = "home";
    replace(main, h("h1", {}, t("home.title")), h("p", {}, views.length ? t("home.pick") : t("home.none")));
    return;
  }
  document.body.dataset.view = view.id;
  // Each render gets its own root: a render still awaiting the API when the user switches the
  // language or the route (its stop function not returned yet) then writes into a detached
  // element, never over its successor, and is stopped as soon as it returns.
  const root = h("div", { class: "view" });
  replace(main, root);
  let stop = null;
  try {
    stop = (await view.render(root, context())) || null;
  } catch (failure) {
    replace(root, h("p", { class: "error", role: "alert" }, t("error.generic", { message: failure.message })));
  }
  if (mine !== generation) {
    if (stop) stop();
    return;
  }
  cleanup = stop;
}

async function start() {
  try {
    const mine = await call(Services.gateway, "GetMyPermissions", {});
    me = { subject: mine.subject, roles: mine.roles, methods: new Set(mine.methods) };
  } catch (failure) {
    session.clear();
    showSignIn(failure.message);
    return;
  }
  await route();
}

async function boot() {
  setLanguage(language());
  document.getElementById("lang-switch").addEventListener("change", (event) => {
    setLanguage(event.target.value);
    if (me) route();
    else showSignIn();
  });
  window.addEventListener("hashchange", () => route());
  onUnauthenticated(() => {
    session.clear();
    me = null;
    showSignIn();
  });
  config = await (await fetch("/console/config.json")).json();
  try {
    await finishOidc(config.oidc);
  } catch (failure) {
    showSignIn(failure.message);
    return;
  }
  if (session.token()) await start();
  else showSignIn();
}

boot();
