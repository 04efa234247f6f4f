// After a save that failed (an htmx swap of the form, or a whole page answered with errors): bring the first
// field error into view and put the cursor in that field. Errors already brought into view are marked, so a later
// swap elsewhere on the page (the dashboard's polling, say) does not scroll.
(function () {
  "use strict";

  function revealFirstError() {
    var fresh = document.querySelectorAll(".field.has-error:not([data-revealed]), .msg-error:not([data-revealed])");
    if (!fresh.length) {
      return;
    }
    fresh.forEach(function (element) { element.setAttribute("data-revealed", ""); });
    var field = document.querySelector(".field.has-error[data-revealed]");
    var target = field || fresh[0];
    target.scrollIntoView({ block: "center" });
    var input = field && field.querySelector("input:not([type=hidden]), select, textarea");
    if (input) {
      input.focus({ preventScroll: true });
    }
  }

  document.addEventListener("DOMContentLoaded", revealFirstError);
  document.addEventListener("htmx:afterSettle", revealFirstError);
})();
