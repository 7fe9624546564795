// The signed-in session: the bearer token, kept in sessionStorage (this tab only, gone when it
// closes; never localStorage, never a cookie) and who it is (GetMyPermissions).
const TOKEN = "careops.console.token";
const PKCE = "careops.console.pkce";

export const session = {
  token() {
    return sessionStorage.getItem(TOKEN);
  },
  set(token) {
    sessionStorage.setItem(TOKEN, token);
  },
  clear() {
    sessionStorage.removeItem(TOKEN);
  },
};

// The embedded issuer's sign-in (config.signIn === "local"): one of the configured users.
export async function signInLocal(subject) {
  const response = await fetch("/console/sign-in", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ subject }),
  });
  const body = await response.json();
  if (!response.ok) throw new Error(body.message || `HTTP ${response.status}`);
  session.set(body.token);
  return body;
}

// ---- OIDC, authorization code with PKCE (config.signIn === "oidc"; RFC 7636) ----

function base64url(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes)))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
}

function redirectUri() {
  return `${location.origin}/console/`;
}

// Sends the browser to the provider; it comes back to /console/?code=…&state=….
export async function startOidc(oidc) {
  const verifier = base64url(crypto.getRandomValues(new Uint8Array(32)));
  const state = base64url(crypto.getRandomValues(new Uint8Array(16)));
  const challenge = base64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  sessionStorage.setItem(PKCE, JSON.stringify({ verifier, state }));
  const url = new URL(oidc.authorizationUrl);
  url.search = new URLSearchParams({
    response_type: "code",
    client_id: oidc.clientId,
    redirect_uri: redirectUri(),
    scope: oidc.scope,
    state,
    code_challenge: challenge,
    code_challenge_method: "S256",
  }).toString();
  location.assign(url.toString());
}

// On the way back: trades the code for a token at the provider's token endpoint. Returns
// whether this page load was such a return.
export async function finishOidc(oidc) {
  const params = new URLSearchParams(location.search);
  if (!oidc || !params.has("code")) return false;
  const saved = JSON.parse(sessionStorage.getItem(PKCE) || "null");
  sessionStorage.removeItem(PKCE);
  history.replaceState(null, "", "/console/" + location.hash);
  if (!saved || saved.state !== params.get("state")) throw new Error("OIDC state mismatch");
  const response = await fetch(oidc.tokenUrl, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      code: params.get("code"),
      redirect_uri: redirectUri(),
      client_id: oidc.clientId,
      code_verifier: saved.verifier,
    }),
  });
  const body = await response.json();
  if (!response.ok || !body.access_token) throw new Error(body.error_description || body.error || "token");
  session.set(body.access_token); // the gateway verifies it as it would any bearer JWT
  return true;
}
