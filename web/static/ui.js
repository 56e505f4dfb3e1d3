// Progressive enhancement only: every page works without this file.
// Buttons with data-confirm ask before their form is sent.
document.addEventListener("submit", function (ev) {
  var b = ev.submitter;
  var msg = b && b.getAttribute("data-confirm");
  if (msg && !window.confirm(msg)) { ev.preventDefault(); }
});

// The launch form shows the chosen image's default instance type on the
// chosen instance (the server applies the same default when the field is empty).
function cbDefaultType() {
  var inst = document.getElementById("launch-instance"), img = document.getElementById("launch-image");
  var type = document.getElementById("launch-type");
  if (!inst || !img || !type) { return; }
  var opt = img.options[img.selectedIndex], found = "";
  ((opt && opt.getAttribute("data-types")) || "").split(";").forEach(function (p) {
    var kv = p.split("=");
    if (kv[0] === inst.value) { found = kv[1]; }
  });
  type.placeholder = found ? "default: " + found : "the launch's default";
}
document.addEventListener("change", function (ev) {
  if (ev.target && (ev.target.id === "launch-instance" || ev.target.id === "launch-image")) { cbDefaultType(); }
});
document.addEventListener("DOMContentLoaded", cbDefaultType);

// The VMs page with the launch form: while something is pending, its list
// alone is refreshed every few seconds (the form keeps what is typed), and
// not while the user types in the form. Without this script the page does
// not reload itself (it links to /vms?watch=1, the list alone, which does).
(function () {
  var typed = 0;
  document.addEventListener("input", function () { typed = Date.now(); });
  function busy() {
    var a = document.activeElement, form = document.getElementById("launch-form");
    // VMs ticked for a bulk action: a refresh would untick them.
    var ticked = document.querySelector("input[form='bulk']:checked");
    return (form && a && form.contains(a) && a.tagName !== "BUTTON") || Date.now() - typed < 5000 || !!ticked;
  }
  function tick() {
    var note = document.getElementById("refreshing");
    if (!note || !note.hasAttribute("data-refresh")) { return; }
    var every = 1000 * (parseInt(note.getAttribute("data-refresh"), 10) || 3);
    setTimeout(function () {
      if (busy()) { tick(); return; }
      fetch(window.location.pathname + window.location.search, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) {
          var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("vm-list");
          var list = document.getElementById("vm-list");
          if (fresh && list && !busy()) { list.innerHTML = fresh.innerHTML; }
          tick();
        })
        .catch(function () { tick(); });
    }, every);
  }
  document.addEventListener("DOMContentLoaded", tick);
})();

// Copy buttons (VM ids, the SSH line): hidden without this script, they
// copy their data-copy text; the full text stays selectable either way.
(function () {
  function show() {
    if (!navigator.clipboard) { return; }
    document.querySelectorAll("button.copy[data-copy]").forEach(function (b) { b.hidden = false; });
    // The VM table's id cells (the full id in their title) get one each.
    document.querySelectorAll("#vms td.vm-id[title]").forEach(function (td) {
      if (td.querySelector("button.copy")) { return; }
      var b = document.createElement("button");
      b.type = "button"; b.className = "copy"; b.textContent = "copy";
      b.setAttribute("data-copy", td.getAttribute("title"));
      b.setAttribute("aria-label", "Copy " + td.getAttribute("title"));
      td.appendChild(b);
    });
  }
  document.addEventListener("click", function (ev) {
    var b = ev.target && ev.target.closest && ev.target.closest("button.copy[data-copy]");
    if (!b || !navigator.clipboard) { return; }
    navigator.clipboard.writeText(b.getAttribute("data-copy")).then(function () {
      b.classList.add("copied");
      setTimeout(function () { b.classList.remove("copied"); }, 1200);
    });
  });
  document.addEventListener("DOMContentLoaded", show);
  // The list's refresh brings new buttons: shown too.
  new MutationObserver(show).observe(document.documentElement, { childList: true, subtree: true });
})();

// UIB: the header's menus (<details>, usable without this script): one open
// at a time; a click elsewhere or Escape closes them (Escape gives the focus
// back to the menu's summary).
(function () {
  function menus() { return document.querySelectorAll("header nav details.menu"); }
  document.addEventListener("toggle", function (ev) {
    var d = ev.target;
    if (!d.matches || !d.matches("header nav details.menu") || !d.open) { return; }
    menus().forEach(function (m) { if (m !== d) { m.open = false; } });
  }, true);
  document.addEventListener("click", function (ev) {
    menus().forEach(function (m) { if (m.open && !m.contains(ev.target)) { m.open = false; } });
  });
  document.addEventListener("keydown", function (ev) {
    if (ev.key !== "Escape") { return; }
    menus().forEach(function (m) {
      if (m.open) { m.open = false; m.querySelector("summary").focus(); }
    });
  });
})();
