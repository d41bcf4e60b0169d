// deltavault console: the only script. Verify/Check buttons start a job and poll it;
// the tag form posts and goes to the re-tagged snapshot. Everything else is plain HTML.
"use strict";

const csrf = () => document.querySelector('meta[name="csrf"]').content;

async function post(url, body) {
  const headers = {"X-Deltavault-Csrf": csrf()};
  if (body) headers["Content-Type"] = "application/json";
  const res = await fetch(url, {method: "POST", headers: headers,
                                body: body ? JSON.stringify(body) : null, credentials: "same-origin"});
  const data = await res.json().catch(() => ({error: res.statusText}));
  if (!res.ok && res.status !== 202) throw new Error(data.error || res.statusText);
  return data;
}

function text(tag, cls, content) {
  const el = document.createElement(tag);
  if (cls) el.className = cls;
  el.textContent = content;
  return el;
}

function showVerify(box, job) {
  const r = job.result;
  box.replaceChildren();
  if (job.state === "failed") { box.append(text("p", "problem", "Verification could not run: " + job.error)); return; }
  box.append(text("p", r.ok ? "ok" : "problem",
    r.ok ? `Ledger verified: size ${r.size}, root ${r.root}; ${r.entries_checked} entries, ${r.tiles_checked} tiles checked; signature ok.`
         : `Ledger verification FAILED at size ${r.size}.`));
  for (const [name, t] of Object.entries(r.witnesses || {}))
    box.append(text("p", "ok", `cosigned by ${name} at ${new Date(t * 1000).toISOString()}`));
  if (r.problems && r.problems.length) {
    const ul = document.createElement("ul");
    for (const p of r.problems) ul.append(text("li", "problem", p));
    box.append(ul);
  }
}

function showCheck(box, job) {
  const r = job.result;
  box.replaceChildren();
  if (job.state === "failed") { box.append(text("p", "problem", "Check could not run: " + job.error)); return; }
  box.append(text("p", r.ok ? "ok" : "problem",
    r.ok ? `Check passed: ${r.snapshots} snapshots, ${r.indexes} indexes, ${r.packs} packs.`
         : `Check found ${r.problems.length} problem(s).`));
  const ul = document.createElement("ul");
  for (const p of r.problems || []) ul.append(text("li", "problem", `${p.object}: ${p.message}`));
  box.append(ul);
}

function runJob(button, bar, box, render) {
  button.addEventListener("click", async () => {
    button.disabled = true;
    box.replaceChildren(text("p", "hint", "running…"));
    bar.hidden = false; bar.removeAttribute("value");
    try {
      let job = await post(button.dataset.url);
      while (job.state === "running") {
        await new Promise((ok) => setTimeout(ok, 250));
        const res = await fetch(`/jobs/${job.id}`, {credentials: "same-origin"});
        job = await res.json();
        if (job.total) { bar.max = job.total; bar.value = job.done; }
      }
      if (job.total) { bar.max = job.total; bar.value = job.done; }
      render(box, job);
      box.dataset.state = job.state === "done" && job.result.ok ? "ok" : "failed";
    } catch (err) {
      box.replaceChildren(text("p", "problem", String(err.message || err)));
      box.dataset.state = "failed";
    } finally {
      button.disabled = false;
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const verify = document.getElementById("verify-button");
  if (verify) runJob(verify, document.getElementById("verify-progress"),
                     document.getElementById("verify-result"), showVerify);
  const check = document.getElementById("check-button");
  if (check) runJob(check, document.getElementById("check-progress"),
                    document.getElementById("check-result"), showCheck);
  const form = document.querySelector("form.tag-form");
  if (form) form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const status = form.querySelector(".status");
    try {
      const words = (name) => form.elements[name].value.split(/[\s,]+/).filter((w) => w);
      const data = await post(`/snapshot/${form.dataset.snapshot}/tag`,
                              {add: words("add"), remove: words("remove")});
      window.location.assign(`/snapshot/${data.id}`);
    } catch (err) {
      status.textContent = String(err.message || err);
      status.className = "status problem";
    }
  });
});
