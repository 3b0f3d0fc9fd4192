// Copy buttons: <button data-copy="#element-id">Copy</button>
document.addEventListener("click", function (ev) {
  var btn = ev.target.closest("[data-copy]");
  if (!btn) return;
  var el = document.querySelector(btn.getAttribute("data-copy"));
  if (!el) return;
  var text = el.value !== undefined ? el.value : el.textContent;
  var done = function () { btn.textContent = "Copied"; setTimeout(function () { btn.textContent = "Copy"; }, 1500); };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text.trim()).then(done);
  } else {
    var ta = document.createElement("textarea");
    ta.value = text.trim(); document.body.appendChild(ta); ta.select();
    try { document.execCommand("copy"); done(); } finally { document.body.removeChild(ta); }
  }
});
// Confirmations: <form data-confirm="Delete this user?">, or on the submit button itself.
document.addEventListener("submit", function (ev) {
  var by = ev.submitter;
  var msg = (by && by.getAttribute("data-confirm")) || ev.target.getAttribute("data-confirm");
  if (msg && !window.confirm(msg)) ev.preventDefault();
});
// Auto-submitting fields (the account switcher): <select data-autosubmit>
document.addEventListener("change", function (ev) {
  if (ev.target.matches && ev.target.matches("[data-autosubmit]") && ev.target.form) ev.target.form.submit();
});
// Fields that only matter with a box ticked: <div data-shown-with="events=login_failures">
// is hidden while no checkbox name="events" value="login_failures" is checked.
function syncShownWith() {
  document.querySelectorAll("[data-shown-with]").forEach(function (el) {
    var want = el.getAttribute("data-shown-with").split("=");
    var boxes = document.querySelectorAll('input[type=checkbox][name="' + want[0] + '"]');
    var on = Array.prototype.some.call(boxes, function (b) { return b.value === want[1] && b.checked; });
    el.hidden = !on && !el.querySelector(".errorlist");
  });
}
document.addEventListener("change", function (ev) {
  if (ev.target.matches && ev.target.matches("input[type=checkbox]")) syncShownWith();
});
syncShownWith();
// The navigation's Menu button (narrow screens): shows and hides the links.
(function () {
  var toggle = document.querySelector(".menu-toggle");
  var menu = document.getElementById("topmenu");
  if (!toggle || !menu) return;
  toggle.hidden = false;
  toggle.addEventListener("click", function () {
    var open = toggle.getAttribute("aria-expanded") !== "true";
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
    menu.classList.toggle("open", open);
  });
})();
// Drop-down menus (<details class="menu">): one open at a time, closed by a click elsewhere or Escape.
document.addEventListener("click", function (ev) {
  document.querySelectorAll("details.menu[open]").forEach(function (d) {
    if (!d.contains(ev.target)) d.open = false;
  });
});
document.addEventListener("keydown", function (ev) {
  if (ev.key === "Escape") document.querySelectorAll("details.menu[open]").forEach(function (d) { d.open = false; });
});
