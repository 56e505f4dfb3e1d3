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
  type.placeholder = found ? "default: " + found : "the image's default";
}
document.addEventListener("change", function (ev) {
  if (ev.target && (ev.target.id === "launch-instance" || ev.target.id === "launch-image")) { cbDefaultType(); }
});
document.addEventListener("DOMContentLoaded", cbDefaultType);
