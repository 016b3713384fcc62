// The approver page's WebAuthn glue: no framework, served by the page
// itself (script-src 'self'), no inline script.
"use strict";
(function () {
  const meta = (name) => {
    const m = document.querySelector('meta[name="' + name + '"]');
    return m ? m.content : "";
  };
  const base = meta("stepup-base");
  const csrf = meta("stepup-csrf");
  const statusEl = document.getElementById("status");
  const say = (text) => { if (statusEl) statusEl.textContent = text; };

  const b64u = (buf) => {
    const bytes = new Uint8Array(buf);
    let s = "";
    for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  };
  const unb64u = (s) => {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    const bin = atob(s);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  };

  // PublicKeyCredentialRequestOptions JSON -> navigator.credentials.get().
  const getAssertion = async (opts) => {
    opts.challenge = unb64u(opts.challenge);
    (opts.allowCredentials || []).forEach((c) => { c.id = unb64u(c.id); });
    const c = await navigator.credentials.get({ publicKey: opts });
    return {
      id: c.id,
      rawId: b64u(c.rawId),
      type: c.type,
      response: {
        clientDataJSON: b64u(c.response.clientDataJSON),
        authenticatorData: b64u(c.response.authenticatorData),
        signature: b64u(c.response.signature),
        userHandle: c.response.userHandle ? b64u(c.response.userHandle) : null,
      },
      clientExtensionResults: c.getClientExtensionResults(),
    };
  };

  const post = async (path, body) => {
    const r = await fetch(base + path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    });
    if (!r.ok) throw new Error((await r.text()) || r.statusText);
    return r.status === 204 ? null : r.json();
  };

  const signin = document.getElementById("signin");
  if (signin) {
    signin.addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        say("Waiting for your passkey…");
        const opts = await post("signin/begin", { subject: signin.elements.subject.value });
        await post("signin/finish", await getAssertion(opts));
        window.location.assign(base);
      } catch (err) {
        say("Sign-in failed: " + err.message);
      }
    });
  }

  document.querySelectorAll("button.approve").forEach((b) => {
    b.addEventListener("click", async () => {
      const id = b.dataset.id;
      try {
        b.disabled = true;
        say("Waiting for your passkey…");
        const opts = await post("approve/options", { id: id });
        await post("approve", { id: id, assertion: await getAssertion(opts) });
        const item = document.getElementById("approval-" + id);
        if (item) item.remove();
        if (!document.querySelector("section.approval")) {
          const none = document.createElement("p");
          none.id = "none";
          none.textContent = "Nothing to approve.";
          document.querySelector("h1").after(none);
        }
        say("Approved.");
      } catch (err) {
        b.disabled = false;
        say("Approval failed: " + err.message);
      }
    });
  });
})();
