// The live feed: asks for the events after the newest one shown, every few seconds, and puts them on top.
// Text only (textContent): nothing the server sends is read as markup.
(function () {
  "use strict";
  const feed = document.getElementById("events");
  if (!feed) return;
  const body = feed.tBodies[0];
  const state = document.getElementById("feed-state");
  const pollMs = Number(feed.dataset.pollMs) || 2000;
  const rowsMax = Number(feed.dataset.rowsMax) || 200;
  let after = Number(feed.dataset.after) || 0;

  function cell(row, text, href) {
    const td = row.insertCell();
    if (href && text) {
      const a = document.createElement("a");
      a.href = href;
      a.textContent = text.slice(-8);
      td.appendChild(a);
    } else {
      td.textContent = text;
    }
  }

  function show(event) {
    const row = body.insertRow(0);
    row.className = "fresh";
    cell(row, String(event.sequence));
    cell(row, event.time);
    cell(row, event.type);
    cell(row, event.account_id, "/accounts/" + encodeURIComponent(event.account_id));
    cell(row, event.voucher_id, "/vouchers/" + encodeURIComponent(event.voucher_id));
    cell(row, event.hold_id.slice(-8));
    const code = document.createElement("code");
    code.textContent = event.payload;
    row.insertCell().appendChild(code);
    while (body.rows.length > rowsMax) body.deleteRow(body.rows.length - 1);
  }

  async function poll() {
    try {
      const answer = await fetch("/events.json?after=" + after, {credentials: "same-origin"});
      if (answer.status === 401) {
        state.textContent = " (signed out: sign in again to follow)";
        return;
      }
      if (answer.ok) {
        const data = await answer.json();
        data.events.forEach(show);
        after = data.after;
        state.textContent = " (live)";
      }
    } catch (e) {
      state.textContent = " (reconnecting)";
    }
    setTimeout(poll, pollMs);
  }

  setTimeout(poll, pollMs);
})();
